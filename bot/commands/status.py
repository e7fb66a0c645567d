"""`warden status`: positions and their stops as the exchange shows them, pause state, leases.

Read-only: it never takes or waits for the execution lease.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from bot import exit_codes
from bot.commands.render import holder_json, holder_line, iso, print_json
from bot.context import Context, open_db
from bot.services import build_account
from storage.lease import LeaseStore
from trading.accounting import owner_of
from trading.errors import ExchangeError
from trading.protection import placed_by, shown_stop


async def run(ctx: Context) -> int:
    names = (
        [ctx.exchange_name(ctx.args.exchange)] if ctx.args.exchange else list(ctx.config.exchanges)
    )
    positions: list[dict[str, Any]] = []
    errors: list[str] = []
    paused: dict[str, bool] = {}
    pause_reasons: dict[str, str | None] = {}
    async with open_db(ctx, create=False) as db:
        holders = await LeaseStore(db).holders()
        for name in names:
            acct = build_account(ctx.config, name, db)
            try:
                paused[name] = await acct.journal.is_paused(acct.scope)
                pause_reasons[name] = await acct.journal.pause_reason(acct.scope)
                stops = await acct.exchange.open_stops()
                for p in await acct.exchange.positions():
                    stop = shown_stop(p, stops)
                    verified_at = None
                    if stop is not None:
                        for rec in await acct.journal.stops_for(acct.scope, p.symbol):
                            if rec.exchange_id == stop.id:
                                verified_at = rec.verified_at
                                break
                    positions.append(
                        {
                            "exchange": name,
                            "symbol": p.symbol,
                            "side": p.side.value,
                            "size": p.size,
                            "entry_price": p.entry_price,
                            "unrealized_pnl": round(p.unrealized_pnl, 8),
                            "owner": owner_of(
                                await acct.journal.position_owner(acct.scope, p.symbol)
                            ),
                            "stop": None
                            if stop is None
                            else {
                                "state": stop.state.value,
                                "trigger_price": stop.trigger_price,
                                "size": stop.size,
                                "whole_position": stop.whole_position,
                                "placed_by": placed_by(stop),
                                "verified_at": iso(verified_at),
                            },
                        }
                    )
            except ExchangeError as exc:
                errors.append(f"{name}: {exc}")
            finally:
                await acct.exchange.close()
    now = time.time()
    if ctx.args.json:
        print_json(
            {
                "database": ctx.database,
                "positions": positions,
                "paused": any(paused.values()),
                "paused_by_exchange": paused,
                "pause_reason_by_exchange": pause_reasons,
                "leases": [holder_json(h, now) for h in holders],
                "errors": errors,
            }
        )
        return exit_codes.OK if not errors else exit_codes.REFUSED
    print(f"database: {ctx.database}")
    if not positions:
        print("positions: none")
    for row in positions:
        stop = row["stop"]
        stop_text = (
            "NO LIVE STOP"
            if stop is None
            else f"stop {stop['trigger_price']} {stop['state']}, verified {stop['verified_at']}"
            if stop["placed_by"] == "warden"
            else f"your own stop {stop['trigger_price']} "
            f"({'whole position' if stop['whole_position'] else stop['size']}) {stop['state']}, "
            "set on the venue; Warden leaves it in place"
        )
        print(
            f"{row['exchange']} {row['symbol']} {row['side']} {row['size']} @ "
            f"{row['entry_price']} (uPnL {row['unrealized_pnl']:.2f}), owner: {row['owner']}: "
            f"{stop_text}"
        )
    for name, is_paused in paused.items():
        why = f" ({pause_reasons[name]})" if pause_reasons.get(name) else ""
        print(f"{name}: {'PAUSED' + why if is_paused else 'trading'}")
    print("leases: " + ("none held" if not holders else ""))
    for h in holders:
        print("  " + holder_line(h, now))
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    return exit_codes.OK if not errors else exit_codes.REFUSED
