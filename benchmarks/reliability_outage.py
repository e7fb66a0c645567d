"""Outages for minutes, and bad input by the thousand: what Warden does when things are down.

    .venv/bin/python benchmarks/reliability_outage.py [--exchange-seconds 120]
        [--telegram-seconds 60] [--database-seconds 30] [--fuzz-scale 10] [--no-doc]

Real time, nothing compressed: the real daemon (APScheduler jobs) in this process, with the
production read retries and busy timeout.

1. The exchange: the real OKX adapter (ccxt) against the fake OKX of the tests, one BTC long
   with its verified stop, the watchdog every 2 s. For ``--exchange-seconds`` every request
   fails: 503, then 429 (OKX 50011), then dropped connections, in turns of 20 s; 5 s in, the
   stop is canceled on the exchange. Counted: failed watchdog runs, alerts raised for the
   outage, writes sent during it (must be 0), time from the exchange's return to the stop read
   back live and to the "reachable again" alert, alerts lost.
2. Telegram: the real bot (python-telegram-bot) against the fake Bot API behind a proxy, the
   daemon trading the bundled replay (the demo's strategies, fault injection on). For
   ``--telegram-seconds`` Telegram answers 500 (first half), then refuses connections. Alerts
   queued meanwhile (the strategies' and one every 2 s) must all arrive afterwards, once each,
   in order; backoff 1 s doubling to 10 s.
3. The database: another connection holds SQLite's write lock for ``--database-seconds``
   (busy_timeout 10 s, as shipped); the replay would enter meanwhile. Counted: orders sent
   while nothing could be stored (must be 0), alerts that could not be stored (each must be in
   the log), time to recover, alerts lost.
4. Bad input: tests/test_bad_input_*.py's properties (all but the full-run scan) in a child
   pytest with ``WARDEN_FUZZ_SCALE`` times their examples, in parallel with the above.

Prints the figures and rewrites its own section of ``docs/benchmarks.md`` (between
``<!-- reliability-outage -->`` and ``<!-- /reliability-outage -->``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import io
import json
import logging
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bot.config.secrets  # noqa: E402
from bot.config import Config  # noqa: E402
from bot.daemon import Daemon  # noqa: E402
from bot.notify import TerminalNotifier  # noqa: E402
from bot.telegram import start_telegram  # noqa: E402
from storage.db import Database  # noqa: E402
from tests.fake_okx import API_KEY, PASSPHRASE, SECRET  # noqa: E402
from tests.fake_telegram import FakeTelegram  # noqa: E402
from tests.rig_outages import (  # noqa: E402
    Cuttable,
    DownOkx,
    long_path,
    okx_config,
    outbox,
    replay_daemon_config,
    telegram_alerts,
    terminal_alerts,
    write_lock_held,
)
from tests.telegram_rig import TOKEN, secrets, settings  # noqa: E402
from trading.journal import Severity  # noqa: E402
from trading.models import PositionSide  # noqa: E402
from trading.paper import PaperExchange  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Figures measured by the scripts in `benchmarks/`. Each script rewrites only its own "
    "section, between its markers.\n"
)
BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"


class Count(logging.Handler):
    """Counts the log events (``trading.logfmt.event`` names) it sees."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.seen[record.getMessage()] += 1


@dataclass
class Outage:
    name: str
    seconds: float
    failed_runs: int = 0
    outage_alerts: int = 0
    writes_during: int = 0
    orders_during: int = 0
    recovered_after: float | None = None  # s from the end of the outage
    restored_after: float | None = None
    alerts: int = 0
    lost: int = 0
    twice: int = 0
    out_of_order: bool = False
    not_stored: int = 0
    notes: list[str] = field(default_factory=list)


def delivery(expected: list[str], received: list[str]) -> tuple[int, int, bool]:
    """(lost, delivered more than once, order broken) of ``received`` against ``expected``."""
    counts = Counter(received)
    lost = sum(1 for t in expected if counts[t] == 0)
    twice = sum(1 for t in set(expected) if counts[t] > expected.count(t))
    seen = [t for t in received if t in set(expected)]
    return lost, twice, seen != [t for t in expected if t in set(seen)]


async def wait_for(check: Any, timeout: float) -> float | None:
    """Seconds until ``check()`` (sync or async) holds, None if it never did."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    return None


# --- 1. the exchange -------------------------------------------------------------------------


async def exchange_outage(folder: Path, seconds: float) -> Outage:
    os.environ.update(
        {"OKX_API_KEY": API_KEY, "OKX_API_SECRET": SECRET, "OKX_API_PASSPHRASE": PASSPHRASE}
    )
    bot.config.secrets._process = None
    result = Outage("exchange down (503, 429, dropped connections)", seconds)
    fake = DownOkx(demo=True)
    await fake.start()
    db_path = folder / "exchange.db"
    db = await Database.open(db_path)
    stream = io.StringIO()
    raw = okx_config(db_path, fake.url).model_dump()
    raw["guardian"]["watchdog_seconds"] = 2.0
    daemon = Daemon(Config.model_validate(raw), db, TerminalNotifier(stream))
    try:
        acct = daemon.accounts["okx"]
        async with daemon.leases.hold("okx:main", "benchmark open") as lease:
            opened = await acct.executor.open(lease, BTC, PositionSide.LONG, 0.01, 65_600.0, "b")
        assert opened.ok, opened.detail
        (algo,) = fake.algo_list("live")
        await daemon.start()
        wd = daemon.watchdogs["okx"]
        await wait_for(lambda: wd.stats.runs >= 1, 30)
        failures = wd.stats.failures
        start = time.monotonic()
        modes = ["503", "429", "drop"]
        removed = False
        while (elapsed := time.monotonic() - start) < seconds:
            fake.down(modes[int(elapsed // 20) % 3])
            if not removed and elapsed >= 5:
                fake.cancel_algo_outside(algo["algoId"])
                removed = True
            await asyncio.sleep(0.2)
        result.failed_runs = wd.stats.failures - failures
        result.writes_during = sum(1 for r in fake.refused if r[1] != "GET")
        fake.up()

        async def back() -> bool:
            return any("reachable again" in a["text"] for a in await outbox(db))

        restored, recovered = await asyncio.gather(
            wait_for(lambda: bool(fake.algo_list("live")), 120), wait_for(back, 120)
        )
        result.restored_after, result.recovered_after = restored, recovered
        await asyncio.sleep(1.0)
    finally:
        await daemon.stop()
        rows = await outbox(db)
        await db.close()
        await fake.stop()
    result.outage_alerts = sum(1 for a in rows if a["key"] == "watchdog-error:okx:main")
    texts = [a["text"] for a in rows]
    result.alerts = len(texts)
    result.lost, result.twice, result.out_of_order = delivery(texts, terminal_alerts(stream))
    result.orders_during = result.writes_during
    result.notes.append(f"{len(fake.refused)} requests refused")
    return result


# --- 2. Telegram ----------------------------------------------------------------------------


async def telegram_outage(folder: Path, seconds: float) -> Outage:
    result = Outage("Telegram down (500, then connection refused)", seconds)
    fake = await FakeTelegram(TOKEN).start()
    proxy = await Cuttable(fake.port).start()
    db_path = folder / "telegram.db"
    db = await Database.open(db_path)
    raw = {
        "storage": {"path": str(db_path)},
        "guardian": {"verify_delay_seconds": 0.5, "watchdog_seconds": 2.0},
        "exchanges": {
            "paper": {
                "kind": "paper",
                "faults": {"seed": 7, "stop_silent_fail": 1, "stop_silent_fail_rate": 0.15},
                "replay": {"data": "bundled", "seconds_per_candle": 0.5, "warmup_candles": 120},
            }
        },
        "strategies": [
            {
                "name": "btc_momentum",
                "kind": "momentum_breakout",
                "exchange": "paper",
                "symbols": [BTC],
            },
            {
                "name": "eth_bollinger",
                "kind": "bollinger",
                "exchange": "paper",
                "symbols": [ETH],
                "params": {"mode": "mean_reversion"},
            },
        ],
    }
    daemon = Daemon(Config.model_validate(raw), db)
    tg = settings(fake, api_base_url=proxy.url, retry_base_seconds=1.0, retry_max_seconds=10.0)
    handle = await start_telegram(daemon, secrets(), tg)
    daemon.notifier = handle.notifier
    try:
        await daemon.start()
        await asyncio.sleep(2.0)
        n0 = len(fake.calls)
        start = time.monotonic()
        fake.fail(500, seconds=seconds / 2 + 5, methods=None)  # until after the cut
        cut = False
        i = 0
        while (elapsed := time.monotonic() - start) < seconds:
            if not cut and elapsed >= seconds / 2:
                await proxy.cut()
                cut = True
            if elapsed >= 2.0 * i:
                await daemon.accounts["paper"].journal.alert(
                    Severity.WARNING, f"benchmark marker #{i} while Telegram is down"
                )
                i += 1
            await asyncio.sleep(0.1)
        during = [c for c in fake.calls[n0:] if c.method == "sendMessage" and c.status == 200]
        result.writes_during = len(during)
        await proxy.restore()

        async def drained() -> bool:
            return await daemon.outbox.undelivered_count() == 0

        result.restored_after = await wait_for(drained, 180)
        result.failed_runs = handle.notifier.failures
        cycles = len(await daemon.cycles.recent("btc_momentum", 100_000))
        result.notes.append(f"{i} markers queued; {cycles} btc_momentum cycles ran")
    finally:
        await handle.stop_commands()
        await daemon.stop()
        await handle.stop()
        rows = await outbox(db)
        await db.close()
        await proxy.stop()
        await fake.stop()
    texts = [a["text"] for a in rows]
    received = telegram_alerts(fake)  # a photo alert's caption counts as its text
    result.alerts = len(texts)
    result.lost, result.twice, result.out_of_order = delivery(texts, received)
    return result


# --- 3. the database ----------------------------------------------------------------------------


async def database_outage(folder: Path, seconds: float, counter: Count) -> Outage:
    result = Outage("database write-locked by another process", seconds)
    db_path = folder / "busy.db"
    db = await Database.open(db_path)
    stream = io.StringIO()
    config = replay_daemon_config(
        db_path,
        folder / "data",
        long_path(20, lead=10),
        1.0,
        guardian={"verify_delay_seconds": 0.5, "watchdog_seconds": 2.0},
    )
    daemon = Daemon(config, db, TerminalNotifier(stream))
    ex = daemon.accounts["paper"].exchange
    assert isinstance(ex, PaperExchange)
    try:
        await daemon.start()
        await asyncio.sleep(1.0)
        orders = len(await ex.trades())
        before = counter.seen["alert.not_stored"]
        wd = daemon.watchdogs["paper"]
        failures = wd.stats.failures
        acct = daemon.accounts["paper"]
        lease = await daemon.leases.acquire(acct.scope, "benchmark open", wait=30)
        try:
            async with write_lock_held(db_path):
                t0 = time.monotonic()
                try:  # an entry decided in the lock: its intent cannot be stored first
                    await acct.executor.open(lease, BTC, PositionSide.LONG, 0.01, 65_600.0, "b")
                    result.notes.append("an entry asked for in the lock went through (!)")
                except sqlite3.OperationalError as exc:
                    result.notes.append(f"an entry asked for in the lock was refused ({exc})")
                await asyncio.sleep(max(0.0, seconds - (time.monotonic() - t0)))
                result.orders_during = len(await ex.trades()) - orders
        finally:
            with contextlib.suppress(Exception):
                await lease.release()
        released = time.time()
        result.failed_runs = wd.stats.failures - failures
        result.not_stored = counter.seen["alert.not_stored"] - before

        async def back() -> bool:
            return any("writable again" in a["text"] for a in await outbox(db))

        async def cycling() -> bool:
            done = [r for r in await daemon.cycles.recent("momo", 1000) if r.ended_at]
            return any(r.started_at > released for r in done)

        async def entered() -> bool:
            return any(r.outcome == "entered" for r in await daemon.cycles.recent("momo", 1000))

        recovered, restored = await asyncio.gather(wait_for(back, 120), wait_for(cycling, 120))
        result.recovered_after, result.restored_after = recovered, restored
        entry = await wait_for(entered, 120)
        result.notes.append(
            "the entry the strategy wanted came "
            + (f"{entry:.0f} s later, when the replay reached it" if entry else "NEVER")
        )
        await asyncio.sleep(1.0)
    finally:
        await daemon.stop()
        rows = await outbox(db)
        await db.close()
    texts = [a["text"] for a in rows]
    result.alerts = len(texts)
    result.lost, result.twice, result.out_of_order = delivery(texts, terminal_alerts(stream))
    result.notes.append(
        f"{counter.seen['job.storage_failed']} jobs failed on storage, each logged in one line"
    )
    return result


# --- 4. bad input ---------------------------------------------------------------------------


def fuzz(scale: int, report: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, WARDEN_FUZZ_SCALE=str(scale), WARDEN_FUZZ_REPORT=str(report))
    for name in ("OKX_API_KEY", "OKX_API_SECRET", "OKX_API_PASSPHRASE"):
        env.pop(name, None)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "timeout=3000",
        *map(str, sorted((ROOT / "tests").glob("test_bad_input_*.py"))),
        "-k",
        "not full_run and not leak_finder and not stranger",
    ]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


# --- report -----------------------------------------------------------------------------------


def fmt(x: float | None) -> str:
    return "never" if x is None else f"{x:.1f}"


def render(outages: list[Outage], tried: dict[str, int], fuzz_ok: bool, took: float) -> str:
    day = dt.date.today().isoformat()
    cpu = os.cpu_count()
    lines = [
        "## Reliability under outages and bad input (`benchmarks/reliability_outage.py`)",
        "",
        f"Measured {day} on {cpu} cores, shared VM, results vary run to run; Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}. Whole run: {took:.0f} s. "
        "Real time, nothing compressed: the real daemon in one process, production read "
        "retries (4 attempts, 0.25 s doubling) and busy_timeout (10 s); watchdog every 2 s.",
        "",
        "| outage | length (s) | failed runs | alerts for it | orders sent during | "
        'service back after (s) | "again" alert after (s) | alerts | lost | '
        "twice | order kept | not storable (in the log) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outages:
        lines.append(
            f"| {o.name} | {o.seconds:.0f} | {o.failed_runs} | "
            f"{o.outage_alerts if o.name.startswith('exchange') else '-'} | {o.orders_during} | "
            f"{fmt(o.restored_after)} | "
            f"{fmt(o.recovered_after) if not o.name.startswith('Telegram') else '-'} | "
            f"{o.alerts} | {o.lost} | "
            f"{o.twice} | {'yes' if not o.out_of_order else 'NO'} | {o.not_stored} |"
        )
    lines.append("")
    for o in outages:
        if o.notes:
            lines.append(f"- {o.name}: " + "; ".join(o.notes) + ".")
    survived = sum(o.seconds for o in outages if o.lost == 0 and o.twice == 0)
    total = sum(tried.values())
    lines += [
        "",
        "Columns: *failed runs* are watchdog runs that could not complete (for Telegram: "
        "failed sends); *alerts for it* the alerts the outage raised (re-raised every 15 "
        "min while it lasts, not once per run); *orders sent during* writes that reached "
        "the exchange while it, or the database, was down (nothing may be sent on a guess or "
        "without its stored intent); *service back after*: from the end of the outage to the "
        "removed stop read back live (exchange), to every alert queued meanwhile delivered "
        "(Telegram), to the first strategy cycle completed (database); *again alert*: the "
        "watchdog's 'reachable again' / 'writable again' alert queued; *lost/twice/order "
        "kept* compare the outbox with what the terminal or the chat received; *not "
        "storable*: alerts raised while the database could not take them, each logged at "
        "CRITICAL instead.",
        "",
        f"**Bad inputs tried**: {total:,} generated inputs (hypothesis, derandomized, "
        f"tests/test_bad_input_*.py at {tried.get('_scale', 0)}x its CI examples), "
        f"{'all passed' if fuzz_ok else 'FAILURES, see the run'}:",
        "",
        "| property | inputs |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:,} |" for k, v in tried.items() if not k.startswith("_")]
    lines += [
        "",
        f"**Reliability**: {survived / 60:.1f} outage minutes survived with zero lost and "
        f"zero duplicated alerts; {total:,} bad inputs tried without a crash or an order.",
    ]
    return "\n".join(lines)


def write_section(body: str) -> None:
    from benchmarks.docsection import write_section as write_doc_section

    write_doc_section("reliability-outage", body)


async def run(args: argparse.Namespace, folder: Path, counter: Count) -> list[Outage]:
    out = [await exchange_outage(folder, args.exchange_seconds)]
    print(out[-1], flush=True)
    out.append(await telegram_outage(folder, args.telegram_seconds))
    print(out[-1], flush=True)
    out.append(await database_outage(folder, args.database_seconds, counter))
    print(out[-1], flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--exchange-seconds", type=float, default=120.0)
    parser.add_argument("--telegram-seconds", type=float, default=60.0)
    parser.add_argument("--database-seconds", type=float, default=30.0)
    parser.add_argument("--fuzz-scale", type=int, default=10)
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL + 1)  # the runs' own log lines are not figures
    counter = Count()
    for name in ("warden",):
        logging.getLogger(name).addHandler(counter)
        logging.getLogger(name).setLevel(logging.INFO)
        logging.getLogger(name).propagate = False
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="warden-outage-bench-") as tmp:
        folder = Path(tmp)
        report = folder / "fuzz.json"
        child = fuzz(args.fuzz_scale, report)
        try:
            outages = asyncio.run(run(args, folder, counter))
            out, _ = child.communicate(timeout=3000)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        fuzz_ok = child.returncode == 0
        if not fuzz_ok:
            print(out.decode(errors="replace")[-4000:])
        tried: dict[str, int] = {}
        with contextlib.suppress(FileNotFoundError, ValueError):
            tried = json.loads(report.read_text(encoding="utf-8"))
        tried["_scale"] = args.fuzz_scale
    body = render(outages, tried, fuzz_ok, time.monotonic() - started)
    assert TOKEN not in body
    print(body)
    if not args.no_doc:
        write_section(body)
        print(f"updated {DOC.relative_to(ROOT)}")
    bad = any(o.lost or o.twice or o.out_of_order or o.orders_during for o in outages)
    return 1 if bad or not fuzz_ok else 0


if __name__ == "__main__":
    sys.exit(main())
