"""`warden run`: the agent. Strategy cycles, the stop watchdog and alert delivery until
SIGINT/SIGTERM; then no new work, the running cycle finishes, leases are released."""

from __future__ import annotations

import asyncio
import signal

from bot import exit_codes
from bot.context import Context, open_db
from bot.daemon import Daemon, run_until


async def run(ctx: Context) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with open_db(ctx) as db:
        daemon = Daemon(ctx.config, db)
        strategies = (
            ", ".join(
                f"{s.name} ({s.kind} {'/'.join(s.symbols)} {s.timeframe} on {s.exchange})"
                for s in ctx.config.strategies
            )
            or "none configured: guarding only"
        )
        print(
            f"warden: config {ctx.config_source}; strategies: {strategies}; stop watchdog every "
            f"{ctx.config.guardian.watchdog_seconds:g}s; alerts below. Ctrl-C stops.",
            flush=True,
        )
        await run_until(daemon, stop)
        print(
            "warden: stopped; " + ", ".join(f"{k}={v}" for k, v in sorted(daemon.counters.items())),
            flush=True,
        )
    return exit_codes.OK
