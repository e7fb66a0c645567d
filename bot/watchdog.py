"""The stop-loss watchdog: the guardian on a timer, under the account lease (I1, I5).

A busy lease is not waited for: the holder (a cycle, a command) runs the guardian itself, and
the next tick comes soon. Skips are counted and logged, never silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from bot.services import Account
from storage.held_lease import LeaseManager
from trading.errors import ExchangeError
from trading.guardian import GuardReport
from trading.journal import Severity
from trading.lease import LeaseBusy, LeaseLost
from trading.logfmt import event

log = logging.getLogger("warden.watchdog")
REALERT_SECONDS = 900.0


@dataclass
class WatchdogStats:
    runs: int = 0
    skipped_busy: int = 0
    failures: int = 0
    actions: int = 0


class Watchdog:
    def __init__(self, account: Account, leases: LeaseManager, interval: float) -> None:
        self.account = account
        self.leases = leases
        self.interval = interval
        self.stats = WatchdogStats()

    async def tick(self) -> GuardReport | None:
        acct = self.account
        try:
            async with self.leases.hold(acct.scope, "stop watchdog") as lease:
                report = await acct.guardian.reconcile(lease)
        except LeaseBusy as exc:
            self.stats.skipped_busy += 1
            event(log, "watchdog.skipped", logging.INFO, scope=acct.scope, holder=exc.holder)
            return None
        except (LeaseLost, ExchangeError) as exc:
            self.stats.failures += 1
            event(log, "watchdog.failed", logging.ERROR, scope=acct.scope, error=str(exc))
            return None
        self.stats.runs += 1
        self.stats.actions += len(report.actions)
        if report.errors:
            self.stats.failures += 1
            await acct.journal.alert(
                Severity.WARNING,
                f"watchdog {acct.scope}: " + "; ".join(report.errors),
                f"watchdog-error:{acct.scope}",
                repeat_after=REALERT_SECONDS,
            )
        for action in report.actions:
            event(log, "watchdog.action", logging.WARNING, scope=acct.scope, action=action)
        return report

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
