"""`warden paper price SYMBOL PRICE`: move a paper market by hand (drills, tests, demos).

This is the market moving, not the agent acting, so it takes no execution lease: a real market
does not wait for the agent either. Stops the move crosses fire and are printed.
"""

from __future__ import annotations

import sys

from bot import exit_codes
from bot.config.schema import PaperExchangeConfig
from bot.context import Context, open_db
from bot.exchanges import build_paper_exchange
from trading.errors import ExchangeError


async def price(ctx: Context) -> int:
    name = ctx.exchange_name(ctx.args.exchange)
    symbol: str = ctx.args.symbol
    cfg = ctx.config.exchanges[name]
    if not isinstance(cfg, PaperExchangeConfig):
        print(
            f"warden paper price: exchange {name} is {cfg.kind}, not a paper exchange; "
            "nothing was changed",
            file=sys.stderr,
        )
        return exit_codes.USAGE
    known = [m.symbol for m in cfg.markets]
    if symbol not in known:
        print(
            f"warden paper price: {symbol} is not a market of paper exchange {name} "
            f"(markets: {', '.join(known)}); nothing was changed",
            file=sys.stderr,
        )
        return exit_codes.USAGE
    async with open_db(ctx) as db:
        exchange = build_paper_exchange(ctx.config, name, db)
        try:
            triggered = await exchange.set_price(symbol, ctx.args.price)
            last = (await exchange.ticker(symbol)).last
        except ExchangeError as exc:
            print(f"warden paper price: {exc}; nothing was changed", file=sys.stderr)
            return exit_codes.USAGE
    print(f"{name} {symbol} last price {last}")
    if not triggered:
        print("no stop triggered")
    for t in triggered:
        s = t.stop
        if t.fill is not None:
            print(
                f"stop {s.id} triggered: {s.symbol} {s.side.value} {t.fill.filled} "
                f"trigger {s.trigger_price} filled at {t.fill.average_price}"
            )
        else:
            print(
                f"stop {s.id} {s.state.value}: {s.symbol} {s.side.value} trigger "
                f"{s.trigger_price}, no position to reduce"
            )
    return exit_codes.OK
