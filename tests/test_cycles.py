"""Strategy cycles (bot/cycles.py + trading/cycle.py) on a real database, the real paper
exchange replaying scripted candles, and the real execution lease. Nothing under test is mocked.

The scripted ETH path (``PATH``) makes a 5-bar momentum breakout enter long on candle 10 with a 2%
stop, hold for three candles, and exit on candle 14 when the close falls below the 3-bar low;
the stop is never reached. The path and helpers, shared with the daemon, owner, outage and
bad-input tests, live in tests/rig_cycles.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import bot.services
from bot.account_gate import AccountGate
from bot.cycles import CycleRunner, build_runs
from bot.exchanges import paper_settings
from bot.watchdog import Watchdog
from storage.db import Database
from storage.held_lease import LeaseManager
from storage.journal_store import JournalStore
from storage.lease import LeaseStore
from storage.outbox import Outbox
from storage.paper_store import PaperStore
from tests.rig_cycles import (
    ENTRY_BAR,
    ETH,
    EXIT_BAR,
    SCOPE,
    WARMUP,
    Rig,
    _paper,
    build_rig,
    make_config,
    strategy,
)
from trading.journal import IntentKind, IntentStatus, StopStatus
from trading.models import (
    OrderSide,
    Position,
    PositionSide,
    StopAck,
    StopState,
)
from trading.paper import PaperExchange

ENTRY_STOP = 2009.0  # 2% under the breakout close 2050


@pytest.fixture
async def rig_for(db: Database, db_path: Path) -> AsyncIterator[Any]:
    async def make(*strategies: dict[str, Any], **kw: Any) -> Rig:
        return await build_rig(make_config(db_path, strategies or [strategy("momo")], **kw), db)

    yield make


async def entry_intents(journal: JournalStore) -> list[Any]:
    return [i for i in await journal.intents(SCOPE) if i.kind is IntentKind.ENTRY]


# --- entry with a verified stop, exit on signal, records ---------------------------------------


async def test_strategy_enters_with_verified_stop_exits_on_signal_and_records_every_run(
    rig_for: Any,
) -> None:
    rig: Rig = await rig_for()
    runner = rig.runner("momo")
    outcomes = []
    for bar in range(WARMUP - 1, EXIT_BAR + 1):
        await rig.advance_to(bar)
        out = await runner.run("replay")
        assert out.status == "done" and out.report is not None
        outcomes.append(out.report.outcome)
        if bar == ENTRY_BAR:
            (pos,) = await rig.exchange.positions()
            assert (pos.symbol, pos.side) == (ETH, PositionSide.LONG)
            # risk sizing: 1% of 10,000 at 41 from the stop, rounded to the 0.001 step
            assert pos.size == pytest.approx(2.439)
            (stop,) = await rig.live_stops()
            assert stop.state is StopState.LIVE and stop.reduce_only
            assert stop.trigger_price == ENTRY_STOP and stop.size == pos.size
            assert stop.side is OrderSide.SELL
            # the journal says it was read back live, not just acknowledged (I4)
            recs = await rig.journal.stops_for(SCOPE, ETH)
            assert recs[0].status is StopStatus.VERIFIED and recs[0].verified_at is not None
            (intent,) = await entry_intents(rig.journal)
            assert intent.status is IntentStatus.FILLED and intent.purpose == "cycle momo"
            assert intent.stop_price == ENTRY_STOP
        if ENTRY_BAR < bar < EXIT_BAR:
            assert len(await rig.exchange.positions()) == 1
    assert outcomes == ["hold", "entered", "hold", "hold", "hold", "exited"]
    assert await rig.exchange.positions() == []
    assert await rig.live_stops() == []  # the exit took its stop with it
    (ex,) = await rig.journal.exits(SCOPE)
    assert ex.symbol == ETH and ex.reason == "signal" and ex.side == "long"
    assert ex.exit_price < ex.entry_price  # 2025 - slippage vs 2050 + slippage
    # one record per run, oldest first: start, end, outcome, the decisions with their reasons
    records = list(reversed(await rig.cycles.recent("momo", 50)))
    assert [r.outcome for r in records] == outcomes
    for r in records:
        assert r.scope == SCOPE and r.trigger == "replay" and r.error is None
        assert r.ended_at is not None and r.started_at <= r.ended_at
    assert "enter (close 2050 broke the 5-bar high 2005" in records[1].decisions
    assert "exit (close 2025 fell below the 3-bar low 2030" in records[-1].decisions
    assert "warming up" not in records[0].decisions


# --- ownership --------------------------------------------------------------------------------


async def test_strategy_never_exits_a_position_another_strategy_opened(rig_for: Any) -> None:
    rig: Rig = await rig_for(strategy("momo_a"), strategy("momo_b"))
    a, b = rig.runner("momo_a"), rig.runner("momo_b")
    await rig.advance_to(ENTRY_BAR)
    assert (await a.run("replay")).report.outcome == "entered"  # type: ignore[union-attr]
    out_b = await b.run("replay")
    assert out_b.report is not None and out_b.report.outcome == "hold"
    assert len(await entry_intents(rig.journal)) == 1  # b added nothing to a's position
    (pos,) = await rig.exchange.positions()
    await rig.advance_to(EXIT_BAR)
    # b sees the same exit signal first, and leaves a's position alone
    out_b = await b.run("replay")
    assert out_b.report is not None and out_b.report.outcome == "hold"
    assert "exit (close 2025" in out_b.report.summary()
    assert "position not opened by this strategy" in out_b.report.summary()
    assert [p.size for p in await rig.exchange.positions()] == [pos.size]
    out_a = await a.run("replay")
    assert out_a.report is not None and out_a.report.outcome == "exited"
    assert await rig.exchange.positions() == []


async def test_strategy_never_exits_a_position_opened_by_hand(rig_for: Any) -> None:
    rig: Rig = await rig_for()
    async with rig.leases.hold(SCOPE, "cli open") as lease:
        res = await rig.acct.executor.open(lease, ETH, PositionSide.LONG, 1.0, 1990.0, "cli open")
    assert res.ok, res.detail
    runner = rig.runner("momo")
    summaries = []
    for bar in range(ENTRY_BAR, EXIT_BAR + 1):
        await rig.advance_to(bar)
        out = await runner.run("replay")
        assert out.report is not None and out.report.outcome == "hold"
        summaries.append(out.report.summary())
    assert "position not opened by this strategy" in summaries[-1]
    (pos,) = await rig.exchange.positions()
    assert pos.size == 1.0
    assert len(await rig.live_stops()) == 1
    assert await rig.journal.exits(SCOPE) == []
    assert len(await entry_intents(rig.journal)) == 1


# --- pause -------------------------------------------------------------------------------------


async def test_paused_no_entries_but_exits_and_stop_guarding_continue(rig_for: Any) -> None:
    rig: Rig = await rig_for()
    runner = rig.runner("momo")
    await rig.journal.set_paused(SCOPE, True, "test")
    await rig.advance_to(ENTRY_BAR)
    out = await runner.run("replay")
    assert out.report is not None and out.report.outcome == "refused"
    assert "entries held back (paused: test)" in out.report.summary()  # the pause's reason
    assert await rig.exchange.positions() == []
    assert await rig.exchange.trades() == []
    assert await rig.journal.intents(SCOPE) == []

    # a global pause ("*", what `warden pause` without --exchange writes) holds entries too
    await rig.journal.set_paused(SCOPE, False)
    await rig.journal.set_paused("*", True, "test")
    out = await runner.run("replay")
    assert out.report is not None and out.report.outcome == "refused"
    assert await rig.exchange.trades() == []

    # resumed: the same candle enters; then paused again with the position open
    await rig.journal.set_paused("*", False)
    out = await runner.run("replay")
    assert out.report is not None and out.report.outcome == "entered"
    await rig.journal.set_paused(SCOPE, True, "test")

    # the stop disappears behind Warden's back: the paused cycle's guardian puts it back
    (stop,) = await rig.live_stops()
    await rig.exchange.cancel_stop(ETH, stop.id)
    assert await rig.live_stops() == []
    await rig.advance_to(ENTRY_BAR + 1)
    out = await runner.run("replay")
    assert out.report is not None
    assert out.report.guardian_actions, out.report.summary()
    (again,) = await rig.live_stops()
    assert again.trigger_price == ENTRY_STOP and again.id != stop.id
    (pos,) = await rig.exchange.positions()
    assert again.size == pos.size

    # and the exit signal still closes the position while paused
    await rig.advance_to(EXIT_BAR)
    out = await runner.run("replay")
    assert out.report is not None and out.report.outcome == "exited"
    assert await rig.exchange.positions() == []
    assert await rig.journal.is_paused(SCOPE)


# --- sizing refusal ----------------------------------------------------------------------------


async def test_size_below_minimum_is_a_refusal_with_its_reason_and_nothing_is_sent(
    rig_for: Any,
) -> None:
    rig: Rig = await rig_for(strategy("tiny", sizing="fixed", size=0.0001))
    await rig.advance_to(ENTRY_BAR)
    out = await rig.runner("tiny").run("replay")
    assert out.status == "done" and out.report is not None
    assert out.report.outcome == "refused"
    (sym,) = out.report.symbols
    assert sym.decision.action.value == "enter"
    assert "below the market minimum 0.001 ETH" in sym.detail
    assert "fixed size 0.0001 ETH" in sym.detail
    assert await rig.exchange.trades() == []
    assert await rig.exchange.positions() == []
    assert await rig.live_stops() == []
    assert await rig.journal.intents(SCOPE) == []
    rec = await rig.cycles.last("tiny")
    assert rec is not None and rec.outcome == "refused"
    assert "below the market minimum" in rec.decisions


# --- the lease ---------------------------------------------------------------------------------


async def test_busy_lease_records_skip_with_holder_and_sends_nothing(
    rig_for: Any, db_path: Path
) -> None:
    rig: Rig = await rig_for()
    await rig.advance_to(ENTRY_BAR)
    other_db = await Database.open(db_path)  # another connection, as another process has
    try:
        other = LeaseManager(LeaseStore(other_db), ttl=30.0, heartbeat=5.0)
        held = await other.acquire(SCOPE, "maintenance by hand")
        # the holder lets go soon: a cycle that waited for the lease, instead of skipping at
        # once, would then trade
        release = asyncio.get_running_loop().call_later(
            0.5, lambda: asyncio.ensure_future(held.release())
        )
        try:
            out = await rig.runner("momo").run("scheduled")
        finally:
            release.cancel()
            await held.release()
    finally:
        await other_db.close()
    assert out.status == "busy" and out.report is None
    assert held.owner in out.detail and "maintenance by hand" in out.detail
    rec = await rig.cycles.last("momo")
    assert rec is not None and rec.outcome == "skipped_busy" and rec.trigger == "scheduled"
    assert rec.error is not None and held.owner in rec.error
    assert rec.ended_at is not None and rec.decisions == ""
    assert await rig.exchange.trades() == []
    assert await rig.journal.intents(SCOPE) == []
    # the refusal is on record for `warden lock` too
    refusals = await LeaseStore(rig.db).refusals()
    assert any(r.holder_owner == held.owner and r.scope == SCOPE for r in refusals)
    # the same cycle, once the account is free, does trade: the skip was the lease's doing
    out = await rig.runner("momo").run("scheduled")
    assert out.report is not None and out.report.outcome == "entered"


# --- one agent's cycle and watchdog take turns (bot/account_gate.py) ---------------------------


async def test_a_cycle_waits_for_its_own_watchdog_and_the_watchdog_yields_to_a_cycle(
    rig_for: Any,
) -> None:
    rig: Rig = await rig_for()
    await rig.advance_to(ENTRY_BAR)
    gate = AccountGate()
    runner = CycleRunner(
        next(r for r in build_runs(rig.config) if r.name == "momo"),
        rig.acct,
        rig.leases,
        rig.cycles,
        30.0,
        live_clock=False,
        gate=gate,
    )
    watchdog = Watchdog(rig.acct, rig.leases, 30.0, gate=gate)
    # a watchdog tick in progress: it has passed the gate and holds the lease
    async with gate.watchdog() as passed:
        assert passed
        async with rig.leases.hold(SCOPE, "stop watchdog"):
            cycle = asyncio.create_task(runner.run("scheduled"))
            await asyncio.sleep(0.3)
            assert not cycle.done()  # waiting for the tick, not recording a skip
            assert await rig.cycles.last("momo") is None
            # and a second tick meanwhile leaves the account to the queued cycle
            assert await watchdog.tick() is None
            assert watchdog.stats.yielded == 1 and watchdog.stats.skipped_busy == 0
    out = await cycle
    assert out.report is not None and out.report.outcome == "entered", out
    assert (await rig.cycles.counts("momo")) == {"entered": 1}
    # a cycle running: the tick yields without touching the lease (no refusal on record)
    async with gate.cycle(1.0) as passed:
        assert passed
        assert await watchdog.tick() is None
    assert watchdog.stats.yielded == 2 and watchdog.stats.runs == 0
    assert await LeaseStore(rig.db).refusals() == []
    # the account free: the tick runs the guardian
    report = await watchdog.tick()
    assert report is not None and watchdog.stats.runs == 1


async def test_a_refused_scheduled_cycle_runs_once_the_other_holder_lets_go(
    rig_for: Any, db_path: Path
) -> None:
    rig: Rig = await rig_for()
    await rig.advance_to(ENTRY_BAR)
    other_db = await Database.open(db_path)  # another connection, as another process has
    try:
        other = LeaseManager(LeaseStore(other_db), ttl=30.0, heartbeat=5.0)
        held = await other.acquire(SCOPE, "maintenance by hand")
        release = asyncio.get_running_loop().call_later(
            0.5, lambda: asyncio.ensure_future(held.release())
        )
        try:
            out = await rig.runner("momo").run_retrying(
                "scheduled", time.time() + 30.0, lambda: False
            )
        finally:
            release.cancel()
            await held.release()
    finally:
        await other_db.close()
    assert out.report is not None and out.report.outcome == "entered", out
    first, second = sorted(await rig.cycles.recent("momo"), key=lambda r: r.id)
    assert first.outcome == "skipped_busy" and first.error is not None
    assert held.owner in first.error and "maintenance by hand" in first.error
    assert second.outcome == "entered" and second.trigger == "scheduled"
    # past the deadline it gives up, the one skip on record
    held = await LeaseManager(LeaseStore(rig.db), ttl=30.0).acquire(SCOPE, "by hand")
    try:
        out = await rig.runner("momo").run_retrying("scheduled", time.time() + 0.3, lambda: False)
    finally:
        await held.release()
    assert out.status == "busy"
    assert (await rig.cycles.counts("momo")) == {"entered": 1, "skipped_busy": 2}


# --- the hard timeout --------------------------------------------------------------------------


async def test_hard_timeout_records_timeout_alerts_and_releases_the_lease(rig_for: Any) -> None:
    rig: Rig = await rig_for()
    await rig.advance_to(ENTRY_BAR)
    await rig.exchange.set_faults(latency_ms=400)
    out = await rig.runner("momo", timeout=0.3).run("scheduled")
    assert out.status == "timeout"
    assert "0.3s timeout" in out.detail
    rec = await rig.cycles.last("momo")
    assert rec is not None and rec.outcome == "timeout"
    assert rec.error is not None and "timeout" in rec.error
    assert await LeaseStore(rig.db).holders() == []
    alerts = await Outbox(rig.db).due()
    assert any(a.severity == "critical" and "timeout" in a.text for a in alerts)
    # the account is usable at once by the next cycle
    await rig.exchange.set_faults(latency_ms=0)
    out = await rig.runner("momo").run("scheduled")
    assert out.report is not None and out.report.outcome == "entered"


class StopPlacementHangs(PaperExchange):
    """The first stop placement never answers (a request stuck in transit); later ones do."""

    hung = 0

    async def place_stop(
        self, symbol: str, side: OrderSide, size: float, trigger_price: float, client_id: str
    ) -> StopAck:
        if StopPlacementHangs.hung == 0:
            StopPlacementHangs.hung += 1
            await asyncio.sleep(3600)
        return await super().place_stop(symbol, side, size, trigger_price, client_id)


async def test_timeout_after_the_fill_leaves_no_position_without_a_live_stop(
    rig_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hard timeout can strike between the entry fill and its stop. The aborted cycle must
    not leave the position unprotected until the next watchdog run: the runner guards the
    account (still under the lease) before it lets go."""
    monkeypatch.setattr(StopPlacementHangs, "hung", 0)
    monkeypatch.setattr(
        bot.services,
        "build_exchange",
        lambda config, name, db: StopPlacementHangs(
            name, paper_settings(_paper(config, name)), PaperStore(db)
        ),
    )
    rig: Rig = await rig_for()
    assert isinstance(rig.exchange, StopPlacementHangs)
    await rig.advance_to(ENTRY_BAR)
    out = await rig.runner("momo", timeout=1.0).run("scheduled")
    assert out.status == "timeout"
    (pos,) = await rig.exchange.positions()  # the entry did fill
    (stop,) = await rig.live_stops()
    assert stop.size == pos.size and stop.trigger_price == ENTRY_STOP
    assert await LeaseStore(rig.db).holders() == []
    rec = await rig.cycles.last("momo")
    assert rec is not None and rec.outcome == "timeout"
    assert "guardian after the timeout" in rec.decisions
    recs = await rig.journal.stops_for(SCOPE, ETH)
    assert any(r.exchange_id == stop.id and r.verified_at is not None for r in recs)


class PositionsBug(PaperExchange):
    """An adapter bug: reading positions raises something that is no ExchangeError."""

    async def positions(self, symbol: str | None = None) -> list[Position]:
        raise RuntimeError("adapter bug: unexpected field 'posSide'")


async def test_a_cycle_that_crashes_is_still_recorded_and_releases_the_lease(
    rig_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        bot.services,
        "build_exchange",
        lambda config, name, db: PositionsBug(
            name, paper_settings(_paper(config, name)), PaperStore(db)
        ),
    )
    rig: Rig = await rig_for()
    await rig.advance_to(ENTRY_BAR)
    with pytest.raises(RuntimeError, match="adapter bug"):
        await rig.runner("momo").run("scheduled")
    rec = await rig.cycles.last("momo")
    assert rec is not None and rec.outcome == "error" and rec.ended_at is not None
    assert rec.error == "RuntimeError: adapter bug: unexpected field 'posSide'"
    assert await LeaseStore(rig.db).holders() == []
    assert await rig.exchange.trades() == []
