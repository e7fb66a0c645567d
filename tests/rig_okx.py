"""The OKX scenario rig: the real OKX adapter (ccxt) against the fake OKX server on a local
port, with the journal and database around it; shared by the OKX scenario and chart suites."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import ccxt.async_support  # noqa: F401  imported once for the session, as the adapter does
import pytest

from storage.db import Database
from storage.held_lease import HeldLease, LeaseManager
from storage.journal_store import JournalStore
from storage.lease import LeaseStore
from tests.fake_okx import API_KEY, PASSPHRASE, SECRET, FakeOkx
from trading.adapters.okx import OkxExchange
from trading.executor import ExecResult, Executor
from trading.guardian import Guardian, GuardReport
from trading.models import PositionSide
from trading.orders import OrderSender
from trading.settings import RiskLimits, StopPolicy
from trading.stops import StopKeeper

SCOPE = "okx:main"
POLICY = StopPolicy(verify_delay=0.05, verify_attempts=3, default_stop_percent=10.0)


async def no_wait(_: float) -> None:
    await asyncio.sleep(0)


@dataclass
class Rig:
    fake: FakeOkx
    okx: OkxExchange
    db: Database
    journal: JournalStore
    guardian: Guardian
    executor: Executor
    leases: LeaseManager

    @asynccontextmanager
    async def lease(self, purpose: str) -> AsyncIterator[HeldLease]:
        async with self.leases.hold(SCOPE, purpose) as held:
            yield held

    async def open(self, symbol: str, side: PositionSide, size: float, stop: float) -> ExecResult:
        async with self.lease("test open") as lease:
            return await self.executor.open(lease, symbol, side, size, stop, "test")

    async def reconcile(self) -> GuardReport:
        async with self.lease("watchdog") as lease:
            return await self.guardian.reconcile(lease)

    def stops(self, state: str | None = None) -> list[dict[str, Any]]:
        return self.fake.algo_list(state)


@pytest.fixture
async def rig(db: Database) -> AsyncIterator[Rig]:
    fake = await FakeOkx(demo=True).start()
    okx = OkxExchange(
        "okx",
        "main",
        API_KEY,
        SECRET,
        PASSPHRASE,
        sandbox=True,
        api_url=fake.url,
        leverage=5,
        rate_limit_ms=1,
    )
    okx._ex.timeout_on_exit = 0  # ccxt's 250 ms TLS grace on close, not needed locally
    journal = JournalStore(db)
    sender = OrderSender(okx, journal, sleep=no_wait)
    keeper = StopKeeper(okx, journal, sender, POLICY)
    guardian = Guardian(okx, journal, keeper, SCOPE, POLICY)
    executor = Executor(okx, journal, sender, keeper, guardian, SCOPE, RiskLimits())
    leases = LeaseManager(LeaseStore(db), ttl=30, heartbeat=5)
    try:
        yield Rig(fake, okx, db, journal, guardian, executor, leases)
    finally:
        await okx.close()
        await fake.stop()
    assert fake.unknown == [], f"endpoints the fake does not know: {fake.unknown}"
