"""The documentation's promises: docs/architecture.md names code that exists, README.md lists
every command.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from bot.cli import build_parser
from tests.conftest import ROOT


def _defines(path: Path, name: str) -> bool:
    text = path.read_text(encoding="utf-8")
    return bool(
        re.search(rf"^\s*(async def|def|class) {re.escape(name)}\b", text, re.MULTILINE)
        or re.search(rf"^\s*{re.escape(name)}\s*[:=]", text, re.MULTILINE)
    )


def test_architecture_doc_names_code_that_exists() -> None:
    """docs/architecture.md says where each invariant is enforced: every file and name it
    cites must exist, so a rename that makes it lie fails here."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    sources = [p for d in ("bot", "trading", "storage") for p in (ROOT / d).rglob("*.py")]
    for path in re.findall(r"`((?:bot|trading|storage|tests)/[\w/]+\.py)`", doc):
        assert (ROOT / path).is_file(), path
    for path, name in re.findall(r"`((?:bot|trading|storage)/[\w/]+\.py)` `(\w+)`", doc):
        assert _defines(ROOT / path, name), (path, name)
    for cls, attr in re.findall(r"`([A-Z]\w+)\.(\w+)`", doc):
        homes = [p for p in sources if _defines(p, cls)]
        assert homes, cls
        assert any(_defines(p, attr) for p in homes), f"{cls}.{attr}"


def test_readme_lists_every_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name in commands:
        assert re.search(rf"^\|.*`warden {name}\b", readme, re.MULTILINE), name
