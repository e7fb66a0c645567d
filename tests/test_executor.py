"""The guarded executor through the real paper exchange, a real database, journal and lease.

Nothing under test is mocked. Where a fault is needed that the paper exchange cannot produce
(a request lost in transit, a 51016 answer to a request that did go through, a lease stolen at
an exact moment), a small wrapper around the real exchange injects it; each wrapper's name says
what it does. The ``Rig`` lives in tests/rig_executor.py, shared with the guardian and
post-mortem tests.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.config.schema import PaperExchangeConfig
from bot.exchanges import paper_settings
from storage.db import Database
from storage.journal_store import JournalStore
from storage.lease import LeaseStore
from tests.rig_executor import (
    BTC,
    BTC_STOP,
    BUY,
    ETH,
    FAST,
    LONG,
    SCOPE,
    SELL,
    SHORT,
    SLACK,
    VERIFY,
    Rig,
    alerts,
    all_orders,
    build_rig,
)
from trading.errors import DuplicateClientId, UnknownOutcome
from trading.executor import Outcome
from trading.journal import Attribution, IntentKind, IntentStatus, StopStatus
from trading.lease import LeaseLost
from trading.models import Order, OrderSide, OrderStatus, PositionSide, StopState
from trading.paper import PaperExchange
from trading.paper.core import REJECT_CODE, SILENT_FAIL_CODE
from trading.paper.engine import draw
from trading.settings import RiskLimits, StopPolicy

OKX_CLIENT_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")


@pytest.fixture
def rig(db: Database) -> Rig:
    return build_rig(db)


async def sent_anything(paper: PaperExchange) -> bool:
    stops = await paper.open_stops() + await paper.stop_history()
    return bool(await all_orders(paper) or stops or await paper.trades())


def seed_for(pattern: str, rate: float = 0.5) -> int:
    """A fault seed whose draws come out as ``pattern``: 'r' rejected, 'o' accepted.

    Each write the paper exchange rolls for (orders, stops, cancels) takes the next draw.
    """
    for seed in range(200_000):
        if all((draw(seed, i) < rate) == (c == "r") for i, c in enumerate(pattern)):
            return seed
    raise AssertionError(f"no seed gives {pattern}")


# -- open: the happy path --------------------------------------------------------------------


async def test_open_fills_and_the_stop_is_read_back_live(rig: Rig) -> None:
    res = await rig.open(BTC, LONG, 0.001, BTC_STOP)

    assert res.outcome is Outcome.PROTECTED, res.detail
    assert (res.fill_price, res.size, res.stop_attempts) == (69094.5, 0.001, 1)
    assert res.detection_latency is None and res.notes == []
    [pos] = await rig.paper.positions()
    assert (pos.symbol, pos.side, pos.size) == (BTC, LONG, 0.001)
    [stop] = await rig.paper.open_stops()
    assert (stop.symbol, stop.side, stop.size, stop.trigger_price) == (BTC, SELL, 0.001, BTC_STOP)
    assert stop.state is StopState.LIVE and stop.reduce_only

    inst = await rig.journal.instance_id()
    [intent] = await rig.journal.intents(SCOPE)
    assert (intent.kind, intent.status, intent.size, intent.stop_price) == (
        IntentKind.ENTRY,
        IntentStatus.FILLED,
        0.001,
        BTC_STOP,
    )
    assert intent.client_id == f"wd{inst}e{intent.id}"
    assert OKX_CLIENT_ID.match(intent.client_id)
    [order] = await all_orders(rig.paper)
    assert order.client_id == intent.client_id and not order.reduce_only

    [rec] = await rig.journal.stops_for(SCOPE, BTC)
    assert rec.client_id == f"wd{inst}s{rec.id}" and OKX_CLIENT_ID.match(rec.client_id)
    assert (rec.status, rec.exchange_state, rec.exchange_id) == (
        StopStatus.VERIFIED,
        StopState.LIVE,
        stop.id,
    )
    assert rec.verified_at is not None and rec.verified_at >= rec.placed_at
    assert stop.client_id == rec.client_id
    # the record is the exchange's own: read it back by client id
    seen = await rig.paper.get_stop(BTC, client_id=rec.client_id)
    assert seen is not None and seen.state is StopState.LIVE
    assert await rig.journal.incidents(SCOPE) == []
    assert await rig.journal.refusals() == []


async def test_client_ids_differ_per_intent_and_per_database(rig: Rig, tmp_path: Path) -> None:
    await rig.open(BTC, LONG, 0.001, BTC_STOP)
    await rig.open(ETH, SHORT, 0.1, 2000.0)
    ids = [i.client_id for i in await rig.journal.intents(SCOPE)]
    ids += [s.client_id for sym in (BTC, ETH) for s in await rig.journal.stops_for(SCOPE, sym)]
    assert len(set(ids)) == 4 and all(OKX_CLIENT_ID.match(i) for i in ids)
    other = await Database.open(tmp_path / "other.db")
    try:
        other_inst = await JournalStore(other).instance_id()
    finally:
        await other.close()
    assert other_inst != await rig.journal.instance_id()


# -- open: refusals send nothing ---------------------------------------------------------------


async def _pause(rig: Rig) -> None:
    await rig.journal.set_paused(SCOPE, True, "test")


REFUSALS: list[tuple[str, str, PositionSide, float, float, dict[str, Any], str]] = [
    ("paused", BTC, LONG, 0.001, BTC_STOP, {"pause": True}, "paused"),
    ("unknown symbol", "DOGE/USDT:USDT", LONG, 10.0, 0.1, {}, "unknown symbol"),
    ("below minimum", BTC, LONG, 0.00005, BTC_STOP, {}, "below the minimum"),
    ("off the size step", BTC, LONG, 0.000105, BTC_STOP, {}, "size step"),
    ("not a number", BTC, LONG, math.nan, BTC_STOP, {}, "size"),
    ("infinite size", BTC, LONG, math.inf, BTC_STOP, {}, "size"),
    ("negative size", BTC, LONG, -0.001, BTC_STOP, {}, "size"),
    ("long stop above the market", BTC, LONG, 0.001, 70_000.0, {}, "must be below"),
    ("short stop below the market", ETH, SHORT, 0.1, 1_900.0, {}, "must be above"),
    ("stop too far", BTC, LONG, 0.001, 60_000.0, {}, "max_stop_percent"),
    ("notional", BTC, LONG, 0.001, BTC_STOP, {"max_notional": 50.0}, "max_notional"),
    ("leverage", BTC, LONG, 1.0, BTC_STOP, {}, "max_leverage"),
]


@pytest.mark.parametrize(
    ("symbol", "side", "size", "stop", "setup", "reason"),
    [r[1:] for r in REFUSALS],
    ids=[r[0] for r in REFUSALS],
)
async def test_refusals_are_recorded_and_nothing_is_sent(
    db: Database,
    symbol: str,
    side: PositionSide,
    size: float,
    stop: float,
    setup: dict[str, Any],
    reason: str,
) -> None:
    limits = RiskLimits(max_notional=setup.get("max_notional"))
    rig = build_rig(db, limits=limits)
    if setup.get("pause"):
        await _pause(rig)

    res = await rig.open(symbol, side, size, stop, purpose="scheduled")

    assert res.outcome is Outcome.REFUSED
    assert reason in res.detail
    [refusal] = await rig.journal.refusals()
    assert (refusal.symbol, refusal.action, refusal.purpose) == (
        symbol,
        "open",
        "scheduled",
    )
    assert reason in refusal.reason
    assert not await sent_anything(rig.paper)
    assert await rig.journal.intents(SCOPE) == []
    assert await rig.paper.positions() == []


async def test_existing_position_on_the_symbol_is_never_added_to(rig: Rig) -> None:
    """I3: the exchange is asked, not the journal: a position opened elsewhere counts."""
    await rig.paper.place_market_order(BTC, BUY, 0.002, "bymanualhand1")
    before = await all_orders(rig.paper)

    res = await rig.open(BTC, LONG, 0.001, BTC_STOP)

    assert res.outcome is Outcome.REFUSED and "already exists" in res.detail
    assert await all_orders(rig.paper) == before
    assert [p.size for p in await rig.paper.positions()] == [0.002]
    assert await rig.paper.open_stops() == []
    assert "already exists" in (await rig.journal.refusals())[0].reason


async def test_a_second_open_of_the_same_symbol_is_refused(rig: Rig) -> None:
    first = await rig.open(BTC, LONG, 0.001, BTC_STOP)
    second = await rig.open(BTC, LONG, 0.001, BTC_STOP, purpose="manual")
    assert (first.outcome, second.outcome) == (Outcome.PROTECTED, Outcome.REFUSED)
    assert len(await all_orders(rig.paper)) == 1
    assert [p.size for p in await rig.paper.positions()] == [0.001]
    assert len(await rig.paper.open_stops()) == 1


async def test_max_open_positions(db: Database) -> None:
    rig = build_rig(db, limits=RiskLimits(max_open_positions=1))
    assert (await rig.open(ETH, SHORT, 0.1, 2000.0)).outcome is Outcome.PROTECTED
    res = await rig.open(BTC, LONG, 0.001, BTC_STOP)
    assert res.outcome is Outcome.REFUSED and "max_open_positions" in res.detail
    assert [p.symbol for p in await rig.paper.positions()] == [ETH]
    assert [o.symbol for o in await all_orders(rig.paper)] == [ETH]


class RestingEntryOrder:
    """The paper exchange, plus an unfilled entry order resting on BTC (paper market orders
    never rest, a real exchange's limit orders do)."""

    def __init__(self, inner: PaperExchange) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        resting = Order(BTC, "777", "elsewhere1", BUY, 0.001, 0.0, None, OrderStatus.OPEN, False)
        return [resting] if symbol in (None, BTC) else []


async def test_an_open_entry_order_on_the_symbol_refuses(db: Database) -> None:
    rig = build_rig(db, wrap=RestingEntryOrder)
    res = await rig.open(BTC, LONG, 0.001, BTC_STOP)
    assert res.outcome is Outcome.REFUSED and "already open" in res.detail
    assert not await sent_anything(rig.paper)


# -- open: unknown outcomes are resolved by client id, never resent ----------------------------


async def test_entry_timeout_after_fill_is_resolved_by_client_id(rig: Rig) -> None:
    await rig.paper.set_faults(entry_timeout_after_fill=1)

    res = await rig.open(BTC, LONG, 0.001, BTC_STOP)

    assert res.outcome is Outcome.PROTECTED, res.detail
    [order] = await all_orders(rig.paper)  # exactly one order reached the exchange
    [intent] = await rig.journal.intents(SCOPE)
    assert order.client_id == intent.client_id
    assert (intent.status, intent.size) == (IntentStatus.FILLED, 0.001)
    assert [p.size for p in await rig.paper.positions()] == [0.001]
    assert len(await rig.paper.trades()) == 1
    [stop] = await rig.paper.open_stops()
    assert stop.size == 0.001 and stop.state is StopState.LIVE
    assert (await rig.paper.faults()).entry_timeout_after_fill == 0  # the fault did fire


class EntryLostInTransit:
    """Entries time out without ever reaching the paper exchange (the request was lost)."""

    def __init__(self, inner: PaperExchange) -> None:
        self.inner = inner
        self.sent = 0
        self.lookups = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def place_market_order(
        self, symbol: str, side: OrderSide, size: float, client_id: str, reduce_only: bool = False
    ) -> Order:
        self.sent += 1
        raise UnknownOutcome(f"timeout sending {client_id}", client_id=client_id)

    async def get_order(
        self, symbol: str, *, order_id: str | None = None, client_id: str | None = None
    ) -> Order | None:
        self.lookups += 1
        return await self.inner.get_order(symbol, order_id=order_id, client_id=client_id)


async def test_an_unknown_outcome_that_never_filled_is_not_resent(db: Database) -> None:
    wrapped: list[EntryLostInTransit] = []

    def wrap(paper: PaperExchange) -> Any:
        wrapped.append(EntryLostInTransit(paper))
        return wrapped[0]

    rig = build_rig(db, wrap=wrap)
    res = await rig.open(BTC, LONG, 0.001, BTC_STOP)

    assert res.outcome is Outcome.UNRESOLVED
    assert wrapped[0].sent == 1  # never sent again with a new id
    assert wrapped[0].lookups == rig.sender.resolve_attempts
    assert not await sent_anything(rig.paper)
    [intent] = await rig.journal.intents(SCOPE)
    assert intent.status is IntentStatus.UNKNOWN
    [incident] = await rig.journal.incidents(SCOPE)
    assert (incident.kind, incident.attribution) == ("unresolved_order", Attribution.EXECUTION)
    assert intent.client_id in incident.detail


class DuplicateAfterSend:
    """The entry reaches the exchange, but the answer that comes back is 51016 (duplicate
    client id), as when a transport-level retry of the same request is refused."""

    def __init__(self, inner: PaperExchange) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def place_market_order(
        self, symbol: str, side: OrderSide, size: float, client_id: str, reduce_only: bool = False
    ) -> Order:
        await self.inner.place_market_order(symbol, side, size, client_id, reduce_only)
        raise DuplicateClientId(f"client id {client_id} already used", code="51016")


async def test_duplicate_client_id_answer_is_resolved_not_taken_as_a_rejection(
    db: Database,
) -> None:
    """51016 means "already placed": the order is looked up by id and the position protected
    at once, not left without a stop until the next watchdog run."""
    rig = build_rig(db, wrap=DuplicateAfterSend)
    res = await rig.open(BTC, LONG, 0.001, BTC_STOP)

    assert res.outcome is Outcome.PROTECTED, res.detail
    assert len(await all_orders(rig.paper)) == 1
    [intent] = await rig.journal.intents(SCOPE)
    assert intent.status is IntentStatus.FILLED
    [stop] = await rig.paper.open_stops()
    assert (stop.size, stop.trigger_price) == (0.001, BTC_STOP)


# -- open: the stop must be live on the exchange (I4) -----------------------------------------


async def test_a_silently_failed_stop_is_detected_and_replaced(rig: Rig) -> None:
    await rig.paper.set_faults(stop_silent_fail=1)

    res = await rig.open(BTC, LONG, 0.001, BTC_STOP)

    assert res.outcome is Outcome.PROTECTED, res.detail
    assert res.stop_attempts == 2
    assert res.detection_latency is not None
    assert VERIFY <= res.detection_latency <= VERIFY + SLACK
    assert "failed (failCode 1000)" in res.notes[0]
    [failed] = await rig.paper.stop_history(BTC)
    assert (failed.state, failed.fail_code) == (StopState.FAILED, SILENT_FAIL_CODE)
    [live] = await rig.paper.open_stops(BTC)
    assert (live.size, live.trigger_price) == (0.001, BTC_STOP)

    second, first = await rig.journal.stops_for(SCOPE, BTC)
    assert (first.status, first.exchange_state, first.fail_code) == (
        StopStatus.FAILED,
        StopState.FAILED,
        SILENT_FAIL_CODE,
    )
    assert first.exchange_id == failed.id and first.verified_at is None
    assert (second.status, second.exchange_id) == (StopStatus.VERIFIED, live.id)
    assert first.client_id != second.client_id  # a re-placement is a new order, a new id

    [incident] = await rig.journal.incidents(SCOPE)
    assert (incident.kind, incident.attribution) == (
        "stop_placement_failed",
        Attribution.EXECUTION,
    )
    assert incident.resolved_at is not None
    # unprotected seconds: from the fill to the verified re-placement, two read-backs
    assert incident.unprotected_since is not None
    unprotected = incident.resolved_at - incident.unprotected_since
    assert 2 * VERIFY <= unprotected <= FAST.verify_attempts * VERIFY + SLACK
    assert any(a["severity"] == "critical" for a in await alerts(rig.db))


async def test_no_live_stop_after_every_attempt_means_emergency_close(rig: Rig) -> None:
    await rig.paper.set_faults(stop_silent_fail=FAST.verify_attempts)

    res = await rig.open(BTC, LONG, 0.001, BTC_STOP)

    assert res.outcome is Outcome.EMERGENCY_CLOSED, res.detail
    assert res.stop_attempts == FAST.verify_attempts
    assert await rig.paper.positions() == []
    assert await rig.paper.open_stops() == []
    history = await rig.paper.stop_history(BTC)
    assert [s.state for s in history] == [StopState.FAILED] * FAST.verify_attempts
    orders = await all_orders(rig.paper)
    assert [(o.side, o.reduce_only) for o in orders] == [(BUY, False), (SELL, True)]
    [incident] = await rig.journal.incidents(SCOPE)
    assert (incident.kind, incident.attribution) == ("emergency_close", Attribution.EXECUTION)
    # closed above the stop level: nothing lost beyond it (the cost the stop would have capped)
    assert incident.cost == 0.0 and incident.resolved_at is not None
    [exit_] = await rig.journal.exits(SCOPE)
    assert exit_.reason.startswith("emergency(") and exit_.exit_price == 69025.5
    assert exit_.pnl < 0  # fees and slippage of the forced round trip
    crit = [a for a in await alerts(rig.db) if a["severity"] == "critical"]
    assert crit and "emergency_close" in crit[-1]["text"] and "execution" in crit[-1]["text"]


async def test_a_rejected_stop_is_placed_again(rig: Rig) -> None:
    # draws: the entry is accepted, the first stop rejected, the second accepted
    await rig.paper.set_faults(seed=seed_for("oro"), reject_rate=0.5)

    res = await rig.open(BTC, LONG, 0.001, BTC_STOP)

    assert res.outcome is Outcome.PROTECTED, res.detail
    assert res.stop_attempts == 2 and "rejected" in res.notes[0]
    assert await rig.paper.stop_history() == []  # a rejected stop never existed
    [live] = await rig.paper.open_stops()
    second, first = await rig.journal.stops_for(SCOPE, BTC)
    assert first.status is StopStatus.REJECTED and first.exchange_id is None
    assert (second.status, second.exchange_id) == (StopStatus.VERIFIED, live.id)
    [incident] = await rig.journal.incidents(SCOPE)
    assert incident.kind == "stop_placement_failed" and incident.resolved_at is not None
    async with rig.db.read() as conn:
        cur = await conn.execute("SELECT api_answer FROM stop_placement WHERE id = ?", (first.id,))
        row = await cur.fetchone()
    assert row is not None and REJECT_CODE in row[0]


async def test_every_stop_rejected_means_emergency_close(rig: Rig) -> None:
    await rig.paper.set_faults(seed=seed_for("orrro"), reject_rate=0.5)

    res = await rig.open(BTC, LONG, 0.001, BTC_STOP)

    assert res.outcome is Outcome.EMERGENCY_CLOSED, res.detail
    assert await rig.paper.positions() == [] and await rig.paper.open_stops() == []
    kinds = [i.kind for i in await rig.journal.incidents(SCOPE)]
    assert kinds == ["emergency_close"]


async def test_a_stop_that_fires_while_being_verified_is_not_a_failure(db: Database) -> None:
    """The market falls through the stop during the read-back delay: the stop did its job.
    That must not be taken for a failed stop (no re-placement, no emergency close of a
    position that is already gone, no 'could NOT be closed' alarm)."""
    holder: list[Rig] = []

    async def market_falls_while_verifying(seconds: float) -> None:
        await asyncio.sleep(seconds)
        await holder[0].paper.set_price(BTC, 65_000.0)

    rig = build_rig(db, keeper_sleep=market_falls_while_verifying)
    holder.append(rig)

    res = await rig.open(BTC, LONG, 0.001, BTC_STOP)

    assert res.outcome is not Outcome.FAILED, res.detail
    assert res.outcome is not Outcome.EMERGENCY_CLOSED, res.detail
    assert await rig.paper.positions() == []
    [fired] = await rig.paper.stop_history(BTC)
    assert fired.state is StopState.TRIGGERED
    orders = await all_orders(rig.paper)
    assert len(orders) == 2 and orders[1].average_price == pytest.approx(65_567.2)
    kinds = [i.kind for i in await rig.journal.incidents(SCOPE)]
    assert "emergency_close_failed" not in kinds and "emergency_close" not in kinds
    [rec] = await rig.journal.stops_for(SCOPE, BTC)
    assert rec.status is StopStatus.TRIGGERED


# -- the lease (I1): a lost lease stops every write --------------------------------------------


async def take_over_after_expiry(db_path: Path, purpose: str = "other process") -> int:
    """Another process (its own connection) whose clock is past our lease's expiry."""
    other = await Database.open(db_path)
    try:
        store = LeaseStore(other, clock=lambda: time.time() + 3600)
        result = await store.try_acquire(SCOPE, "elsewhere:1:abcd", purpose, ttl=7200)
        return result.holder.token
    finally:
        await other.close()


async def test_a_lease_taken_over_stops_the_open_before_any_write(rig: Rig, db_path: Path) -> None:
    async with rig.lease() as lease:
        token = await take_over_after_expiry(db_path)
        assert token == lease.token + 1
        with pytest.raises(LeaseLost):
            await rig.executor.open(lease, BTC, LONG, 0.001, BTC_STOP, "test")
    assert not await sent_anything(rig.paper)
    assert await rig.journal.intents(SCOPE) == []


async def test_a_released_lease_cannot_write(rig: Rig) -> None:
    lease = await rig.leases.acquire(SCOPE, "test")
    await lease.release()
    with pytest.raises(LeaseLost):
        await rig.executor.open(lease, BTC, LONG, 0.001, BTC_STOP, "test")
    assert not await sent_anything(rig.paper)


class LeaseStolenAfterEntry:
    """The entry fills; right after it, another process takes the account's lease over (as
    after a long GC pause or a SIGSTOP past the lease's expiry)."""

    def __init__(self, inner: PaperExchange, db_path: Path) -> None:
        self.inner = inner
        self.db_path = db_path

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def place_market_order(
        self, symbol: str, side: OrderSide, size: float, client_id: str, reduce_only: bool = False
    ) -> Order:
        order = await self.inner.place_market_order(symbol, side, size, client_id, reduce_only)
        await take_over_after_expiry(self.db_path)
        return order


async def test_a_lease_lost_after_the_fill_places_no_stop_and_the_new_holder_repairs(
    db: Database, db_path: Path
) -> None:
    rig = build_rig(db, wrap=lambda p: LeaseStolenAfterEntry(p, db_path))
    async with rig.lease() as lease:
        with pytest.raises(LeaseLost):
            await rig.executor.open(lease, BTC, LONG, 0.001, BTC_STOP, "test")
    # the old holder wrote nothing after losing the lease: no stop, no second order
    assert len(await all_orders(rig.paper)) == 1
    assert await rig.paper.open_stops() == [] and await rig.paper.stop_history() == []
    assert await rig.journal.stops_for(SCOPE, BTC) == []
    # the new holder's guardian protects the position at the level the entry asked for
    plain = build_rig(db)
    async with db.write() as conn:  # the other process has finished; let its lease lapse
        await conn.execute("UPDATE lease SET expires_at = 0 WHERE scope = ?", (SCOPE,))
    report = await plain.reconcile()
    assert report.protected == 1, report
    [stop] = await plain.paper.open_stops()
    assert (stop.size, stop.trigger_price) == (0.001, BTC_STOP)


async def test_close_with_a_lost_lease_touches_nothing(rig: Rig, db_path: Path) -> None:
    await rig.open(BTC, LONG, 0.001, BTC_STOP)
    [stop] = await rig.paper.open_stops()
    async with rig.lease() as lease:
        await take_over_after_expiry(db_path)
        with pytest.raises(LeaseLost):
            await rig.executor.close(lease, BTC, "manual", "test")
    assert await rig.paper.open_stops() == [stop]
    assert [p.size for p in await rig.paper.positions()] == [0.001]


# -- close -----------------------------------------------------------------------------------


async def test_close_symbol_cancels_its_stops_and_closes_reduce_only(rig: Rig) -> None:
    await rig.open(BTC, LONG, 0.001, BTC_STOP)
    await rig.open(ETH, SHORT, 0.1, 2000.0)
    [btc_stop] = await rig.paper.open_stops(BTC)
    [eth_stop] = await rig.paper.open_stops(ETH)

    async with rig.lease() as lease:
        [res] = await rig.executor.close(lease, BTC, "manual", "cli close")

    assert res.outcome is Outcome.CLOSED and res.size == 0.001
    assert res.fill_price == 69025.5
    assert [p.symbol for p in await rig.paper.positions()] == [ETH]
    assert await rig.paper.open_stops() == [eth_stop]
    [ended] = await rig.paper.stop_history(BTC)
    assert (ended.id, ended.state) == (btc_stop.id, StopState.CANCELED)
    close_intent = (await rig.journal.intents(SCOPE))[0]
    assert (close_intent.kind, close_intent.status) == (IntentKind.CLOSE, IntentStatus.FILLED)
    order = await rig.paper.get_order(BTC, client_id=close_intent.client_id)
    assert order is not None and order.reduce_only and order.side is SELL
    [exit_] = await rig.journal.exits(SCOPE)
    assert (exit_.symbol, exit_.reason, exit_.size, exit_.exit_price) == (
        BTC,
        "manual",
        0.001,
        69025.5,
    )
    assert exit_.entry_price == 69094.5
    assert exit_.pnl == pytest.approx((69025.5 - 69094.5) * 0.001 - order.fee)


async def test_close_all(rig: Rig) -> None:
    await rig.open(BTC, LONG, 0.001, BTC_STOP)
    await rig.open(ETH, SHORT, 0.1, 2000.0)
    async with rig.lease() as lease:
        results = await rig.executor.close(lease, "all", "manual", "cli close")
    assert sorted((r.symbol, r.outcome) for r in results) == [
        (BTC, Outcome.CLOSED),
        (ETH, Outcome.CLOSED),
    ]
    assert await rig.paper.positions() == [] and await rig.paper.open_stops() == []
    assert {e.symbol for e in await rig.journal.exits(SCOPE)} == {BTC, ETH}


async def test_close_with_no_position_sends_nothing(rig: Rig) -> None:
    async with rig.lease() as lease:
        [res] = await rig.executor.close(lease, BTC, "manual", "cli close")
        [res_all] = await rig.executor.close(lease, "all", "manual", "cli close")
    assert res.outcome is Outcome.NOTHING and res_all.outcome is Outcome.NOTHING
    assert not await sent_anything(rig.paper)


async def test_a_rejected_close_leaves_the_position_protected(rig: Rig) -> None:
    await rig.open(BTC, LONG, 0.001, BTC_STOP)
    # draws: the stop cancel is accepted, the close order rejected, the new stop accepted
    await rig.paper.set_faults(seed=seed_for("oro"), reject_rate=0.5)

    async with rig.lease() as lease:
        [res] = await rig.executor.close(lease, BTC, "manual", "cli close")

    assert res.outcome is Outcome.FAILED
    assert [p.size for p in await rig.paper.positions()] == [0.001]
    [stop] = await rig.paper.open_stops()
    assert (stop.size, stop.trigger_price, stop.state) == (0.001, BTC_STOP, StopState.LIVE)
    assert await rig.journal.exits(SCOPE) == []
    # Warden canceled its own stop to close: a failed close is its fault, not someone else's
    [incident] = [i for i in await rig.journal.incidents(SCOPE) if i.kind == "unprotected_position"]
    assert incident.attribution is Attribution.EXECUTION
    assert "Warden canceled stop" in incident.detail


def test_the_rig_uses_the_default_paper_markets() -> None:
    markets = {m.symbol: m for m in paper_settings(PaperExchangeConfig()).markets}
    assert markets[BTC].price == 69060.0 and markets[ETH].price == 1950.0
    assert replace(FAST, verify_delay=2.0) == StopPolicy()
