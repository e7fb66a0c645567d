"""`warden run`: the agent. Strategy cycles, the stop watchdog and alert delivery until
SIGINT/SIGTERM; then no new work, the running cycle finishes, leases are released."""

from __future__ import annotations

import asyncio
import signal

from bot import exit_codes
from bot.beacon import DaemonBeacon
from bot.commands.paper import drift_warning, fault_drift_by_exchange
from bot.context import Context, open_db
from bot.daemon import Daemon


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
        # fault injection the config does not describe is in force: said here, not only in a log
        for name, drift in (await fault_drift_by_exchange(ctx.config, db)).items():
            print(f"warden: WARNING: {drift_warning(name, drift)}", flush=True)
        # the heartbeat row `warden health` and `warden restore` read (bot/beacon.py)
        watchdogs = {ctx.config.lease_scope(n): w for n, w in daemon.watchdogs.items()}
        beacon = DaemonBeacon(db, watchdogs, ctx.config.lease.heartbeat_seconds)
        async with beacon.running():
            await _serve(ctx, daemon, stop)
        print(
            "warden: stopped; " + ", ".join(f"{k}={v}" for k, v in sorted(daemon.counters.items())),
            flush=True,
        )
    return exit_codes.OK


async def _serve(ctx: Context, daemon: Daemon, stop: asyncio.Event) -> None:
    """The daemon, with Telegram in front of it when a bot token is configured.

    Stop order matters: Telegram stops taking commands first (running ones finish), then the
    daemon stops (its last outbox pass still goes to Telegram), then Telegram shuts down.
    """
    handle = None
    if ctx.secrets.get("TELEGRAM_BOT_TOKEN"):
        from bot.telegram import start_telegram
        from bot.telegram.settings import settings_from_config

        handle = await start_telegram(
            daemon, ctx.secrets, settings_from_config(ctx.config.telegram)
        )
        daemon.notifier = handle.notifier
        print("warden: Telegram control on; alerts go to the allowed users", flush=True)
    await daemon.start()
    try:
        await stop.wait()
    finally:
        if handle is not None:
            await handle.stop_commands()
        await daemon.stop()
        if handle is not None:
            await handle.stop()
