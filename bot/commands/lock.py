"""`warden lock`: who holds which execution lease; `--hold` takes one by hand for maintenance."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time

from bot import exit_codes
from bot.commands.render import holder_json, holder_line, print_json, refusal_json, refusal_line
from bot.context import Context, open_db
from storage.lease import LeaseStore
from trading.lease import LeaseBusy


async def run(ctx: Context) -> int:
    if ctx.args.hold is not None:
        return await _hold(ctx)
    async with open_db(ctx, create=False) as db:
        store = LeaseStore(db)
        holders = await store.holders()
        refusals = await store.refusals(limit=10)
    now = time.time()
    if ctx.args.json:
        print_json(
            {
                "database": ctx.database,
                "leases": [holder_json(h, now) for h in holders],
                "refusals": [refusal_json(r) for r in refusals],
            }
        )
        return exit_codes.OK
    print(f"database: {ctx.database}")
    if not holders:
        print("no execution lease is held")
    for h in holders:
        print(holder_line(h, now))
    if refusals:
        print("recent refusals:")
        for r in refusals:
            print("  " + refusal_line(r))
    return exit_codes.OK


async def _hold(ctx: Context) -> int:
    name = ctx.exchange_name(ctx.args.exchange)
    scope = ctx.config.lease_scope(name)
    async with open_db(ctx) as db:
        manager = ctx.lease_manager(db)
        try:
            held = await manager.acquire(scope, ctx.args.purpose, wait=max(0.0, ctx.args.wait))
        except LeaseBusy as exc:
            print(f"warden: busy: {exc}", file=sys.stderr)
            return exit_codes.BUSY
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(
            f"holding {scope} token {held.token} for {ctx.args.hold:g}s "
            f"({ctx.args.purpose}) on {ctx.database}; Ctrl-C releases",
            flush=True,
        )
        try:
            deadline = loop.time() + ctx.args.hold
            while not stop.is_set() and loop.time() < deadline:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=min(1.0, deadline - loop.time()))
                if held.lost_reason is not None:
                    print(f"warden: lease lost: {held.lost_reason}", file=sys.stderr)
                    return exit_codes.REFUSED
        finally:
            await held.release()
        print(f"released {scope} token {held.token}", flush=True)
        return exit_codes.OK
