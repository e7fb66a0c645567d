"""Reliability under crashes and races, with REAL processes: the fuller runs of
``tests/test_crash.py`` and ``tests/test_races.py``.

    .venv/bin/python benchmarks/reliability.py [--crash-runs 3] [--kills 20]
                                               [--race-trials 20] [--processes 16] [--no-doc]

1. Crash points: for every crash case of ``tests/test_crash.py`` (each named crash point of
   ``trading/crashpoints.py`` in `warden open`, two more in `warden close`), ``--crash-runs``
   times: the command SIGKILLed there, `warden run` restarted on the same database; survived
   = within the poll every invariant held (no duplicate position, every position with exactly
   one live stop read back and recorded verified, no intent pending/unknown or lost, the dead
   holder's lease taken over) and the daemon then stopped cleanly on SIGTERM.
2. Random kills: one `warden run` on a fast replay (both strategies, 30% of stops fail
   silently, 15 ms per exchange call), SIGKILLed ``--kills`` times at seeded random moments and
   restarted each time, then stopped cleanly; survived = the invariants held after the restart,
   and no position was ever seen larger than one entry (sampled every 20 ms).
3. Races: ``--race-trials`` trials, each ``--processes`` `warden open` at once on one symbol
   while the daemon runs cycles on it and the owner's /close arrives through Telegram (the
   daemon's real client against the local fake Bot API server; 50 ms per exchange call);
   without a double = the position sampled every 10 ms was never larger than one entry, every
   loser exited 75 or 1 with its refusal on record, every winner sent one entry.

Prints the figures and rewrites its own section of ``docs/benchmarks.md`` (between
``<!-- reliability-crash -->`` and ``<!-- /reliability-crash -->``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.rig_crash import CASES, KillReport, crash_and_recover, random_kills  # noqa: E402
from tests.rig_races import TrialReport, race_trial  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Figures measured by the scripts in `benchmarks/`. Each script rewrites only its own "
    "section, between its markers.\n"
)
T = TypeVar("T")


@dataclass
class Tally:
    runs: int = 0
    ok: int = 0
    seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def attempt(tally: Tally, label: str, fn: Callable[[], T]) -> T | None:
    tally.runs += 1
    t0 = time.monotonic()
    try:
        result = fn()
    except AssertionError as exc:
        tally.failures.append(f"{label}: {str(exc)[:500]}")
        print(f"  {label}: FAILED: {str(exc)[:500]}", flush=True)
        return None
    tally.ok += 1
    tally.seconds.append(time.monotonic() - t0)
    return result


def crash_points(work: Path, runs: int) -> dict[str, Tally]:
    tallies: dict[str, Tally] = {}
    for point in CASES:
        tally = tallies.setdefault(point, Tally())
        for i in range(runs):
            res = attempt(
                tally,
                f"{point} #{i + 1}",
                partial(crash_and_recover, work / f"crash-{point}-{i}", point),
            )
            if res is not None:
                tally.seconds[-1] = res.recovered_seconds
                print(
                    f"crash {point} #{i + 1}: recovered in {res.recovered_seconds:.1f}s", flush=True
                )
    return tallies


def kills(work: Path, n: int, seed: int) -> tuple[Tally, KillReport]:
    tally, report = Tally(), KillReport()
    attempt(
        tally, f"random kills (seed {seed})", lambda: random_kills(work / "kills", n, seed, report)
    )
    print(
        f"random kills: {report.survived}/{report.kills} restarts held every invariant "
        f"({report.takeovers} taken over mid-lease, {report.entries} entries, "
        f"{report.samples} position samples)",
        flush=True,
    )
    return tally, report


def races(work: Path, trials: int, processes: int) -> tuple[Tally, list[TrialReport]]:
    tally, reports = Tally(), []
    for t in range(trials):
        r = attempt(
            tally,
            f"race trial {t + 1}",
            partial(race_trial, work / f"race-{t}", seed=t, processes=processes),
        )
        if r is not None:
            reports.append(r)
            print(
                f"race {t + 1}/{trials}: {r.winners} won, {r.busy} busy (75), {r.refused} "
                f"refused (1), {r.closed} closed, largest position {r.max_size}",
                flush=True,
            )
    return tally, reports


def render(
    crash: dict[str, Tally],
    kill_tally: Tally,
    kill: KillReport,
    race_tally: Tally,
    race_reports: list[TrialReport],
    processes: int,
    seconds: float,
) -> str:
    today = dt.date.today().isoformat()
    crash_ok = sum(t.ok for t in crash.values())
    crash_runs = sum(t.runs for t in crash.values())
    lines = [
        "## Reliability: crashes and races (`benchmarks/reliability.py`)",
        "",
        f"Measured {today} on {os.cpu_count()} cores, shared VM; Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}. Whole run: "
        f"{seconds:.0f} s. Real processes (`warden open`, `warden close`, `warden run`) on one "
        "paper account in SQLite; kills are SIGKILL (no cleanup at all).",
        "",
        "| reliability | result |",
        "|---|---|",
        f"| crash points survived | {crash_ok}/{crash_runs} "
        f"({len(crash)} cases x {max(t.runs for t in crash.values())} runs) |",
        f"| random kills of the daemon survived | {kill.survived}/{kill.kills} "
        f"({kill.takeovers} while it held the lease) |",
        f"| race trials without a double | {race_tally.ok}/{race_tally.runs} |",
        f"| processes raced | {processes} `warden open` x {race_tally.runs} trials = "
        f"{processes * race_tally.runs}, plus the daemon's cycles and a Telegram /close |",
        "",
        "**Crash points**: `warden open BTC long 0.001` (or, for `close_*`, `warden close BTC` "
        "of that protected position) with `WARDEN_CRASH_AT=<point>` dies by SIGKILL there "
        "(`during_emergency_close`: every stop fails silently); `warden run` (no strategies, "
        "watchdog every 1 s) restarts on the same database. *Survived*: within the poll, no "
        "duplicate position (exactly 0.001 or none), every position with exactly one live stop "
        "read back and recorded verified, no intent pending/unknown or lost, the dead holder's "
        "lease taken over at once (pid dead, not expired), the expected incident and exit on "
        "record, every alert delivered, then a clean stop. *Recovery*: daemon start -> every "
        "invariant held (includes process start-up and, for `after_intent_stored`, the ~5 s of "
        "client-id look-ups before an order is declared never placed).",
        "",
        "| crash case | survived | recovery p50 (s) | max (s) |",
        "|---|---|---|---|",
    ]
    for point, t in crash.items():
        p50 = f"{statistics.median(t.seconds):.1f}" if t.seconds else "-"
        top = f"{max(t.seconds):.1f}" if t.seconds else "-"
        lines.append(f"| `{point}` | {t.ok}/{t.runs} | {p50} | {top} |")
    won = sum(r.winners for r in race_reports)
    busy = sum(r.busy for r in race_reports)
    refused = sum(r.refused for r in race_reports)
    closed = sum(r.closed for r in race_reports)
    largest = max((r.max_size for r in race_reports), default=0.0)
    samples = sum(r.samples for r in race_reports)
    lines += [
        "",
        f"**Random kills**: one `warden run` on the bundled replay (a candle every 0.15 s, both "
        "strategies with fixed sizes, 30% of stops fail silently, 15 ms per exchange call), "
        f"SIGKILLed {kill.kills} times at seeded random moments 0.3-3 s apart, restarted each "
        f"time, then stopped cleanly; {kill.entries} entries over the run, {kill.samples} "
        "position samples, none larger than one entry. After each restart, entries are paused "
        "while the invariants are judged.",
        "",
        f"**Races**: per trial {processes} `warden open BTC long 0.001` processes at once on a "
        "fresh account, the daemon running a BTC strategy (a candle every 2 s) and serving "
        "Telegram (fake Bot API server): the owner's /close BTC, confirmed with its button, "
        "repeated until it closed something; 50 ms per exchange call. "
        f"Over all trials: {won} opens won, {busy} exited 75 (lease busy), {refused} exited 1 "
        f"(refused: the position existed), {closed} positions closed mid-race; largest position "
        f"ever sampled {largest} ({samples} samples). Every loser's refusal is on record.",
    ]
    failures = [f for t in (*crash.values(), kill_tally, race_tally) for f in t.failures]
    if failures:
        lines += ["", "Failures:", ""] + [f"- {f}" for f in failures]
    return "\n".join(lines)


def write_section(body: str) -> None:
    from benchmarks.docsection import write_section as write_doc_section

    write_doc_section("reliability-crash", body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crash-runs", type=int, default=3, help="runs per crash point")
    parser.add_argument("--kills", type=int, default=20, help="random SIGKILLs of the daemon")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--race-trials", type=int, default=20)
    parser.add_argument("--processes", type=int, default=16, help="`warden open` per trial")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="warden-reliability-"))
    started = time.monotonic()
    try:
        crash = crash_points(work, args.crash_runs)
        kill_tally, kill = kills(work, args.kills, args.seed)
        race_tally, race_reports = races(work, args.race_trials, args.processes)
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    body = render(
        crash,
        kill_tally,
        kill,
        race_tally,
        race_reports,
        args.processes,
        time.monotonic() - started,
    )
    print()
    print(body)
    if not args.no_doc:
        write_section(body)
        print(f"updated {DOC.relative_to(ROOT)}")
    failed = kill_tally.failures or race_tally.failures or any(t.failures for t in crash.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
