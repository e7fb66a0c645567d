"""`warden status`: what is held, by whom; read-only, never waits for the lease."""

from __future__ import annotations

import time

from bot import exit_codes
from bot.commands.render import holder_json, holder_line, print_json
from bot.context import Context, open_db
from storage.lease import LeaseStore


async def run(ctx: Context) -> int:
    async with open_db(ctx) as db:
        holders = await LeaseStore(db).holders()
    now = time.time()
    if ctx.args.json:
        print_json(
            {"positions": [], "paused": False, "leases": [holder_json(h, now) for h in holders]}
        )
        return exit_codes.OK
    print("positions: none")
    print("leases: " + ("none held" if not holders else ""))
    for h in holders:
        print("  " + holder_line(h, now))
    return exit_codes.OK
