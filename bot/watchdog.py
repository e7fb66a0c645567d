"""The stop-loss watchdog: the guardian on a timer, under the account lease (I1, I5).

A busy lease is not waited for: the holder (a cycle, a command) runs the guardian itself, and
the next tick comes soon. Skips are counted and logged, never silent.

Inside one agent the watchdog and the cycles of the same account share a gate
(``bot/account_gate.py``): a tick that finds a cycle of this agent running or waiting leaves the
account to it (the cycle runs the guardian itself; counted as ``yielded``) instead of taking the
lease the cycle is about to need, and a cycle waits for a tick already running. Only another
holder makes a busy lease.

A failing run (the exchange unreachable or rate limiting, the database busy or full) changes
nothing and raises one alert, re-raised every ``REALERT_SECONDS`` while it lasts, not once per
run; the first clean run after failures says so ("reachable again" / "writable again"). When
the database cannot be written the alert cannot be stored in the outbox either: it goes to the
log at CRITICAL (the journal logs every alert it could not store), and the run is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.account_gate import AccountGate
from bot.services import Account
from storage.errors import StorageError
from storage.held_lease import LeaseManager
from trading.errors import ExchangeError
from trading.guardian import GuardReport
from trading.journal import Severity
from trading.lease import LeaseBusy, LeaseLost
from trading.logfmt import event

log = logging.getLogger("warden.watchdog")
REALERT_SECONDS = 900.0
AGAIN = {
    "exchange": "the exchange is reachable again",
    "storage": "the database is writable again",
    "lease": "the execution lease is held again",
}


@dataclass
class WatchdogStats:
    runs: int = 0
    skipped_busy: int = 0
    yielded: int = 0  # ticks left to a running cycle of this agent, which guards itself
    failures: int = 0
    actions: int = 0


class Watchdog:
    def __init__(
        self,
        account: Account,
        leases: LeaseManager,
        interval: float,
        monotonic: Callable[[], float] = time.monotonic,
        gate: AccountGate | None = None,
    ) -> None:
        self.account = account
        self.gate = gate
        self.leases = leases
        self.interval = interval
        self.monotonic = monotonic
        self.stats = WatchdogStats()
        self._failed_runs = 0  # failed runs since the last clean one
        self._failed_kinds: set[str] = set()
        self._failing_since: float | None = None  # wall clock of the first of them
        self._storage_alert_at: float | None = None  # monotonic time of the last attempt

    async def tick(self) -> GuardReport | None:
        if self.gate is None:
            return await self._run()
        async with self.gate.watchdog() as passed:
            if passed:
                return await self._run()
        self.stats.yielded += 1
        event(log, "watchdog.yielded", logging.DEBUG, scope=self.account.scope)
        return None

    async def _run(self) -> GuardReport | None:
        acct = self.account
        try:
            return await self._tick()
        except StorageError as exc:
            # the database is busy beyond busy_timeout, full or broken: nothing was sent
            # without its stored intent (the intent is written first); say so in the log
            self._failed("storage")
            event(
                log,
                "watchdog.storage_failed",
                logging.ERROR,
                scope=acct.scope,
                error=f"{type(exc).__name__}: {exc}",
                failed_runs=self._failed_runs,
            )
            await self._storage_alert(exc)
            return None

    async def _tick(self) -> GuardReport | None:
        acct = self.account
        try:
            async with self.leases.hold(acct.scope, "stop watchdog") as lease:
                report = await acct.guardian.reconcile(lease)
        except LeaseBusy as exc:
            self.stats.skipped_busy += 1
            event(log, "watchdog.skipped", logging.INFO, scope=acct.scope, holder=exc.holder)
            return None
        except (LeaseLost, ExchangeError) as exc:
            self._failed("lease" if isinstance(exc, LeaseLost) else "exchange")
            event(log, "watchdog.failed", logging.ERROR, scope=acct.scope, error=str(exc))
            return None
        self.stats.runs += 1
        self.stats.actions += len(report.actions)
        for action in report.actions:
            event(log, "watchdog.action", logging.WARNING, scope=acct.scope, action=action)
        if report.errors:
            self._failed("exchange")
            await acct.journal.alert(
                Severity.WARNING,
                f"watchdog {acct.scope}: " + "; ".join(report.errors),
                f"watchdog-error:{acct.scope}",
                repeat_after=REALERT_SECONDS,
            )
        elif self._failed_runs:
            await self._recovered()
        return report

    def _failed(self, kind: str) -> None:
        self.stats.failures += 1
        self._failed_runs += 1
        self._failed_kinds.add(kind)
        if self._failing_since is None:
            self._failing_since = time.time()

    async def _recovered(self) -> None:
        """The first clean run after failed ones: say the condition is over (once)."""
        acct = self.account
        since = time.strftime("%H:%M:%SZ", time.gmtime(self._failing_since or time.time()))
        what = "; ".join(AGAIN[k] for k in sorted(self._failed_kinds))
        await acct.journal.alert(
            Severity.INFO,
            f"watchdog {acct.scope}: {what} after {self._failed_runs} failed watchdog run(s) "
            f"since {since}; positions and stops checked",
            f"watchdog-ok:{acct.scope}",
        )
        event(log, "watchdog.recovered", scope=acct.scope, failed_runs=self._failed_runs)
        self._failed_runs = 0
        self._failed_kinds.clear()
        self._failing_since = None
        self._storage_alert_at = None

    async def _storage_alert(self, exc: StorageError) -> None:
        """Try the outbox (re-raised every REALERT_SECONDS at most); when it cannot be written
        either, the journal logs the alert at CRITICAL: the terminal carries it."""
        now = self.monotonic()
        if self._storage_alert_at is not None and now - self._storage_alert_at < REALERT_SECONDS:
            return
        self._storage_alert_at = now
        scope = self.account.scope
        with contextlib.suppress(StorageError):
            await self.account.journal.alert(
                Severity.CRITICAL,
                f"watchdog {scope}: the database cannot be written ({type(exc).__name__}: "
                f"{exc}); no new entries and no stop can be placed (each order needs its "
                "stored intent) until it can; stops already on the exchange stay live",
                f"storage:{scope}",
                repeat_after=REALERT_SECONDS,
            )

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
