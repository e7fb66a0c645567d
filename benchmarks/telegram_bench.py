"""/status reply time while a cycle holds the account's execution lease.

    .venv/bin/python benchmarks/telegram_bench.py [--requests 50] [--no-doc]

The real python-telegram-bot Application, started by ``start_telegram`` on a real Daemon
(paper exchange on a throwaway SQLite database, two open positions with verified stops),
talks to the local fake Bot API server of the tests. Each /status is pushed into getUpdates
once the previous reply arrived. *Handler*: from the update entering the Application's handlers
(a marker handler in group -2, before the access gate) to the fake server receiving the
sendMessage. *End to end*: from the update being queued in the fake server (the long poll hands
it out) to that sendMessage. Three conditions:

1. idle: nobody holds the lease;
2. held elsewhere: another connection (as another process would) holds the lease, idle;
3. cycle running here: a task in the same process holds the lease and runs the guardian's
   reconciliation back to back (exchange reads and journal writes on the shared connection),
   a heavier load than a real strategy cycle.

Prints the figures and rewrites its own section of ``docs/benchmarks.md`` (between
``<!-- telegram-bench -->`` and ``<!-- /telegram-bench -->``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from telegram import Update  # noqa: E402
from telegram.ext import ContextTypes, TypeHandler  # noqa: E402

from tests.telegram_rig import (  # noqa: E402
    ETH,
    OWNER,
    SCOPE,
    TOKEN,
    Rig,
    lease_held_elsewhere,
    running_bot,
)
from trading.models import PositionSide  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Figures measured by the scripts in `benchmarks/`. Each script rewrites only its own "
    "section, between its markers.\n"
)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


async def measure(rig: Rig, started: dict[int, float], n: int) -> tuple[list[float], list[float]]:
    handler_ms: list[float] = []
    e2e_ms: list[float] = []
    for _ in range(n):
        before = len(rig.fake.calls)
        queued = time.perf_counter()
        update_id = rig.fake.command(OWNER, "/status")
        reply = await rig.fake.next_message(OWNER, before)
        assert "Warden status" in reply.params["text"]
        handler_ms.append((reply.at - started[update_id]) * 1000)
        e2e_ms.append((reply.at - queued) * 1000)
    return handler_ms, e2e_ms


async def busy_cycle(rig: Rig, stop: asyncio.Event, runs: list[int]) -> None:
    async with rig.daemon.leases.hold(SCOPE, "scheduled cycle btc_momentum") as lease:
        while not stop.is_set():
            await rig.acct.guardian.reconcile(lease)
            runs[0] += 1
            await asyncio.sleep(0)


async def bench(n: int, folder: Path) -> dict[str, tuple[list[float], list[float], str]]:
    results: dict[str, tuple[list[float], list[float], str]] = {}
    async with running_bot(folder, poll_timeout=10.0) as rig:
        started: dict[int, float] = {}

        async def mark(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
            if isinstance(update, Update):
                started[update.update_id] = time.perf_counter()

        rig.handle.app.add_handler(TypeHandler(Update, mark), group=-2)
        await rig.open_position()
        await rig.open_position(ETH, PositionSide.SHORT, 0.5)
        await measure(rig, started, 5)  # warm-up

        results["idle (no lease held)"] = (*await measure(rig, started, n), "")
        async with lease_held_elsewhere(folder / "warden.db") as held:
            got = await measure(rig, started, n)
            results["lease held by another connection"] = (*got, f"token {held.token}")
        stop = asyncio.Event()
        runs = [0]
        task = asyncio.create_task(busy_cycle(rig, stop, runs))
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        got = await measure(rig, started, n)
        rate = runs[0] / (time.monotonic() - t0 + 0.2)
        stop.set()
        await task
        results["cycle running in this process"] = (*got, f"{rate:.0f} reconciliations/s")
    return results


def render(n: int, results: dict[str, tuple[list[float], list[float], str]], total: float) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    cpu = os.cpu_count()
    lines = [
        "## Telegram /status while the lease is held (`benchmarks/telegram_bench.py`)",
        "",
        f"Measured {when} on {cpu} cores, shared VM, results vary run to run; Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}. Whole run: {total:.0f} s.",
        "The real python-telegram-bot 22 Application (concurrent updates on) against the local "
        "fake Bot API server (`tests/fake_telegram.py`), a real Daemon on a paper exchange with "
        f"two open positions with verified stops; {n} x /status per row, one after the other. "
        "*Handler*: the update entering the handlers -> the fake server receiving the "
        "sendMessage. *End to end*: the update queued in the fake server -> that sendMessage "
        "(adds the long poll hand-over).",
        "",
        "| condition | handler p50 (ms) | p95 | max | end to end p50 (ms) | p95 | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (handler, e2e, note) in results.items():
        lines.append(
            f"| {name} | {statistics.median(handler):.1f} | {pct(handler, 95):.1f} | "
            f"{max(handler):.1f} | {statistics.median(e2e):.1f} | {pct(e2e, 95):.1f} | {note} |"
        )
    lines += [
        "",
        "Reading: /status only reads, so it never waits for the lease: with the lease held by "
        "another connection its median stays at the idle figure. A cycle working in the same "
        "process shares the event loop and the one SQLite connection (whose lock serialises "
        "transactions) with /status, which is where its extra milliseconds come from.",
    ]
    return "\n".join(lines)


def write_section(body: str) -> None:
    from benchmarks.docsection import write_section as write_doc_section

    write_doc_section("telegram-bench", body)


async def run(n: int) -> dict[str, tuple[list[float], list[float], str]]:
    with tempfile.TemporaryDirectory(prefix="warden-tg-bench-") as folder:
        return await bench(n, Path(folder))


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--requests", type=int, default=50, help="/status requests per row")
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL + 1)  # the runs' own log lines are not figures
    started = time.monotonic()
    results = asyncio.run(run(args.requests))
    body = render(args.requests, results, time.monotonic() - started)
    assert TOKEN not in body
    print(body)
    if not args.no_doc:
        write_section(body)
        print(f"updated {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
