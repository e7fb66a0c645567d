"""`warden chart SYMBOL [--exchange NAME] [--hours N] --png PATH [--json]`: the position chart
(candles, last price, entry, the stop with its state and when it was last read back live, the
journal's entry and exit fills) as a PNG file.

Read-only: it never takes or waits for the execution lease, creates no database (a missing
one is exit 2, naming it) and writes only the PNG. Exit 0; 1 when the exchange cannot be read;
2 for a bad symbol, --hours or an unwritable PATH.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bot import exit_codes
from bot.charts.model import PositionChartData
from bot.charts.sources import ChartSource, check_hours, position_chart_data, strategy_timeframes
from bot.commands.render import iso, print_json
from bot.context import Context, open_db
from bot.services import build_account
from bot.symbols import SymbolError, resolve_symbol
from trading.errors import ExchangeError


def chart_json(d: PositionChartData, png: str) -> dict[str, Any]:
    """What was drawn, for scripts: the same values the picture shows."""
    p, s = d.position, d.stop
    return {
        "exchange": d.exchange,
        "symbol": d.symbol,
        "timeframe": d.timeframe,
        "candles": len(d.candles),
        "from": iso(d.candles[0].ts) if d.candles else None,
        "to": iso(d.candles[-1].ts) if d.candles else None,
        "last_price": d.last_price,
        "position": None
        if p is None
        else {
            "side": p.side.value,
            "size": p.size,
            "entry_price": p.entry,
            "unrealized_pnl": round(p.unrealized_pnl, 8),
            "liquidation_price": p.liquidation,
        },
        "stop": None
        if s is None
        else {
            "trigger_price": s.level,
            "state": s.state.value,
            "verified_at": iso(s.verified_at) if s.verified_at else None,
            "placed_by": "warden" if s.placed_by_warden else "trader",
        },
        "trades": [
            {"kind": t.kind.value, "at": iso(t.ts), "price": t.price, "size": t.size}
            for t in d.trades
        ],
        "notes": list(d.notes),
        "png": png,
    }


async def run(ctx: Context) -> int:
    args = ctx.args
    try:
        hours = check_hours(args.hours)
    except ValueError as exc:
        print(f"warden chart: --hours: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    name = ctx.exchange_name(args.exchange)
    async with open_db(ctx, create=False) as db:  # reads only: a missing one is an error
        acct = build_account(ctx.config, name, db)
        try:
            try:
                symbol = resolve_symbol(args.symbol, await acct.exchange.markets())
            except SymbolError as exc:
                print(f"warden chart: {exc}", file=sys.stderr)
                return exit_codes.USAGE
            source = ChartSource(acct.name, acct.scope, acct.exchange, acct.journal)
            frames = strategy_timeframes(ctx.config, name, symbol)
            data = await position_chart_data(source, symbol, hours, timeframes=frames)
        except ExchangeError as exc:
            print(f"warden chart: {name}: cannot read the exchange: {exc}", file=sys.stderr)
            return exit_codes.REFUSED
        finally:
            await acct.exchange.close()
    from bot.charts.position import position_png

    try:
        Path(args.png).write_bytes(position_png(data))
    except OSError as exc:
        print(f"warden chart: cannot write {args.png}: {exc.strerror}", file=sys.stderr)
        return exit_codes.USAGE
    if args.json:
        print_json(chart_json(data, args.png))
    else:
        where = f"{data.timeframe} candles" if data.candles else "no candles"
        state = "no position"
        if data.position is not None:
            p = data.position
            state = f"{p.side.value} {p.size:g} at {p.entry:g}"
            if data.stop is not None:
                state += f", stop {data.stop.level:g} {data.stop.state.value}"
        print(f"{name} {symbol}: {where}, {state}, {len(data.trades)} fill(s) marked")
        for note in data.notes:
            print(f"  note: {note}")
        print(f"chart: {args.png}")
    return exit_codes.OK
