"""`warden backtest`: replay history through the live cycle (strategy -> guarded executor ->
verified stops -> guardian -> paper exchange) as fast as it goes, then report.

No database, no lease store, no network: the paper exchange and the journal live in memory for
the run (``trading.backtest``). Bad input (unknown strategy or symbol, an unreadable candle file,
an empty range) is a message and exit 2.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from bot import exit_codes
from bot.backtest_setup import Setup, SetupError, build_setup, parse_date
from bot.charts.model import BacktestChartData, BacktestTrade
from bot.commands.render import iso, print_json
from bot.context import Context
from bot.progress import ProgressBar
from bot.services import risk_limits, stop_policy
from trading.backtest import BacktestResult, RoundTrip, Summary, run_backtest


def _r(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(x, digits)


def summary_json(s: Summary) -> dict[str, Any]:
    """The words and units of `warden pnl --json`: ``trades`` and ``closed_trades`` count closed
    trades only (open ones are ``open_trades``, marked to the last close in ``net_pnl``);
    ``win_rate`` is a fraction in [0, 1] (null without a closed trade)."""
    return {
        "trades": s.trades,
        "closed_trades": s.trades,
        "open_trades": s.open_positions,
        "wins": s.wins,
        "losses": s.trades - s.wins,
        "win_rate": _r(s.win_rate, 6),
        "net_pnl": _r(s.net_pnl),
        "fees": _r(s.fees),
        "max_drawdown": _r(s.max_drawdown),
        "max_drawdown_pct": _r(s.max_drawdown_pct, 4),
        "exposure_pct": _r(s.exposure_pct, 4),
        "start_equity": _r(s.start_equity),
        "end_equity": _r(s.end_equity),
        "candles": s.steps,
    }


def trip_json(t: RoundTrip) -> dict[str, Any]:
    return {
        "strategy": t.strategy,
        "exchange": t.account,
        "symbol": t.symbol,
        "side": t.side.value,
        "size": t.size,
        "entry_at": iso(t.entry_at),
        "entry_price": _r(t.entry_price, 10),
        "exit_at": iso(t.exit_at),
        "exit_price": _r(t.exit_price, 10),
        "exit_reason": t.exit_reason,
        "pnl": _r(t.pnl),
        "fees": _r(t.fees),
    }


def result_json(
    setup: Setup, result: BacktestResult, seconds: float, faults: bool, png: str | None
) -> dict[str, Any]:
    by_name = {s.name: s for s in result.strategies}
    runs = [run for a in setup.accounts for run in a.runs]
    return {
        "from": iso(result.start),
        "to": iso(result.end),
        "candles": len(result.curve),
        "seconds": round(seconds, 3),
        "faults": faults,
        "data": [
            {
                "exchange": s.exchange,
                "symbol": s.symbol,
                "timeframe": s.timeframe,
                "path": str(s.path),
                "synthetic": s.synthetic,
                "candles": s.candles,
            }
            for s in setup.sources
        ],
        "strategies": [
            {
                "name": run.name,
                "exchange": setup.exchanges[run.name],
                "kind": setup.kinds[run.name],
                "symbols": list(run.symbols),
                "timeframe": run.timeframe,
                **summary_json(by_name[run.name]),
            }
            for run in runs
        ],
        "total": summary_json(result.total),
        "notes": setup.notes,
        "incidents": result.incidents,
        "errors": result.errors,
        "trades": [trip_json(t) for t in result.trips],
        "png": png,
    }


def chart_data(setup: Setup, result: BacktestResult) -> BacktestChartData:
    """What `--png` draws: the run's equity curve, its closed trades, and a title naming the
    strategies (kind and parameters) and the data."""
    return BacktestChartData(
        strategies=tuple(f"{name} ({kind})" for name, kind in setup.kinds.items()),
        data=tuple(
            f"{s.exchange} {s.symbol} {s.timeframe}, {s.candles:,} candles"
            + (" SYNTHETIC" if s.synthetic else f" from {s.path.name}")
            for s in setup.sources
        ),
        synthetic=any(s.synthetic for s in setup.sources),
        curve=tuple(result.curve),
        trades=tuple(
            BacktestTrade(t.entry_at, t.exit_at, t.pnl)
            for t in result.trips
            if t.exit_at is not None
        ),
    )


def _row(name: str, s: Summary) -> str:
    rate = "-" if s.win_rate is None else f"{s.win_rate:.1%}"
    return (
        f"{name:<18} {s.trades:>6} {rate:>6} {s.net_pnl:>+12,.2f} {s.fees:>10,.2f} "
        f"{s.max_drawdown:>10,.2f} {s.max_drawdown_pct:>6.2f}% {s.exposure_pct:>7.1f}% "
        f"{s.start_equity:>12,.2f} -> {s.end_equity:,.2f}"
    )


def print_report(setup: Setup, result: BacktestResult, seconds: float, png: str | None) -> None:
    print(
        f"backtest {iso(result.start)} .. {iso(result.end)}: {len(result.curve):,} candle "
        f"closes in {seconds:.2f}s"
    )
    for src in setup.sources:
        label = " (SYNTHETIC bundled data)" if src.synthetic else ""
        print(
            f"  {src.exchange} {src.symbol} {src.timeframe}: {src.candles:,} candles from "
            f"{src.path}{label}"
        )
    for name, kind in setup.kinds.items():
        print(f"  {name} on {setup.exchanges[name]}: {kind}")
    for note in setup.notes:
        print(f"  note: {note}")
    print()
    print(
        f"{'strategy':<18} {'trades':>6} {'win':>6} {'net P&L':>12} {'fees':>10} "
        f"{'max DD':>10} {'DD %':>7} {'exposure':>8} {'equity start -> end':>12}"
    )
    for s in result.strategies:
        print(_row(s.name, s))
    print(_row("total", result.total))
    if result.total.open_positions:
        print(f"\n{result.total.open_positions} position(s) still open, marked to the last close")
    if result.incidents:
        print(f"{result.incidents} incident(s) (stop failures repaired, emergency closes)")
    for e in result.errors:
        print(f"cycle error: {e}")
    if png:
        print(f"equity curve: {png}")


async def run(ctx: Context) -> int:
    args = ctx.args
    try:
        start = parse_date(args.start, "--from") if args.start else None
        end = parse_date(args.end, "--to") if args.end else None
        setup = build_setup(
            ctx.config, args.strategy, args.symbol, args.data, start, end, args.balance, args.faults
        )
    except SetupError as exc:
        print(f"warden backtest: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    quiet = getattr(args, "log_level", None) is None
    agent = logging.getLogger("warden")
    level = agent.level
    if quiet:  # the simulated agent's events are the report; its log lines would drown it
        agent.setLevel(logging.CRITICAL + 1)
    bar = ProgressBar("backtest", "candles")
    started = time.perf_counter()
    try:
        result = await run_backtest(
            setup.accounts, risk_limits(ctx.config), stop_policy(ctx.config), bar.update
        )
    except ValueError as exc:
        print(f"warden backtest: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    finally:
        bar.close()
        agent.setLevel(level)
    seconds = time.perf_counter() - started
    png: str | None = args.png
    if png:
        from bot.charts.backtest import backtest_png

        try:
            Path(png).write_bytes(backtest_png(chart_data(setup, result)))
        except OSError as exc:
            print(f"warden backtest: cannot write {png}: {exc.strerror}", file=sys.stderr)
            return exit_codes.USAGE
    if args.json:
        print_json(result_json(setup, result, seconds, args.faults, png))
    else:
        print_report(setup, result, seconds, png)
    return exit_codes.OK
