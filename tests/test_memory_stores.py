"""The backtest's in-memory stores answer exactly like the SQLite ones: the same script of calls
through the paper exchange and the journal, on both, gives the same answers."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

import pytest

from bot.config.schema import PaperExchangeConfig
from bot.exchanges import paper_settings
from storage.db import Database
from storage.held_lease import LeaseManager
from storage.journal_store import JournalStore
from storage.lease import LeaseStore
from storage.paper_store import PaperStore
from trading.backtest import InProcessLease, MemoryJournal, MemoryPaperStore
from trading.journal import (
    Attribution,
    ExitReason,
    IntentKind,
    IntentStatus,
    NewAlert,
    NewExit,
    NewIncident,
    Severity,
    StopStatus,
)
from trading.lease import LeaseGuard
from trading.marketdata import read_bundled
from trading.models import OrderSide, PositionSide, StopState
from trading.paper import FaultSettings, PaperExchange

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
SELL, BUY = OrderSide.SELL, OrderSide.BUY


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


async def outcome(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


async def paper_script(ex: PaperExchange) -> list[Any]:
    out: list[Any] = []

    async def rec(call: Awaitable[Any]) -> None:
        out.append(await outcome(call))

    btc = read_bundled(BTC)[:80]
    await rec(ex.load_candles(BTC, btc, timeframe="30m", warmup=30))
    await rec(ex.candles(BTC, "30m", limit=5))
    await rec(ex.candles(BTC, "30m", since=btc[10].ts, limit=4))
    await rec(ex.candles(BTC, "1h"))
    await rec(ex.candles(ETH, "30m"))
    await rec(ex.place_market_order(BTC, BUY, 0.01, "e1"))
    await rec(ex.place_market_order(BTC, BUY, 0.01, "e1"))  # duplicate client id
    await rec(ex.place_stop(BTC, SELL, 0.01, 60_000.0, "s1"))
    await rec(ex.place_stop(BTC, SELL, 0.01, 90_000.0, "s2"))  # wrong side
    await rec(ex.place_stop(ETH, BUY, 0.1, 2_500.0, "s3"))  # a stop with nothing to reduce
    await rec(ex.get_order(BTC, client_id="e1"))
    await rec(ex.get_order(ETH, client_id="e1"))
    await rec(ex.get_order(BTC, order_id="1", client_id="s1"))
    await rec(ex.get_stop(BTC, client_id="s1"))
    await rec(ex.open_stops())
    await rec(ex.open_stops(ETH))
    await rec(ex.cancel_stop(ETH, "3"))
    await rec(ex.cancel_stop(ETH, "3"))  # already canceled
    await rec(ex.set_price(ETH, 2_600.0))
    await rec(ex.advance(BTC, 50))
    await rec(ex.positions())
    await rec(ex.balance())
    await rec(ex.open_orders())
    await rec(ex.stop_history())
    await rec(ex.stop_history(BTC, since=1_005.0))
    await rec(ex.place_market_order(ETH, SELL, 0.3, "e2"))
    await rec(ex.place_market_order(ETH, BUY, 0.5, "e3"))  # flips to a long
    await rec(ex.place_market_order(ETH, SELL, 0.05, "r1", reduce_only=True))
    await rec(ex.place_market_order(BTC, SELL, 0.05, "r2", reduce_only=True))
    await rec(ex.trades())
    await rec(ex.trades(ETH, since=1_030.0))
    await rec(ex.realized_pnl())
    await rec(ex.set_faults(stop_silent_fail=1, reject_rate=0.3, seed=3))
    for i in range(6):
        await rec(ex.place_stop(ETH, SELL, 0.05, 2_000.0 + i, f"f{i}"))
    await rec(ex.faults())
    await rec(ex.stop_history())
    return out


async def test_paper_exchange_answers_the_same_on_both_stores(db: Database) -> None:
    settings = replace(paper_settings(PaperExchangeConfig()), faults=FaultSettings())
    sql = PaperExchange("paper", settings, PaperStore(db), clock=Clock())
    mem = PaperExchange("paper", settings, MemoryPaperStore(), clock=Clock())
    expected = await paper_script(sql)
    assert await paper_script(mem) == expected
    assert any(isinstance(x, str) and "51016" not in x for x in expected)  # errors included


def _no_ids(x: Any) -> Any:
    """Client ids carry a random instance part: compare their shape, not their value."""
    text = repr(x)
    return re.sub(r"wd[0-9a-f]{6}([ecxs])", r"wd<inst>\1", text)


class StepClock:
    """Moves only when told: both journals read the clock a different number of times."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def journal_script(j: Any, lease: LeaseGuard, clock: StepClock) -> list[Any]:
    out: list[Any] = []

    async def rec(call: Awaitable[Any]) -> None:
        clock.now += 1.0
        out.append(_no_ids(await outcome(call)))

    scope = lease.scope
    e1 = await j.create_intent(lease, IntentKind.ENTRY, BTC, BUY, 0.01, 60_000.0, "cycle a")
    out.append(_no_ids(e1))
    await rec(j.position_owner(scope, BTC))
    await rec(j.finish_intent(e1.id, IntentStatus.FILLED, order_id="7", filled=0.01, price=1.0))
    await rec(j.position_owner(scope, BTC))
    await rec(j.desired_stop_price(scope, BTC))
    await rec(j.last_entry(scope, BTC))
    e2 = await j.create_intent(lease, IntentKind.ENTRY, ETH, SELL, 0.1, None, "cycle b")
    await rec(j.unresolved_intents(scope))
    await rec(j.finish_intent(e2.id, IntentStatus.UNKNOWN, error="timeout"))
    await rec(j.unresolved_intents(scope))
    await rec(j.intents(scope, limit=1))
    s1 = await j.create_stop(lease, BTC, PositionSide.LONG, 0.01, 60_000.0)
    s2 = await j.create_stop(lease, BTC, PositionSide.LONG, 0.01, 60_100.0)
    await rec(j.update_stop(s1.id, StopStatus.ACKED, exchange_id="11", api_answer="ok"))
    await rec(j.update_stop(s1.id, StopStatus.FAILED, exchange_state=StopState.FAILED))
    await rec(j.update_stop(s2.id, StopStatus.VERIFIED, exchange_id="12", verified=True))
    await rec(j.stops_for(scope, BTC))
    await rec(j.stops_for(scope, BTC, limit=1))
    await rec(j.verified_stops(scope))
    await rec(j.stop_checked_at(scope, BTC))
    await rec(j.mark_stop_seen_live(scope, BTC, "12"))
    await rec(j.stop_checked_at(scope, BTC))
    await rec(j.mark_stop_canceled(scope, BTC, "12"))
    await rec(j.verified_stops(scope))
    await rec(j.open_incident(scope, BTC, "unprotected", Attribution.EXECUTION, "no stop"))
    await rec(j.resolve_incidents(scope, BTC, "fixed"))
    await rec(j.resolve_incidents(scope, BTC, "fixed again"))
    await rec(j.alert(Severity.WARNING, "hello", "k", repeat_after=10))
    await rec(j.alert(Severity.WARNING, "hello", "k", repeat_after=10))
    await rec(j.record_refusal(scope, ETH, "open", "trading is paused", "cycle b"))
    await rec(j.refusals())
    await rec(
        j.record_exit(scope, BTC, PositionSide.LONG, 0.01, 61_000.0, 60_000.0, "stop_loss", 0.3)
    )
    await rec(
        j.record_event(
            scope,
            exit=NewExit(
                ETH, PositionSide.SHORT, 0.1, 2_000.0, 2_100.0, ExitReason.EMERGENCY, 0.2, "x"
            ),
            incident=NewIncident(ETH, "emergency_close", Attribution.EXECUTION, "d", cost=5.0),
            alert=NewAlert(Severity.INFO, "closed", "close:ETH"),
        )
    )
    await rec(j.exits(scope))
    await rec(j.incidents(scope))
    await rec(outcome(j.finish_intent(e1.id, IntentStatus.UNKNOWN)))  # filled is final
    await rec(outcome(j.update_stop(s2.id, StopStatus.ACKED)))  # canceled is final
    await rec(j.position_owner(scope, BTC))
    await rec(j.desired_stop_price(scope, BTC))
    await rec(j.last_entry(scope, BTC))
    await rec(j.is_paused(scope))
    return out


async def test_journal_answers_the_same_in_memory(db: Database) -> None:
    manager = LeaseManager(LeaseStore(db), ttl=30, heartbeat=5)
    async with manager.hold("paper:main", "test") as lease:
        clock = StepClock()
        expected = await journal_script(JournalStore(db, clock=clock), lease, clock)
    clock = StepClock()
    got = await journal_script(MemoryJournal(clock=clock), InProcessLease("paper:main"), clock)
    assert got == expected


@pytest.mark.parametrize("limit", [0, 1, 5, 500])
async def test_candle_windows_are_slices(limit: int) -> None:
    store = MemoryPaperStore()
    candles = read_bundled(BTC)[:100]
    async with store.write("x") as tx:
        await tx.add_market(BTC, 1.0, 0.0)
        await tx.replace_candles(BTC, "30m", candles, 60)
        got = await tx.closed_candles(BTC, 60, None, limit)
    assert got == candles[max(0, 60 - limit) : 60] if limit else got == []
