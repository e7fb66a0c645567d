"""`warden run`: the agent process. In this version it guards: the stop watchdog runs on every
configured exchange and alerts are delivered to the terminal. Strategies come later."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from bot import exit_codes
from bot.context import Context, open_db
from bot.notify import TerminalNotifier
from bot.services import build_account
from bot.watchdog import Watchdog
from storage.outbox import Outbox
from trading.logfmt import event

log = logging.getLogger("warden.run")


async def _deliver(outbox: Outbox, notifier: TerminalNotifier, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await notifier.deliver_pending(outbox)
        except Exception as exc:  # delivery must never stop the guarding
            event(log, "outbox.delivery_failed", logging.ERROR, error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)
    await notifier.deliver_pending(outbox)


async def run(ctx: Context) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with open_db(ctx) as db:
        leases = ctx.lease_manager(db)
        accounts = [build_account(ctx.config, name, db) for name in ctx.config.exchanges]
        dogs = [Watchdog(a, leases, ctx.config.guardian.watchdog_seconds) for a in accounts]
        print(
            "warden: guarding "
            + ", ".join(f"{a.name} ({a.scope})" for a in accounts)
            + f"; stop watchdog every {ctx.config.guardian.watchdog_seconds:g}s; alerts here. "
            "Strategies are not built in this version, so nothing is opened on its own. "
            "Ctrl-C stops.",
            flush=True,
        )
        event(log, "run.started", exchanges=",".join(a.name for a in accounts))
        tasks = [asyncio.create_task(d.run_forever(stop)) for d in dogs]
        tasks.append(asyncio.create_task(_deliver(Outbox(db), TerminalNotifier(), stop)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for a in accounts:
                await a.exchange.close()
        event(log, "run.stopped")
    return exit_codes.OK
