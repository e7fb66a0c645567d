"""Backtest throughput: candles per second through the live cycle, one year of 30m candles.

    .venv/bin/python benchmarks/backtest_bench.py [--runs 3] [--no-doc]

One year = 17,520 candles per symbol, generated deterministically by ``trading.datagen`` (the
bundled data's generator, extended to a year; SYNTHETIC). Scenarios: one symbol with each built-in
strategy (the demo's parameters), and 5 symbols traded by one momentum strategy on one account.
Each runs ``--runs`` times in this process; the best and the median are reported. Prints the
figures and rewrites its own section of ``docs/benchmarks.md`` (between ``<!-- backtest-bench
-->`` and ``<!-- /backtest-bench -->``). Target: the one-symbol year in under 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.config.load import load_config  # noqa: E402
from bot.config.schema import PaperExchangeConfig  # noqa: E402
from bot.cycles import build_runs  # noqa: E402
from bot.exchanges import paper_settings  # noqa: E402
from bot.services import risk_limits, stop_policy  # noqa: E402
from trading import datagen  # noqa: E402
from trading.backtest import AccountSpec, SymbolData, backtest_settings, run_backtest  # noqa: E402
from trading.cycle import StrategyRun  # noqa: E402
from trading.paper import PaperMarketSettings  # noqa: E402
from trading.paper.core import PaperCore  # noqa: E402

YEAR = 365 * 48
DOC = ROOT / "docs" / "benchmarks.md"
TARGET_SECONDS = 2.0

# three more synthetic series next to the bundled two, with their own seeds and prices
EXTRA = (
    datagen.SeriesSpec("SOL/USDT:USDT", 150.0, 3, 2, 40_000.0, 0.0050, 3),
    datagen.SeriesSpec("XRP/USDT:USDT", 2.2, 4, 0, 2_000_000.0, 0.0045, 4),
    datagen.SeriesSpec("DOGE/USDT:USDT", 0.3, 5, 0, 9_000_000.0, 0.0055, 5),
)


@dataclass
class Figure:
    name: str
    symbols: int
    candles: int  # per symbol
    trades: int
    seconds: list[float]
    fills_share: float  # of the run time, spent in the paper exchange's fills()

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def rate(self, seconds: float) -> float:
        return self.symbols * self.candles / seconds


FILLS_SECONDS = [0.0]  # time spent inside the paper exchange's fills(), this process
_real_fills = PaperCore.fills


async def _timed_fills(
    self: PaperCore, symbol: str | None = None, since: float | None = None
) -> Any:
    started = time.perf_counter()
    try:
        return await _real_fills(self, symbol, since)
    finally:
        FILLS_SECONDS[0] += time.perf_counter() - started


def install_fills_timer() -> None:
    """Count the time the backtests spend in the paper exchange's ``fills()``."""
    PaperCore.fills = _timed_fills  # type: ignore[method-assign]


def market(spec: datagen.SeriesSpec) -> PaperMarketSettings:
    """A market whose size step is worth about 1-10 USDT, the price step the series' tick."""
    step = float(f"1e-{spec.price_decimals}")
    size = float(f"1e{math.floor(math.log10(10.0 / spec.start_price))}")
    return PaperMarketSettings(spec.symbol, spec.start_price, size, size, step)


def scenario(runs: tuple[StrategyRun, ...], specs: list[datagen.SeriesSpec]) -> AccountSpec:
    paper = load_config(None).exchanges["paper"]
    assert isinstance(paper, PaperExchangeConfig)
    settings = backtest_settings(paper_settings(paper), faults=False)
    settings = replace(settings, markets=tuple(market(s) for s in specs))
    data = {
        s.symbol: SymbolData([b.candle for b in datagen.generate(s, count=YEAR)]) for s in specs
    }
    return AccountSpec("paper", settings, runs, data)


def measure(name: str, spec: AccountSpec, repeats: int) -> Figure:
    config = load_config(None)
    # the account may hold one position per symbol (the demo's global limit is 2)
    risk = replace(risk_limits(config), max_open_positions=max(2, len(spec.data)))
    seconds, trades = [], 0
    FILLS_SECONDS[0] = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        result = asyncio.run(run_backtest([spec], risk, stop_policy(config)))
        seconds.append(time.perf_counter() - started)
        trades = result.total.trades
    symbols = len(spec.data)
    fig = Figure(name, symbols, YEAR, trades, seconds, FILLS_SECONDS[0] / sum(seconds))
    print(
        f"{name}: {symbols} x {YEAR:,} candles, best {fig.best:.2f}s "
        f"({fig.rate(fig.best):,.0f} candles/s), median {fig.median:.2f}s, {trades} trades",
        flush=True,
    )
    return fig


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


def render(figures: list[Figure], repeats: int) -> str:
    lines = [
        "## Backtest throughput (`benchmarks/backtest_bench.py`)",
        "",
        f"Measured {dt.date.today().isoformat()} on {machine_note()}.",
        f"One year of 30m candles ({YEAR:,} per symbol, SYNTHETIC, from `trading.datagen`) "
        "through `warden backtest`'s engine: per candle close the paper exchange advances "
        "(stops fire on the candle's path), then `run_cycle` runs the strategy through the real "
        "Executor, StopKeeper (read-back delay 0) and Guardian, on the in-memory stores. "
        f"Best and median of {repeats} runs in one process; the demo's risk settings; no faults.",
        "",
        "| scenario | symbols | candles | trades | best (s) | median (s) | candles/s (best) "
        "| in `fills()` |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        lines.append(
            f"| {f.name} | {f.symbols} | {f.symbols * f.candles:,} | {f.trades} | "
            f"{f.best:.2f} | {f.median:.2f} | {f.rate(f.best):,.0f} | {f.fills_share:.0%} |"
        )
    one = [f for f in figures if f.symbols == 1]
    worst = max(f.median for f in one)
    verdict = "met" if worst < TARGET_SECONDS else "MISSED"
    lines += [
        "",
        f"Target: one symbol's year in under {TARGET_SECONDS:g} s: {verdict} "
        f"(slowest one-symbol median {worst:.2f} s). The engine's own work is linear in the "
        "candles: each step reads only the strategy's window (`lookback + 2` candles, a slice) "
        "and the fills of that step. 'in `fills()`' is the share of the time spent in the paper "
        "exchange's `fills()`, which the guardian calls for each stop that fired "
        "(`Guardian._record_stop_exit`, to find the stop's fill) with `since` = the stop's "
        "placement, so it stays small however long the backtest (reading the whole history "
        "there once made it quadratic).",
    ]
    return "\n".join(lines)


def write_section(body: str) -> None:
    from benchmarks.docsection import write_section as write_doc_section

    write_doc_section("backtest-bench", body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args()
    install_fills_timer()
    config = load_config(None)
    momentum, bollinger = build_runs(config)
    btc, eth = datagen.SPECS
    five = [*datagen.SPECS, *EXTRA]
    wide = replace(
        momentum,
        symbols=tuple(s.symbol for s in five),
        sizing=replace(momentum.sizing, max_open_positions=5),
    )
    figures = [
        measure("momentum_breakout, BTC", scenario((momentum,), [btc]), args.runs),
        measure("bollinger, ETH", scenario((bollinger,), [eth]), args.runs),
        measure("momentum_breakout, 5 symbols", scenario((wide,), five), args.runs),
    ]
    if not args.no_doc:
        write_section(render(figures, args.runs))
        print(f"updated {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
