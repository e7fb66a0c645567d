"""`warden drill NAME`: run a safety drill; exit 0 only if the safety net held."""

from __future__ import annotations

import sys

from bot import exit_codes
from bot.context import Context
from bot.drills import DRILLS
from bot.drills.harness import DrillRun
from bot.drills.scenarios import SCENARIOS


async def run(ctx: Context) -> int:
    name = ctx.args.name
    if name not in SCENARIOS:
        print(
            f"warden drill: unknown drill {name!r} (drills: {', '.join(DRILLS)})", file=sys.stderr
        )
        return exit_codes.USAGE
    drill = DrillRun(name)
    drill.step(f"drill {name}: throwaway paper exchange and database")
    await SCENARIOS[name](ctx.config, drill)
    verdict = "HELD" if drill.passed else "FAILED: " + "; ".join(drill.failures)
    drill.step(f"drill {name}: safety net {verdict}")
    return exit_codes.OK if drill.passed else exit_codes.REFUSED
