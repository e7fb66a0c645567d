"""The one gate every exchange write passes (trading/fenced.py), and local refusals (NotSent).

Real paper exchange, real database, real lease store; a lease is lost the way it is in
production: another connection takes it over after its expiry. Where a local refusal is needed
that the paper exchange (an exchange: its refusals are ``Rejected``) never gives, a small
wrapper raises the adapter's ``NotSent``; its name says so.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.config.schema import PaperExchangeConfig
from bot.exchanges import paper_settings
from storage.db import Database
from storage.held_lease import LeaseManager
from storage.journal_store import JournalStore
from storage.lease import LeaseStore
from storage.paper_store import PaperStore
from trading.errors import ExchangeError, NotSent, Rejected
from trading.executor import Executor, Outcome
from trading.fenced import WRITES, FencedExchange
from trading.guardian import Guardian
from trading.journal import IntentStatus, StopStatus
from trading.lease import LeaseLost
from trading.models import Order, OrderSide, OrderStatus, PositionSide, StopAck
from trading.orders import OrderSender
from trading.paper import PaperExchange
from trading.port import ExchangePort
from trading.settings import RiskLimits, StopPolicy
from trading.stops import StopKeeper

BTC = "BTC/USDT:USDT"
SCOPE = "paper:main"
POLICY = StopPolicy(verify_delay=0.05, verify_attempts=3, default_stop_percent=10.0)
ROOT = Path(__file__).resolve().parent.parent


async def no_wait(_: float) -> None:
    return None


def paper_on(db: Database) -> PaperExchange:
    return PaperExchange("paper", paper_settings(PaperExchangeConfig()), PaperStore(db))


async def snapshot(paper: PaperExchange) -> tuple[Any, ...]:
    """Everything the paper exchange ever received or holds."""
    async with paper.store.read(paper.name) as tx:
        found = [o for status in OrderStatus for o in await tx.orders(None, status)]
    orders = sorted(found, key=lambda o: int(o.id))
    return (
        orders,
        await paper.open_stops(),
        await paper.stop_history(),
        await paper.positions(),
    )


async def take_over(db_path: Path) -> int:
    """Another process (its own connection) whose clock is past our lease's expiry."""
    other = await Database.open(db_path)
    try:
        store = LeaseStore(other, clock=lambda: time.time() + 3600)
        result = await store.try_acquire(SCOPE, "elsewhere:1:abcd", "other process", ttl=7200)
        return result.holder.token
    finally:
        await other.close()


# one call per write of the port, on a long BTC position with one resting stop
WRITE_CALLS: dict[str, Callable[[ExchangePort, str], Awaitable[object]]] = {
    "place_market_order": lambda ex, _: ex.place_market_order(BTC, OrderSide.BUY, 0.001, "gate1"),
    "cancel_order": lambda ex, _: ex.cancel_order(BTC, "1"),
    "place_stop": lambda ex, _: ex.place_stop(BTC, OrderSide.SELL, 0.001, 60_000.0, "gate2"),
    "cancel_stop": lambda ex, stop_id: ex.cancel_stop(BTC, stop_id),
}


def test_every_write_of_the_port_is_gated_and_every_read_passes_through() -> None:
    port = {n for n, _ in inspect.getmembers(ExchangePort) if not n.startswith("_")}
    fenced = {n for n, _ in inspect.getmembers(FencedExchange) if not n.startswith("_")}
    assert port - {"name"} <= fenced
    assert set(WRITES) == set(WRITE_CALLS) and set(WRITES) <= port
    for name in WRITES:  # the gate is the first thing each write does
        [fn] = ast.parse(textwrap.dedent(inspect.getsource(getattr(FencedExchange, name)))).body
        assert isinstance(fn, ast.AsyncFunctionDef)
        assert ast.unparse(fn.body[0]) == "await self._gate()", name


@pytest.mark.parametrize("write", WRITES)
async def test_a_write_through_a_lost_lease_never_reaches_the_exchange(
    db: Database, db_path: Path, write: str
) -> None:
    paper = paper_on(db)
    await paper.place_market_order(BTC, OrderSide.BUY, 0.001, "setup1")
    stop = await paper.place_stop(BTC, OrderSide.SELL, 0.001, 60_000.0, "setup2")
    assert stop.id is not None
    leases = LeaseManager(LeaseStore(db), ttl=30, heartbeat=5)
    lease = await leases.acquire(SCOPE, "test")
    try:
        before = await snapshot(paper)
        assert await take_over(db_path) == lease.token + 1
        with pytest.raises(LeaseLost):
            await WRITE_CALLS[write](FencedExchange(paper, lease), stop.id)
        assert await snapshot(paper) == before
    finally:
        await lease.release()


@pytest.mark.parametrize("write", WRITES)
async def test_a_write_through_a_held_lease_does_reach_the_exchange(
    db: Database, write: str
) -> None:
    """The control for the test above: the same call with the lease held changes something
    (or is the exchange's own refusal: there is no order 1 to cancel on a fresh account)."""
    paper = paper_on(db)
    await paper.place_market_order(BTC, OrderSide.BUY, 0.001, "setup1")
    stop = await paper.place_stop(BTC, OrderSide.SELL, 0.001, 60_000.0, "setup2")
    assert stop.id is not None
    leases = LeaseManager(LeaseStore(db), ttl=30, heartbeat=5)
    async with leases.hold(SCOPE, "test") as lease:
        before = await snapshot(paper)
        try:
            await WRITE_CALLS[write](FencedExchange(paper, lease), stop.id)
        except Rejected as exc:
            assert write == "cancel_order", exc  # the exchange answered: it was sent
        else:
            assert await snapshot(paper) != before


def test_no_write_path_checks_the_lease_by_hand() -> None:
    """The token check lives in the gate: no ``ensure()`` call anywhere else in the domain or
    the bot (the storage layer implements it; the backtest's lease is never lost)."""
    callers = []
    for path in [*(ROOT / "trading").rglob("*.py"), *(ROOT / "bot").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "ensure"
            ):
                callers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert len(callers) == 1 and callers[0].startswith("trading/fenced.py:"), callers


# -- local refusals: NotSent -------------------------------------------------------------------


def test_not_sent_is_its_own_kind_and_says_so() -> None:
    exc = NotSent("size 0.00005 is not a multiple of the size step 0.0001")
    assert isinstance(exc, ExchangeError) and not isinstance(exc, Rejected)
    assert str(exc) == "not sent: size 0.00005 is not a multiple of the size step 0.0001"
    assert not exc.retryable and not hasattr(exc, "code")


class EntriesRefusedLocally:
    """The paper exchange behind an adapter whose own check refuses every market order."""

    def __init__(self, inner: PaperExchange) -> None:
        self.inner = inner
        self.lookups = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def place_market_order(
        self, symbol: str, side: OrderSide, size: float, client_id: str, reduce_only: bool = False
    ) -> Order:
        raise NotSent(f"client id {client_id!r} is not what this venue takes")

    async def get_order(self, symbol: str, **ids: str | None) -> Order | None:
        self.lookups += 1
        return await self.inner.get_order(symbol, **ids)


class StopsRefusedLocally:
    """The paper exchange behind an adapter whose own check refuses every stop."""

    def __init__(self, inner: PaperExchange) -> None:
        self.inner = inner
        self.stop_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def place_stop(
        self, symbol: str, side: OrderSide, size: float, trigger_price: float, client_id: str
    ) -> StopAck:
        self.stop_calls += 1
        raise NotSent(f"{symbol}: trigger {trigger_price} is not a price this venue takes")


@dataclass
class Setup:
    paper: PaperExchange
    journal: JournalStore
    executor: Executor
    leases: LeaseManager


def setup(db: Database, wrap: Callable[[PaperExchange], ExchangePort]) -> Setup:
    paper = paper_on(db)
    exchange = wrap(paper)
    journal = JournalStore(db)
    sender = OrderSender(exchange, journal, sleep=no_wait)
    keeper = StopKeeper(exchange, journal, sender, POLICY, sleep=no_wait)
    guardian = Guardian(exchange, journal, keeper, SCOPE, POLICY)
    executor = Executor(exchange, journal, sender, keeper, guardian, SCOPE, RiskLimits())
    return Setup(paper, journal, executor, LeaseManager(LeaseStore(db), ttl=30, heartbeat=5))


async def test_an_entry_refused_locally_is_not_sent_not_rejected_and_never_looked_up(
    db: Database,
) -> None:
    wrapped: list[EntriesRefusedLocally] = []

    def wrap(p: PaperExchange) -> ExchangePort:
        wrapped.append(EntriesRefusedLocally(p))
        return wrapped[0]

    s = setup(db, wrap)
    async with s.leases.hold(SCOPE, "test") as lease:
        res = await s.executor.open(lease, BTC, PositionSide.LONG, 0.001, 65_600.0, "test")
    assert res.outcome is Outcome.NOT_SENT and not res.ok
    assert res.detail.startswith("entry refused locally: not sent: client id")
    [intent] = await s.journal.intents(SCOPE)
    assert intent.status is IntentStatus.REJECTED
    assert wrapped[0].lookups == 0  # nothing to resolve by client id: it never left
    assert await snapshot(s.paper) == ([], [], [], [])


async def test_a_stop_refused_locally_is_tried_once_and_the_fill_closed_at_market(
    db: Database,
) -> None:
    """The same request would be refused the same way: no second attempt; the filled entry
    has no stop to be had, so it is closed at market (I4), with its incident."""
    wrapped: list[StopsRefusedLocally] = []

    def wrap(p: PaperExchange) -> ExchangePort:
        wrapped.append(StopsRefusedLocally(p))
        return wrapped[0]

    s = setup(db, wrap)
    async with s.leases.hold(SCOPE, "test") as lease:
        res = await s.executor.open(lease, BTC, PositionSide.LONG, 0.001, 65_600.0, "test")
    assert res.outcome is Outcome.EMERGENCY_CLOSED, res
    assert wrapped[0].stop_calls == 1 and res.stop_attempts == 1
    assert res.notes == [
        "attempt 1: not sent: BTC/USDT:USDT: trigger 65600.0 is not a price this venue takes"
    ]
    [rec] = await s.journal.stops_for(SCOPE, BTC)
    assert rec.status is StopStatus.REJECTED and rec.exchange_id is None
    assert await s.paper.positions() == []
    [incident] = await s.journal.incidents(SCOPE)
    assert incident.kind == "emergency_close"
