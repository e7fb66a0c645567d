"""`warden run [--standby]`: the agent. Strategy cycles, the stop watchdog and alert delivery until
SIGINT/SIGTERM; then no new work, the running cycle finishes, leases are released.

One agent per store (``bot/agent.py``): `warden run` first claims the agent lease. When another
agent holds it, it exits 75 naming the holder; with ``--standby`` it waits instead (no jobs, no
alerts, no execution lease; only its presence for `warden health`) and takes over when the holder
expires or dies, with a critical alert. An agent whose lease was taken over steps down: exit 75,
or, with ``--standby``, back to waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from bot import exit_codes
from bot.agent import AgentBusy, AgentSeat, who
from bot.beacon import DaemonBeacon
from bot.commands.paper import drift_warning, fault_drift_by_exchange
from bot.context import Context, open_db
from bot.daemon import Daemon
from storage.daemon_beacon import STANDBY
from storage.db import Database
from trading.journal import Severity
from trading.logfmt import event

log = logging.getLogger("warden.agent")


async def run(ctx: Context) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    standby = bool(getattr(ctx.args, "standby", False))
    lease = ctx.config.lease
    async with open_db(ctx) as db:
        seat = AgentSeat(db, lease.ttl_seconds, lease.heartbeat_seconds)
        while True:
            try:
                await seat.claim()
            except AgentBusy as exc:
                if not standby:
                    print(
                        f"warden: busy: another agent runs on this database: {exc}; "
                        "`warden run --standby` waits and takes over when it stops",
                        file=sys.stderr,
                    )
                    return exit_codes.BUSY
                if not await _stand_by(ctx, db, seat, exc, stop):
                    print("warden: standby stopped", flush=True)
                    return exit_codes.OK
            stepped_down = await _active(ctx, db, seat, stop)
            if not stepped_down:
                return exit_codes.OK
            if not standby:
                return exit_codes.BUSY
            print("warden: back to standby", flush=True)


async def _stand_by(
    ctx: Context, db: Database, seat: AgentSeat, busy: AgentBusy, stop: asyncio.Event
) -> bool:
    """Wait for the agent lease (True once held); only presence is written meanwhile."""
    print(
        f"warden: standby: the active agent is {who(busy.holder.owner)} (token "
        f"{busy.holder.token}); taking over when it stops beating or dies. Ctrl-C stops.",
        flush=True,
    )
    beacon = DaemonBeacon(
        db, {}, ctx.config.lease.heartbeat_seconds, owner=seat.owner, role=STANDBY
    )
    async with beacon.running():
        return await seat.stand_by(stop)


async def _active(ctx: Context, db: Database, seat: AgentSeat, stop: asyncio.Event) -> bool:
    """Run the agent while the lease is ours; True when it was taken over (stepped down)."""
    daemon = Daemon(ctx.config, db, agent=seat)
    if seat.took_over is not None or seat.from_standby:
        text = seat.takeover_text()
        print(f"warden: {text}", flush=True)
        severity = Severity.CRITICAL if seat.took_over is not None else Severity.INFO
        journal = next(iter(daemon.accounts.values())).journal
        # an unwritable outbox is logged by the journal itself at CRITICAL
        with contextlib.suppress(Exception):
            await journal.alert(severity, text, "agent-takeover")
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
    # the heartbeat row `warden health` and `warden restore` read (bot/beacon.py), fenced by
    # the agent lease: written only while this agent is the active one
    watchdogs = {ctx.config.lease_scope(n): w for n, w in daemon.watchdogs.items()}
    beacon = DaemonBeacon(
        db,
        watchdogs,
        ctx.config.lease.heartbeat_seconds,
        owner=seat.owner,
        fence=seat.fence,
        on_fenced=lambda: seat.lose("the agent lease was taken over"),
    )
    async with seat.office(), beacon.running():
        await _serve(ctx, daemon, stop, seat.lost)
    if seat.lost_reason is not None:
        text = seat.step_down_text()
        event(log, "agent.stepped_down", logging.CRITICAL, owner=seat.owner, reason=text)
        print(f"warden: {text}", file=sys.stderr, flush=True)
        # queued for the active agent to deliver; this one delivers nothing any more
        journal = next(iter(daemon.accounts.values())).journal
        with contextlib.suppress(Exception):
            await journal.alert(Severity.CRITICAL, text, f"agent-stepped-down:{seat.owner}")
        return True
    print(
        "warden: stopped; " + ", ".join(f"{k}={v}" for k, v in sorted(daemon.counters.items())),
        flush=True,
    )
    return False


async def _serve(ctx: Context, daemon: Daemon, stop: asyncio.Event, lost: asyncio.Event) -> None:
    """The daemon, with Telegram in front of it when a bot token is configured, until a stop
    signal or until the agent lease is lost.

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
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
    finally:
        if handle is not None:
            await handle.stop_commands()
        await daemon.stop()
        if handle is not None:
            await handle.stop()
