"""The test suite's own shape (issue 14): shared rigs live in rig modules, never in test modules;
no test module grows past 800 lines; every test that starts a real OS process is marked ``slow``
(``pytest -m "not slow"`` is the quick loop; CI runs everything).

Read from the source with ``ast``, so a new test module is held to the same rules the day it is
added.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ROOT

TESTS = ROOT / "tests"
MAX_LINES = 800
# names whose use in a function body starts a process: the subprocess module and its asyncio
# twin, the `warden` CLI command line (tests/conftest.py), a pseudo-terminal fork
SPAWNERS = frozenset(
    {"subprocess", "Popen", "create_subprocess_exec", "create_subprocess_shell", "warden_cmd"}
)
SPAWNING_ATTRS = frozenset({"fork", "spawn"})
# the PostgreSQL test server (tests/pg_cluster.py) is started once per session as
# infrastructure for the storage backends, as the SQLite file is; it does not make a test
# process-level
INFRASTRUCTURE = frozenset({"pg_cluster"})


def suite_modules() -> list[Path]:
    return sorted(TESTS.glob("test_*.py"))


def python_files() -> list[Path]:
    return sorted([*TESTS.glob("*.py"), *(ROOT / "benchmarks").glob("*.py")])


def test_no_module_imports_from_a_test_module() -> None:
    """Shared pieces live in tests/rig_*.py (or the fakes, or conftest): a test module is never
    imported, by another test module or by a benchmark."""
    offenders = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
                if node.module == "tests":
                    modules = [f"tests.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            else:
                continue
            for module in modules:
                if module.startswith("tests.test_"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {module}")
    assert offenders == [], "move what is shared into a tests/rig_*.py module:\n" + "\n".join(
        offenders
    )


def test_no_test_module_is_over_800_lines() -> None:
    long = {}
    for path in suite_modules():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            long[path.name] = lines
    assert long == {}, f"split these by subject (at most {MAX_LINES} lines each): {long}"


# --- which tests start a process ----------------------------------------------------------------


@dataclass
class Module:
    name: str
    tree: ast.Module
    # top-level functions and classes by name
    defs: dict[str, ast.AST] = field(default_factory=dict)
    # a name imported from another tests module -> (that module, its name there)
    imported: dict[str, tuple[str, str]] = field(default_factory=dict)
    # a module imported whole (``from tests import rig_x``) -> its name
    modules: dict[str, str] = field(default_factory=dict)
    # module-level aliases of another module's name (``rig = rig_okx.rig``)
    aliases: dict[str, tuple[str, str]] = field(default_factory=dict)


def load() -> dict[str, Module]:
    out: dict[str, Module] = {}
    for path in sorted(TESTS.glob("*.py")):
        mod = Module(path.stem, ast.parse(path.read_text(encoding="utf-8")))
        for node in mod.tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                mod.defs[node.name] = node
            elif isinstance(node, ast.ImportFrom) and node.module == "tests":
                for a in node.names:
                    mod.modules[a.asname or a.name] = a.name
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests."):
                for a in node.names:
                    mod.imported[a.asname or a.name] = (node.module.split(".", 1)[1], a.name)
            elif (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Attribute)
                and isinstance(node.value.value, ast.Name)
            ):
                owner = mod.modules.get(node.value.value.id)
                if owner:
                    mod.aliases[node.targets[0].id] = (owner, node.value.attr)
        out[mod.name] = mod
    return out


def body_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function's body (or a class's), not its annotations: a return type of
    ``subprocess.CompletedProcess`` starts nothing."""
    for stmt in getattr(node, "body", []):
        yield from ast.walk(stmt)


def resolve(mods: dict[str, Module], module: str, name: str) -> tuple[str, str] | None:
    seen = set()
    while (module, name) not in seen:
        seen.add((module, name))
        mod = mods.get(module)
        if mod is None:
            return None
        if name in mod.defs:
            return module, name
        if name in mod.aliases:
            module, name = mod.aliases[name]
        elif name in mod.imported:
            module, name = mod.imported[name]
        else:
            return None
    return None


def spawning(mods: dict[str, Module]) -> set[tuple[str, str]]:
    """Every (module, function or class) that starts a process, directly or through another."""
    direct: set[tuple[str, str]] = set()
    uses: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for mod in mods.values():
        if mod.name in INFRASTRUCTURE:
            continue
        fixtures = fixture_defs(mods, mod)
        for name, node in mod.defs.items():
            starts, refs = references(mods, mod, node, fixtures)
            if starts:
                direct.add((mod.name, name))
            uses[(mod.name, name)] = refs
    found = set(direct)
    changed = True
    while changed:
        changed = False
        for key, refs in uses.items():
            if key not in found and refs & found:
                found.add(key)
                changed = True
    return found


def references(
    mods: dict[str, Module], mod: Module, node: ast.AST, fixtures: dict[str, tuple[str, str]]
) -> tuple[bool, set[tuple[str, str]]]:
    """Whether ``node`` starts a process itself, and the tests-package definitions it uses
    (names, ``rig_x.name`` attributes, fixtures asked for by argument)."""
    refs: set[tuple[str, str] | None] = set()
    for n in body_nodes(node):
        if isinstance(n, ast.Name):
            if n.id in SPAWNERS:
                return True, set()
            refs.add(resolve(mods, mod.name, n.id))
        elif isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name):
            if n.attr in SPAWNERS or (n.attr in SPAWNING_ATTRS and n.value.id in {"os", "pty"}):
                return True, set()
            if n.value.id in mod.modules:
                refs.add(resolve(mods, mod.modules[n.value.id], n.attr))
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        refs.update(fixtures.get(arg.arg) for arg in node.args.args)
    return False, {r for r in refs if r is not None}


def is_fixture(node: ast.AST) -> bool:
    decorators = getattr(node, "decorator_list", [])
    return any("fixture" in ast.unparse(d) for d in decorators)


def fixture_defs(mods: dict[str, Module], mod: Module) -> dict[str, tuple[str, str]]:
    """The fixtures a test of ``mod`` can ask for by name: conftest's, then its own (defined or
    imported)."""
    out: dict[str, tuple[str, str]] = {}
    for source in (mods.get("conftest"), mod):
        if source is None:
            continue
        names = set(source.defs) | set(source.imported) | set(source.aliases)
        for name in names:
            target = resolve(mods, source.name, name)
            if target and is_fixture(mods[target[0]].defs[target[1]]):
                out[name] = target
    return out


def marked_slow(node: ast.AST) -> bool:
    return any("mark.slow" in ast.unparse(d) for d in getattr(node, "decorator_list", []))


def module_marked_slow(mod: Module) -> bool:
    for node in mod.tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)
            and "mark.slow" in ast.unparse(node.value)
        ):
            return True
    return False


def process_tests() -> dict[str, list[str]]:
    """Test module -> the tests in it that start a real OS process."""
    mods = load()
    found = spawning(mods)
    out: dict[str, list[str]] = {}
    for mod in mods.values():
        if not mod.name.startswith("test_"):
            continue
        names = [n for n in mod.defs if n.startswith("test_") and (mod.name, n) in found]
        if names:
            out[mod.name] = names
    return out


def test_every_test_that_starts_a_process_is_marked_slow() -> None:
    mods = load()
    unmarked = []
    for module, names in process_tests().items():
        if module_marked_slow(mods[module]):
            continue
        unmarked += [f"{module}::{n}" for n in names if not marked_slow(mods[module].defs[n])]
    assert unmarked == [], (
        "these start a real OS process: mark them @pytest.mark.slow (or the module, "
        "pytestmark = pytest.mark.slow):\n" + "\n".join(unmarked)
    )


def test_the_process_finder_sees_the_known_process_suites() -> None:
    """The finder above is only as good as what it finds: the suites known to run real `warden`
    processes (directly, through a rig, or through a fixture) must all be among its finds."""
    found = process_tests()
    for module, test in [
        ("test_crash", None),  # Agent (tests/rig_crash.py) runs `warden open` children
        ("test_races", None),  # race_trial (tests/rig_races.py)
        ("test_run_cli", None),  # Proc (tests/rig_cli_processes.py)
        ("test_agent_lease", "test_a_second_agent_exits_75_naming_the_holder"),
        ("test_exchange_wiring", None),  # warden (tests/rig_exchange_wiring.py), async
        ("test_ops_deploy", "test_the_container_command_starts_and_goes_healthy"),
    ]:
        assert module in found, module
        if test is not None:
            assert test in found[module], (module, test)
    # and an in-process suite is not among them
    assert "test_guard_plan" not in found
