"""`warden drill NAME`: run a safety drill; exit 0 only if the safety net held.

Without ``--exchange`` the drill runs on a throwaway paper exchange and database. With it,
``double-open`` and ``stop-removed`` run on that configured account (bot/drills/live.py).
"""

from __future__ import annotations

import sys

from bot import exit_codes
from bot.context import Context
from bot.drills import DRILLS
from bot.drills.harness import DrillRun


async def run(ctx: Context) -> int:
    name = ctx.args.name
    if name not in DRILLS:
        print(
            f"warden drill: unknown drill {name!r} (drills: {', '.join(DRILLS)})", file=sys.stderr
        )
        return exit_codes.USAGE
    if ctx.args.exchange is not None:
        return await _on_account(ctx, name)
    if ctx.args.real_money or ctx.args.symbol is not None or ctx.args.stop_percent is not None:
        print(
            "warden drill: --symbol, --stop-percent and --real-money need --exchange NAME "
            "(without it the drill runs on a throwaway paper exchange)",
            file=sys.stderr,
        )
        return exit_codes.USAGE
    drill = DrillRun(name)
    if name == "failover":
        from bot.drills.failover import failover

        drill.step(f"drill {name}: throwaway PostgreSQL cluster, two agents on paper")
        await failover(ctx.config, drill)
    else:
        from bot.drills.scenarios import SCENARIOS

        drill.step(f"drill {name}: throwaway paper exchange and database")
        await SCENARIOS[name](ctx.config, drill)
    verdict = "HELD" if drill.passed else "FAILED: " + "; ".join(drill.failures)
    drill.step(f"drill {name}: safety net {verdict}")
    return exit_codes.OK if drill.passed else exit_codes.REFUSED


async def _on_account(ctx: Context, name: str) -> int:
    from bot.drills.live import DEFAULT_STOP_PERCENT, DEFAULT_SYMBOL, LIVE_DRILLS, run_live

    if name not in LIVE_DRILLS:
        print(
            f"warden drill: {name} runs only on a throwaway paper exchange (without "
            f"--exchange); on an exchange account: {', '.join(LIVE_DRILLS)}",
            file=sys.stderr,
        )
        return exit_codes.USAGE
    if ctx.args.symbol is None:
        ctx.args.symbol = DEFAULT_SYMBOL
    if ctx.args.stop_percent is None:
        ctx.args.stop_percent = DEFAULT_STOP_PERCENT
    drill = DrillRun(name)
    code = await run_live(ctx, name, drill)
    if code in (exit_codes.USAGE, exit_codes.BUSY):
        return code  # refused before anything was sent; the reason is on stderr
    if code == exit_codes.OK:
        drill.step(f"drill {name}: safety net HELD and the account is back to how it was")
    elif drill.failures:
        drill.step(f"drill {name}: safety net FAILED: " + "; ".join(drill.failures))
    elif code == exit_codes.REFUSED:
        drill.step(f"drill {name}: safety net held, but the account is NOT back to how it was")
    else:
        drill.step(f"drill {name}: interrupted; the account is back to how it was")
    return code
