"""`warden pnl`: realised P&L per trade from the exchange's fills, every loss attributed.

Read-only: it never takes or waits for the execution lease. Exit 0, or 1 when an exchange
could not be read (the others are still reported), 2 for a bad ``--since``.
"""

from __future__ import annotations

import contextlib
import csv
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bot import exit_codes
from bot.charts.model import EquityChartData, EquitySeries
from bot.charts.series import anchored_equity, cumulative_pnl
from bot.commands.render import iso, print_json
from bot.context import Context, open_db
from bot.services import Account, build_account
from bot.summary import load_trades
from trading.accounting import (
    CSV_FIELDS,
    SummaryRow,
    Trade,
    in_period,
    summarize,
    totals,
)
from trading.errors import ExchangeError
from trading.models import Balance


def parse_since(text: str) -> float:
    """A date or date-time (ISO 8601); without a zone it is UTC. ValueError when unreadable."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def write_csv(path: Path, trades: list[Trade]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(CSV_FIELDS)
        out.writerows(t.csv_row() for t in trades)


def equity_series(
    names: list[str], trades: list[Trade], balances: dict[str, Balance], start: float, now: float
) -> tuple[EquitySeries, ...]:
    """One equity line per exchange: its trades' net P&L stepped back from today's equity (an
    exchange whose balance could not be read: cumulative P&L from 0, and labelled so)."""
    out = []
    for name in names:
        steps = [(t.closed_at, t.net_pnl) for t in trades if t.exchange == name]
        bal = balances.get(name)
        if bal is None:
            out.append(
                EquitySeries(f"{name} (P&L from 0, equity unread)", cumulative_pnl(steps, start))
            )
        else:
            out.append(
                EquitySeries(name, anchored_equity(steps, bal.total, start, now), bal.currency)
            )
    return tuple(out)


async def read_balances(accounts: list[Account]) -> dict[str, Balance]:
    found: dict[str, Balance] = {}
    for acct in accounts:
        with contextlib.suppress(ExchangeError):
            found[acct.name] = await acct.exchange.balance()
    return found


def write_png(path: Path, series: tuple[EquitySeries, ...], start: float) -> None:
    from bot.charts.equity import equity_png

    title = f"Equity since {time.strftime('%Y-%m-%d %H:%M', time.gmtime(start))} UTC"
    path.write_bytes(equity_png(EquityChartData(title, series)))


def held(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


def _row_line(r: SummaryRow) -> str:
    return (
        f"{r.exchange:<10} {r.strategy:<18} {r.trades:>6} {r.win_rate:>6.0%} "
        f"{r.net_pnl:>+11.2f} {r.fees:>8.2f} {r.execution_cost:>10.2f}"
    )


def print_text(trades: list[Trade], rows: list[SummaryRow], total: SummaryRow) -> None:
    if not trades:
        print("no closed trades in the period")
    for t in trades:
        print(
            f"{iso(t.closed_at)} {t.exchange} {t.symbol} {t.strategy}: {t.side.value} {t.size:g} "
            f"{t.entry_price:g} -> {t.exit_price:g} ({t.exit_reason}), net {t.net_pnl:+.2f}, "
            f"held {held(t.holding_seconds)}, {t.attribution.value}"
            + (f", execution cost {t.execution_cost:.2f}" if t.execution_cost else "")
        )
        for f in t.faults:
            print(f"    {f.kind.value} {f.cost:.2f}: {f.detail}")
    print(
        f"\n{'exchange':<10} {'strategy':<18} {'trades':>6} {'win%':>6} {'net P&L':>11} "
        f"{'fees':>8} {'exec.cost':>10}"
    )
    for r in [*rows, total]:
        print(_row_line(r))


async def run(ctx: Context) -> int:
    args = ctx.args
    bound = (
        args.slippage_bound_bps
        if args.slippage_bound_bps is not None
        else ctx.config.accounting.slippage_bound_bps
    )
    since: float | None = None
    try:
        if args.since is not None:
            since = parse_since(args.since)
    except ValueError:
        print(
            f"warden pnl: --since {args.since!r} is not a date (YYYY-MM-DD or ISO date-time)",
            file=sys.stderr,
        )
        return exit_codes.USAGE
    now = time.time()
    if args.days is not None:
        since = now - args.days * 86_400
    names = [ctx.exchange_name(args.exchange)] if args.exchange else list(ctx.config.exchanges)
    async with open_db(ctx, create=False) as db:
        accounts = [build_account(ctx.config, name, db) for name in names]
        try:
            every, errors = await load_trades(accounts, bound)
            balances = await read_balances(accounts) if args.png else {}
        finally:
            for acct in accounts:
                await acct.exchange.close()
    trades = in_period(every, since)
    rows, total = summarize(trades), totals(trades)
    start = since if since is not None else min((t.opened_at for t in trades), default=now)
    # what was written is said; with --json on stderr, so stdout stays one JSON document
    said = sys.stderr if args.json else sys.stdout
    try:
        if args.csv:
            write_csv(Path(args.csv), trades)
            print(f"wrote {args.csv}", file=said)
        if args.png:
            write_png(Path(args.png), equity_series(names, trades, balances, start, now), start)
            print(f"wrote {args.png}", file=said)
    except OSError as exc:
        print(f"warden pnl: cannot write the file: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    if args.json:
        print_json(
            {
                "database": ctx.database,
                "trades": [t.as_json() for t in trades],
                "summary": [r.as_json() for r in rows],
                "totals": total.as_json(),
                "since": iso(since),
                "slippage_bound_bps": bound,
                "errors": errors,
            }
        )
    else:
        print(f"database: {ctx.database}")
        print_text(trades, rows, total)
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
    return exit_codes.OK if not errors else exit_codes.REFUSED
