"""Commands whose names are part of the CLI contract but whose bodies are not built yet.

They say so plainly and exit 2 before touching the database or any exchange.
"""

from __future__ import annotations

import sys

from bot import exit_codes
from bot.context import Context

NOT_YET = {
    "run": "the trading daemon (strategies and scheduler)",
    "cycle": "strategy cycles",
    "open": "the guarded executor",
    "close": "the guarded executor",
    "audit": "the audit",
    "pnl": "accounting",
    "backtest": "backtesting",
    "drill": "the safety drills",
}


def unavailable(command: str) -> int:
    what = NOT_YET.get(command, command)
    print(
        f"warden {command}: not available in this version yet ({what} is not built); "
        "nothing was started or sent",
        file=sys.stderr,
    )
    return exit_codes.USAGE


async def run(ctx: Context) -> int:
    return unavailable(ctx.args.command)
