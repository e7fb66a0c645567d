"""The guarded executor's rig, shared by the executor, guardian, post-mortem, audit and accounting
tests: a real paper exchange, database, journal and lease (nothing mocked); fault-injecting
wrappers are named for what they do."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from bot.config.schema import PaperExchangeConfig
from bot.exchanges import paper_settings
from storage.db import Database
from storage.held_lease import HeldLease, LeaseManager
from storage.journal_store import JournalStore
from storage.lease import LeaseStore
from storage.paper_store import PaperStore
from trading.executor import Executor
from trading.guardian import Guardian
from trading.models import Order, OrderSide, OrderStatus, PositionSide
from trading.orders import OrderSender
from trading.paper import PaperExchange
from trading.port import ExchangePort
from trading.settings import RiskLimits, StopPolicy
from trading.stops import StopKeeper

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
SCOPE = "paper:main"
LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
BUY, SELL = OrderSide.BUY, OrderSide.SELL
VERIFY = 0.05  # seconds between placing a stop and reading it back
FAST = StopPolicy(verify_delay=VERIFY, verify_attempts=3, default_stop_percent=10.0)
BTC_STOP = 65_600.0  # 5.0% below 69,060
# what a CPU-starved CI machine may add to a sleep; never used as a performance target
SLACK = 2.0


class WallClock:
    """time.time(), but strictly increasing, so 'placed before canceled' is decidable."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self) -> float:
        self.last = max(time.time(), self.last + 1e-6)
        return self.last


async def no_wait(_: float) -> None:
    """The order sender's back-off between look-ups of an unknown outcome, made instant."""
    await asyncio.sleep(0)


@dataclass
class Rig:
    db: Database
    paper: PaperExchange
    exchange: ExchangePort  # the paper exchange, or a fault-injecting wrapper around it
    journal: JournalStore
    sender: OrderSender
    keeper: StopKeeper
    guardian: Guardian
    executor: Executor
    leases: LeaseManager
    policy: StopPolicy

    @asynccontextmanager
    async def lease(self, purpose: str = "test") -> AsyncIterator[HeldLease]:
        async with self.leases.hold(SCOPE, purpose) as held:
            yield held

    async def open(
        self, symbol: str, side: PositionSide, size: float, stop: float, purpose: str = "test"
    ) -> Any:
        async with self.lease(purpose) as lease:
            return await self.executor.open(lease, symbol, side, size, stop, purpose)

    async def reconcile(self) -> Any:
        async with self.lease("guardian") as lease:
            return await self.guardian.reconcile(lease)


def build_rig(
    db: Database,
    *,
    policy: StopPolicy = FAST,
    limits: RiskLimits | None = None,
    wrap: Callable[[PaperExchange], ExchangePort] | None = None,
    keeper_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.time,
) -> Rig:
    """``clock`` is the agent's wall clock (journal, lease, guardian, executor); the paper
    exchange keeps its own real one."""
    settings = paper_settings(PaperExchangeConfig())
    paper = PaperExchange("paper", settings, PaperStore(db), clock=WallClock())
    exchange: ExchangePort = wrap(paper) if wrap else paper
    journal = JournalStore(db, clock=clock)
    sender = OrderSender(exchange, journal, sleep=no_wait)
    keeper = StopKeeper(exchange, journal, sender, policy, sleep=keeper_sleep)
    guardian = Guardian(exchange, journal, keeper, SCOPE, policy, wall_clock=clock)
    executor = Executor(
        exchange, journal, sender, keeper, guardian, SCOPE, limits or RiskLimits(), clock
    )
    leases = LeaseManager(LeaseStore(db, clock=clock), ttl=30, heartbeat=5)
    return Rig(db, paper, exchange, journal, sender, keeper, guardian, executor, leases, policy)


async def all_orders(paper: PaperExchange) -> list[Order]:
    """Every order the paper exchange ever received, whatever became of it."""
    async with paper.store.read(paper.name) as tx:
        found = [o for status in OrderStatus for o in await tx.orders(None, status)]
    return sorted(found, key=lambda o: int(o.id))


async def alerts(db: Database) -> list[dict[str, Any]]:
    async with db.read() as conn:
        cur = await conn.execute("SELECT severity, key, text FROM alert_outbox ORDER BY id")
        return [dict(r) for r in await cur.fetchall()]
