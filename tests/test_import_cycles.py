"""No import cycles among the modules of bot/, trading/ and storage/.

Imports are read from each module's syntax tree, not by importing it. What counts: every
``import``/``from ... import`` statement that runs, at module level AND inside functions (a
function-level import is still a dependency: the cycle issue 14 named went through one, in
``Database.open``). What does not count: imports under ``if TYPE_CHECKING:``, which never run.
``from package import name`` counts as importing ``package.name`` when that is a module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, child_env

PACKAGES = ("bot", "trading", "storage")


def _modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = f
    return found


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = package[: len(package) - child.level + 1]
                    base = ".".join([*up, base] if base else up)
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    out.add(sub if sub in modules else base)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in out if m in modules and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), plus self-loops."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_no_import_cycles_in_bot_trading_storage() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert "storage.db" in graph["storage.lease"]  # the walk sees real imports
    assert _cycles(graph) == []


def test_the_detector_finds_a_cycle_through_a_function_level_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


@pytest.mark.slow
def test_sqlite_users_never_import_psycopg() -> None:
    """Opening and using the SQLite store (what paper users do) loads no PostgreSQL driver."""
    code = (
        "import asyncio, sys\n"
        "from storage.db import Database\n"
        "from storage.journal_store import JournalStore\n"
        "from trading.journal import Severity\n"
        "import bot.context, bot.cli\n"
        "async def main():\n"
        "    db = await Database.open(sys.argv[1])\n"
        "    await JournalStore(db).alert(Severity.INFO, 'stored')\n"
        "    await db.close()\n"
        "asyncio.run(main())\n"
        "print('psycopg' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "warden.db"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "False", out.stderr
