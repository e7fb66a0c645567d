"""Detection latency of the two stop failures of the post-mortem, with Warden's default timings.

    .venv/bin/python benchmarks/detection_bench.py [--runs 10] [--removed-runs 10]
                                                   [--watchdog 30] [--no-doc]

1. Silent stop (I4): an ETH short whose first stop is acknowledged, then fails on the exchange
   (paper fault ``stop_silent_fail = 1``). Default verification: read back after 2 s, up to 3
   attempts. Runs one after the other (about 4 s each).
2. Stop removed (I5): a BTC long's verified stop is canceled behind the agent's back; the
   watchdog (default every 30 s) finds and restores it. The removal lands at an evenly spread
   phase of the watchdog interval ((i + 0.5) / N of it after a tick), so the N runs sample the
   whole interval instead of waiting for chance. The runs go concurrently (each on its own
   throwaway database, paper exchange and watchdog), so N of them take one interval plus the
   verification, not N intervals.

Everything is real: the product's config defaults, ``build_account``, the paper exchange on
SQLite, the lease, the ``Watchdog``. Times are wall-clock, read from the journal's records.
Prints the figures and rewrites its own section of ``docs/benchmarks.md`` (between
``<!-- detection-bench -->`` and ``<!-- /detection-bench -->``).
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
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.config.schema import Config  # noqa: E402
from bot.drills.harness import drill_env  # noqa: E402
from bot.watchdog import Watchdog  # noqa: E402
from trading.executor import Outcome  # noqa: E402
from trading.models import PositionSide  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Figures measured by the scripts in `benchmarks/`. Each script rewrites only its own "
    "section, between its markers.\n"
)
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


async def silent_stop_run(base: Config) -> dict[str, float]:
    async with drill_env(base, faults={"stop_silent_fail": 1}) as env:
        acct = env.account
        async with env.leases.hold(acct.scope, "bench silent-stop") as lease:
            res = await acct.executor.open(
                lease, ETH, PositionSide.SHORT, 0.3, 1983.41, "bench silent-stop"
            )
        if res.outcome is not Outcome.PROTECTED or res.detection_latency is None:
            raise RuntimeError(f"silent-stop run did not end protected: {res.detail}")
        records = sorted(await acct.journal.stops_for(acct.scope, ETH), key=lambda r: r.id)
        first, last = records[0], records[-1]
        assert last.verified_at is not None
        [incident] = await acct.journal.incidents(acct.scope)
        assert incident.resolved_at is not None and incident.unprotected_since is not None
        return {
            "detection": res.detection_latency,
            "reverified": last.verified_at - first.placed_at,
            "unprotected": incident.resolved_at - incident.unprotected_since,
            "attempts": float(res.stop_attempts),
        }


async def stop_removed_run(base: Config, interval: float, phase: float) -> dict[str, float]:
    async with drill_env(base) as env:
        acct = env.account
        async with env.leases.hold(acct.scope, "bench stop-removed") as lease:
            res = await acct.executor.open(
                lease, BTC, PositionSide.LONG, 0.001, 65_600.0, "bench stop-removed"
            )
        if res.outcome is not Outcome.PROTECTED:
            raise RuntimeError(f"stop-removed run could not open: {res.detail}")
        dog = Watchdog(acct, env.leases, interval)
        halt = asyncio.Event()
        task = asyncio.create_task(dog.run_forever(halt))
        try:
            while dog.stats.runs < 1:  # the first tick runs at once and finds all well
                await asyncio.sleep(0.01)
            await asyncio.sleep(phase)
            [stop] = await env.paper.open_stops(BTC)
            await env.paper.cancel_stop(BTC, stop.id)
            removed = time.time()
            deadline = time.monotonic() + 2 * interval + 30
            restored_at: float | None = None
            while restored_at is None and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
                latest = (await acct.journal.stops_for(acct.scope, BTC, limit=1))[0]
                if latest.exchange_id != stop.id and latest.verified_at is not None:
                    restored_at = latest.verified_at
        finally:
            halt.set()
            await task
        if restored_at is None:
            raise RuntimeError("the removed stop was not restored in time")
        [incident] = await acct.journal.incidents(acct.scope)
        assert incident.resolved_at is not None and incident.unprotected_since is not None
        return {
            "phase": phase,
            "detection": incident.opened_at - removed,
            "restore": restored_at - removed,
            "unprotected_recorded": incident.resolved_at - incident.unprotected_since,
        }


def p50(values: list[float]) -> float:
    return statistics.median(values)


def machine_note() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), shared VM, results vary run to run; "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{platform.system()} {platform.release()}"
    )


def row(name: str, values: list[float]) -> str:
    return f"| {name} | {len(values)} | {p50(values):.2f} | {min(values):.2f} | {max(values):.2f} |"


def render(
    base: Config,
    silent: list[dict[str, float]],
    removed: list[dict[str, float]],
    interval: float,
    took: float,
) -> str:
    g = base.guardian
    window = g.verify_delay_seconds * g.verify_attempts
    lines = [
        "## Stop failure detection (`benchmarks/detection_bench.py`)",
        "",
        f"Measured {dt.date.today().isoformat()} on {machine_note()}. Whole run: {took:.0f} s.",
        f"Default guardian timings: read-back after {g.verify_delay_seconds:g} s, "
        f"{g.verify_attempts} attempts (verification window {window:g} s); watchdog every "
        f"{interval:g} s. Paper exchange on a throwaway SQLite database per run; wall-clock "
        "times from the journal's records.",
        "",
        f"**Silent stop** ({len(silent)} runs, one after the other): ETH short, the first stop "
        "is acknowledged and then fails on the exchange (failCode 1000). *Detection*: first "
        "placement -> the read-back that shows it failed. *Re-verified*: first placement -> "
        "the re-placed stop read back live. *Unprotected*: the incident's figure, fill -> "
        "verified live stop.",
        "",
        "| silent stop (s) | runs | p50 | min | max |",
        "|---|---|---|---|---|",
        row("detection latency", [r["detection"] for r in silent]),
        row("re-verified latency", [r["reverified"] for r in silent]),
        row("unprotected seconds", [r["unprotected"] for r in silent]),
        "",
        f"**Stop removed** ({len(removed)} runs, concurrent, each with its own watchdog): a "
        "BTC long's verified stop is canceled on the exchange at an evenly spread phase of "
        f"the {interval:g} s watchdog interval ((i + 0.5)/N after a tick). *Detection*: "
        "removal -> the watchdog's incident. *Restore*: removal -> the new stop read back "
        "live (the true unprotected time). *Recorded*: the incident's unprotected figure, "
        "which starts at the last time the stop was seen live (the previous tick), so it "
        "over-states rather than under-states.",
        "",
        "| stop removed (s) | runs | p50 | min | max |",
        "|---|---|---|---|---|",
        row("detection latency", [r["detection"] for r in removed]),
        row("restore latency (true unprotected)", [r["restore"] for r in removed]),
        row("unprotected seconds (recorded)", [r["unprotected_recorded"] for r in removed]),
        "",
        f"Reading: a silent failure is seen one read-back delay after placement "
        f"(~{g.verify_delay_seconds:g} s) and repaired one delay later; a removed stop waits "
        f"for the next watchdog tick, uniformly 0-{interval:g} s (p50 about half the "
        f"interval), then one read-back delay. The watchdog interval is the lever for the "
        "second figure (`[guardian] watchdog_seconds`).",
    ]
    return "\n".join(lines)


def write_section(body: str) -> None:
    from benchmarks.docsection import write_section as write_doc_section

    write_doc_section("detection-bench", body)


async def bench(runs: int, removed_runs: int, interval: float) -> tuple[list[Any], list[Any]]:
    base = Config()
    silent: list[dict[str, float]] = []
    for i in range(runs):
        r = await silent_stop_run(base)
        silent.append(r)
        print(
            f"silent stop {i + 1}/{runs}: detected {r['detection']:.3f}s, re-verified "
            f"{r['reverified']:.3f}s, unprotected {r['unprotected']:.3f}s",
            flush=True,
        )
    print(f"stop removed: {removed_runs} concurrent runs, watchdog every {interval:g}s", flush=True)
    phases = [(i + 0.5) * interval / removed_runs for i in range(removed_runs)]
    removed = await asyncio.gather(*(stop_removed_run(base, interval, p) for p in phases))
    for r in removed:
        print(
            f"stop removed at +{r['phase']:.1f}s: detected {r['detection']:.3f}s, restored "
            f"{r['restore']:.3f}s, recorded unprotected {r['unprotected_recorded']:.3f}s"
        )
    return silent, list(removed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="silent-stop runs")
    parser.add_argument("--removed-runs", type=int, default=10, help="stop-removed runs")
    parser.add_argument("--watchdog", type=float, default=Config().guardian.watchdog_seconds)
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL + 1)  # the runs' own log lines are not figures
    started = time.monotonic()
    silent, removed = asyncio.run(bench(args.runs, args.removed_runs, args.watchdog))
    body = render(Config(), silent, removed, args.watchdog, time.monotonic() - started)
    print()
    print(body)
    if not args.no_doc:
        write_section(body)
        print(f"updated {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
