"""Cycle latency against the paper exchange with 50 ms of simulated latency per exchange call.

    .venv/bin/python benchmarks/cycle_bench.py [--repeats 5] [--latency-ms 50] [--no-doc]

The real thing: the SQLite-backed paper exchange and journal in a throwaway database, the
account wired by ``bot.services.build_account``, one ``run_cycle`` of a momentum strategy over
1, 10 and 50 synthetic markets, each cycle under a real execution lease (acquire + release
included). Two states of the account:

- *flat*: no position; the cycle fetches candles, decides (entries held back, so every cycle
  is the same), and the guardian checks the account;
- *50 positions*: every market holds a position with a verified stop (opened by hand, not by
  the strategy, so the strategy leaves them alone); the guardian checks each one.

Prints the figures and rewrites its own section of ``docs/benchmarks.md`` (between
``<!-- cycle-bench -->`` and ``<!-- /cycle-bench -->``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.config.schema import Config  # noqa: E402
from bot.cycles import build_runs  # noqa: E402
from bot.services import Account, build_account  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.held_lease import LeaseManager  # noqa: E402
from storage.lease import LeaseStore  # noqa: E402
from trading import datagen  # noqa: E402
from trading.cycle import FETCH_CONCURRENCY, StrategyRun, run_cycle  # noqa: E402
from trading.models import PositionSide  # noqa: E402
from trading.paper import PaperExchange  # noqa: E402

MARKETS = 50
SIZES = (1, 10, 50)
CANDLES = 120
DOC = ROOT / "docs" / "benchmarks.md"


def symbol(i: int) -> str:
    return f"S{i:02d}/USDT:USDT"


def bench_config(path: Path) -> Config:
    markets = [
        {
            "symbol": symbol(i),
            "price": 100.0,
            "min_size": 0.01,
            "size_step": 0.01,
            "price_step": 0.01,
        }
        for i in range(MARKETS)
    ]
    return Config.model_validate(
        {
            "storage": {"path": str(path)},
            "risk": {"max_open_positions": MARKETS},
            "exchanges": {"paper": {"kind": "paper", "markets": markets}},
            "strategies": [
                {
                    "name": "bench",
                    "kind": "momentum_breakout",
                    "exchange": "paper",
                    "symbols": [symbol(i) for i in range(MARKETS)],
                }
            ],
        }
    )


async def no_sleep(_: float) -> None:
    return None


@dataclass
class Row:
    state: str
    symbols: int
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


async def prepare(acct: Account, leases: LeaseManager) -> None:
    ex = acct.exchange
    assert isinstance(ex, PaperExchange)
    for i in range(MARKETS):
        spec = datagen.SeriesSpec(symbol(i), 100.0, 2, 2, 1000.0, 0.004, 10 + i)
        candles = [b.candle for b in datagen.generate(spec, count=CANDLES)]
        await ex.load_candles(symbol(i), candles, timeframe="30m", warmup=CANDLES)


async def open_all(acct: Account, leases: LeaseManager) -> None:
    """A long on every market with a verified stop 5% below, opened by hand."""
    for i in range(MARKETS):
        last = (await acct.exchange.ticker(symbol(i))).last
        stop = round(last * 0.95, 2)
        async with leases.hold(acct.scope, "bench setup") as lease:
            res = await acct.executor.open(
                lease, symbol(i), PositionSide.LONG, 0.1, stop, "bench setup"
            )
        assert res.ok, res.detail


async def measure(
    acct: Account, leases: LeaseManager, run: StrategyRun, n: int, repeats: int
) -> list[float]:
    spec = replace(run, symbols=run.symbols[:n])
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        async with leases.hold(acct.scope, spec.purpose) as lease:
            report = await run_cycle(
                lease,
                spec,
                acct.exchange,
                acct.executor,
                acct.guardian,
                acct.journal,
                acct.scope,
                allow_entries=False,
            )
        out.append(time.perf_counter() - started)
        assert not report.errors, report.errors
    return out


async def bench(repeats: int, latency_ms: int) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="cycle-bench-") as tmp:
        config = bench_config(Path(tmp) / "bench.db")
        db = await Database.open(config.storage.path)
        try:
            acct = build_account(config, "paper", db, sleep=no_sleep)
            ex = acct.exchange
            assert isinstance(ex, PaperExchange)
            leases = LeaseManager(LeaseStore(db), ttl=30, heartbeat=5)
            [run] = build_runs(config)
            await prepare(acct, leases)
            for state in ("flat", f"{MARKETS} positions"):
                if state != "flat":
                    await ex.set_faults(latency_ms=0)
                    await open_all(acct, leases)
                await ex.set_faults(latency_ms=latency_ms)
                for n in SIZES:
                    row = Row(state, n, await measure(acct, leases, run, n, repeats))
                    rows.append(row)
                    print(
                        f"{state:>13}, {n:2d} symbols: median {row.median * 1000:7.1f} ms "
                        f"(min {min(row.seconds) * 1000:.1f}, max {max(row.seconds) * 1000:.1f})",
                        flush=True,
                    )
        finally:
            await db.close()
    return rows


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
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def render(rows: list[Row], repeats: int, latency_ms: int) -> str:
    lines = [
        "## Cycle latency (`benchmarks/cycle_bench.py`)",
        "",
        f"Measured {dt.date.today().isoformat()} on {machine_note()}.",
        f"Paper exchange on a throwaway SQLite database with {latency_ms} ms of simulated "
        "latency on every exchange call; the account wired by `bot.services.build_account`; "
        "one `run_cycle` of `momentum_breakout` under a real execution lease (acquire and "
        f"release included); candles fetched {FETCH_CONCURRENCY} at a time "
        f"(`trading/cycle.py` `FETCH_CONCURRENCY`). Median of {repeats} cycles.",
        "",
        "| account | symbols | median (ms) | min (ms) | max (ms) | x the 1-symbol cycle |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = next(x for x in rows if x.state == r.state and x.symbols == 1).median
        lines.append(
            f"| {r.state} | {r.symbols} | {r.median * 1000:.0f} | {min(r.seconds) * 1000:.0f} "
            f"| {max(r.seconds) * 1000:.0f} | {r.median / base:.1f} |"
        )
    flat = {r.symbols: r.median for r in rows if r.state == "flat"}
    held = {r.symbols: r.median for r in rows if r.state != "flat"}
    lines += [
        "",
        f"Reading: with no position the 50-symbol cycle takes {flat[50] / flat[1]:.1f}x the "
        f"1-symbol one, far from 50x: candles are fetched concurrently (ceil(50/"
        f"{FETCH_CONCURRENCY}) = {-(-50 // FETCH_CONCURRENCY)} rounds of {latency_ms} ms), then "
        "a few account-wide reads (positions; the guardian's markets, positions, open stops). "
        f"With {MARKETS} positions open, every cycle, whatever its symbols, ends with the "
        "guardian checking the whole account; it reads the positions' last prices 8 at a time "
        "(`Guardian._last_prices`; read one after another they cost "
        f"{MARKETS} x {latency_ms} ms = {MARKETS * latency_ms / 1000:.1f} s), so a 1-symbol "
        f"cycle takes {held[1]:.1f} s.",
    ]
    return "\n".join(lines)


def write_section(body: str) -> None:
    from benchmarks.docsection import write_section as write_doc_section

    write_doc_section("cycle-bench", body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args()
    rows = asyncio.run(bench(args.repeats, args.latency_ms))
    if not args.no_doc:
        write_section(render(rows, args.repeats, args.latency_ms))
        print(f"updated {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
