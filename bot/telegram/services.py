"""What the Telegram handlers use from the running agent: its accounts, strategy runners, leases
and stores. Built from the Daemon, so commands act through exactly the objects the scheduler
uses (the same executor, the same lease manager)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.config import Config
from bot.cycles import CycleRunner
from bot.logs import redactor
from bot.services import Account
from bot.telegram.settings import TelegramSettings
from storage.cycle_store import CycleStore
from storage.db import Database
from storage.held_lease import LeaseManager
from storage.journal_store import JournalStore
from storage.lease import LeaseStore

if TYPE_CHECKING:
    from bot.daemon import Daemon


@dataclass
class BotServices:
    config: Config
    db: Database
    settings: TelegramSettings
    accounts: dict[str, Account]
    runners: dict[str, list[CycleRunner]]
    leases: LeaseManager
    cycles: CycleStore
    journal: JournalStore  # account-independent records: pause '*', access alerts
    scheduler: Callable[[], Any]  # the daemon's APScheduler, None before start
    allowed_users: frozenset[int]
    # whether start-up reconciliation of an exchange succeeded: entries wait for it
    reconciled: Callable[[str], bool]

    @classmethod
    def from_daemon(
        cls, daemon: Daemon, settings: TelegramSettings, allowed_users: frozenset[int]
    ) -> BotServices:
        return cls(
            config=daemon.config,
            db=daemon.db,
            settings=settings,
            accounts=daemon.accounts,
            runners=daemon.runners,
            leases=daemon.leases,
            cycles=daemon.cycles,
            journal=JournalStore(daemon.db, redact=redactor()),
            scheduler=lambda: daemon.scheduler,
            allowed_users=allowed_users,
            reconciled=lambda name: name in daemon.reconciled,
        )

    @property
    def lease_store(self) -> LeaseStore:
        return self.leases.store

    def strategies(self) -> list[tuple[str, CycleRunner]]:
        """(exchange name, runner) for every configured strategy, in config order."""
        return [(name, r) for name, runners in self.runners.items() for r in runners]

    def next_run(self, exchange: str, runner: CycleRunner) -> float | None:
        """When the scheduler runs this strategy next (None when it is not scheduled)."""
        sched = self.scheduler()
        if sched is None:
            return None
        for job_id in (f"cycle:{runner.run_spec.name}", f"replay:{exchange}"):
            job = sched.get_job(job_id)
            if job is not None and job.next_run_time is not None:
                return float(job.next_run_time.timestamp())
        return None

    def scope_of(self, exchange: str | None) -> str:
        return "*" if exchange is None else self.config.lease_scope(exchange)
