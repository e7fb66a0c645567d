"""Rewrite one marked section of docs/benchmarks.md, leaving the others as they are."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine_line() -> str:
    return (
        f"Measured {dt.date.today().isoformat()} on {os.cpu_count()} cores, shared VM, results "
        f"vary run to run; Python {platform.python_version()}, {platform.system()} "
        f"{platform.release()}."
    )


def write_section(name: str, body: str) -> None:
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    section = f"{begin}\n{body}\n{end}"
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    start, stop = text.find(begin), text.find(end)
    if start != -1 and stop > start:
        text = text[:start] + section + text[stop + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text, encoding="utf-8")
