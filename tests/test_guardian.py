"""The stop-loss guardian (I5) reconciling the real paper exchange against its desired state:
every position has exactly one live reduce-only stop, right side, full size."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from storage.db import Database
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
from trading.errors import AuthError, NetworkError
from trading.journal import Attribution, IntentKind
from trading.models import StopState
from trading.paper import PaperExchange
from trading.settings import StopPolicy
from trading.stops import StopKeeper, StopOutcome

ETH_STOP = 1983.41
ETH_OVERRUN = 2006.02


@pytest.fixture
def rig(db: Database) -> Rig:
    return build_rig(db)


async def guardian_alerts(db: Database) -> list[dict[str, Any]]:
    """Incident and "resolved" alerts (entries and exits raise their own info alerts)."""
    return [a for a in await alerts(db) if a["key"].startswith(("incident:", "resolved:"))]


def unprotected_seconds(incident: Any) -> float:
    assert incident.resolved_at is not None and incident.unprotected_since is not None
    return float(incident.resolved_at - incident.unprotected_since)


async def test_a_clean_account_needs_nothing(rig: Rig) -> None:
    report = await rig.reconcile()
    assert report.clean and (report.positions, report.protected) == (0, 0)

    await rig.open(BTC, LONG, 0.001, BTC_STOP)
    [stop] = await rig.paper.open_stops()
    orders = await all_orders(rig.paper)

    report = await rig.reconcile()
    assert report.clean and (report.positions, report.protected) == (1, 1)
    assert await rig.paper.open_stops() == [stop] and await rig.paper.stop_history() == []
    assert await all_orders(rig.paper) == orders
    assert await rig.journal.incidents(SCOPE) == []
    assert await guardian_alerts(rig.db) == []


async def test_an_unknown_position_gets_a_stop_at_the_default_distance(rig: Rig) -> None:
    await rig.paper.place_market_order(BTC, BUY, 0.001, "openedbyhand1")
    [pos] = await rig.paper.positions()

    report = await rig.reconcile()

    assert report.protected == 1 and not report.errors
    [stop] = await rig.paper.open_stops()
    expected = round(pos.entry_price * (1 - FAST.default_stop_percent / 100), 1)
    assert (stop.side, stop.size, stop.trigger_price) == (SELL, 0.001, expected)
    assert stop.reduce_only and stop.state is StopState.LIVE
    [incident] = await rig.journal.incidents(SCOPE)
    assert (incident.kind, incident.attribution) == ("unprotected_position", Attribution.EXTERNAL)
    assert incident.resolved_at is not None
    assert [rec.status.value for rec in await rig.journal.stops_for(SCOPE, BTC)] == ["verified"]


async def test_a_stop_canceled_behind_the_agents_back_is_restored(rig: Rig) -> None:
    await rig.open(BTC, LONG, 0.001, BTC_STOP)
    [old] = await rig.paper.open_stops()
    await rig.paper.cancel_stop(BTC, old.id)  # as from the exchange's web page
    gap = 0.2
    await asyncio.sleep(gap)

    report = await rig.reconcile()

    assert report.protected == 1
    [new] = await rig.paper.open_stops()
    assert new.id != old.id and (new.size, new.trigger_price) == (0.001, BTC_STOP)
    [incident] = await rig.journal.incidents(SCOPE)
    assert incident.attribution is Attribution.EXTERNAL
    assert "canceled outside Warden" in incident.detail
    # unprotected from the last time the stop was seen live to the verified replacement
    assert gap + VERIFY <= unprotected_seconds(incident) <= gap + 3 * VERIFY + SLACK
    sent = await guardian_alerts(rig.db)
    assert [a["severity"] for a in sent] == ["critical", "info"]
    assert sent[0]["key"] == f"incident:{SCOPE}:{BTC}:unprotected_position"
    assert sent[1]["key"] == f"resolved:{SCOPE}:{BTC}" and "resolved" in sent[1]["text"]

    # the next run finds nothing to do, and raises no new alert
    assert (await rig.reconcile()).clean
    assert len(await guardian_alerts(rig.db)) == 2


class LaterClock:
    """Real time plus an offset the test moves forward: "ten minutes later" without waiting."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def test_unprotected_time_starts_when_the_stop_was_last_seen_live(db: Database) -> None:
    """The watchdog saw the stop live at its last run; it is gone at this one: unprotected
    since that last sighting, not since the stop was first placed, nor since just now."""
    clock = LaterClock()
    rig = build_rig(db, clock=clock)
    await rig.open(BTC, LONG, 0.001, BTC_STOP)
    clock.offset += 600  # ten minutes on, the watchdog finds the stop live
    assert (await rig.reconcile()).clean
    seen_live = clock()
    clock.offset += 600  # ten minutes on again: the stop was canceled in between
    [stop] = await rig.paper.open_stops()
    await rig.paper.cancel_stop(BTC, stop.id)

    report = await rig.reconcile()

    assert report.protected == 1
    [incident] = await rig.journal.incidents(SCOPE)
    assert incident.unprotected_since == pytest.approx(seen_live, abs=SLACK)
    assert 600 <= unprotected_seconds(incident) <= 600 + 3 * VERIFY + SLACK


async def test_a_silently_failed_stop_is_replaced_and_attributed_to_execution(
    db: Database,
) -> None:
    """The post-mortem's original code: the stop was placed, the API said OK, nobody read it
    back. The guardian finds the failed stop on its next run and replaces it."""
    rig = build_rig(db)
    unverified = StopKeeper(
        rig.exchange, rig.journal, rig.sender, StopPolicy(verify_delay=0.0, verify_attempts=1)
    )
    await rig.paper.set_faults(stop_silent_fail=1)
    async with rig.lease() as lease:
        await rig.sender.send(
            lease,
            IntentKind.ENTRY,
            BTC,
            BUY,
            0.001,
            reduce_only=False,
            purpose="t",
            stop_price=BTC_STOP,
        )
        placed = await unverified.place_verified(lease, BTC, LONG, 0.001, BTC_STOP)
    assert placed.outcome is StopOutcome.UNVERIFIED
    gap = 0.3  # until the next watchdog run
    await asyncio.sleep(gap)

    report = await rig.reconcile()

    assert report.protected == 1
    [live] = await rig.paper.open_stops()
    assert (live.trigger_price, live.size) == (BTC_STOP, 0.001)
    [failed] = await rig.paper.stop_history()
    assert (failed.state, failed.fail_code) == (StopState.FAILED, "1000")
    [incident] = await rig.journal.incidents(SCOPE)
    assert incident.attribution is Attribution.EXECUTION
    assert "failCode 1000" in incident.detail
    # unprotected since the failed stop was placed (the position never had a live stop), not
    # merely since the guardian noticed
    assert gap + VERIFY <= unprotected_seconds(incident) <= gap + 3 * VERIFY + SLACK


async def test_a_mis_sized_stop_is_replaced_without_a_gap(rig: Rig) -> None:
    await rig.open(BTC, LONG, 0.001, BTC_STOP)
    [old] = await rig.paper.open_stops()
    await rig.paper.place_market_order(BTC, BUY, 0.001, "secondentry1")  # grown outside Warden
    [pos] = await rig.paper.positions()
    assert pos.size == 0.002

    report = await rig.reconcile()

    assert report.protected == 1
    [new] = await rig.paper.open_stops()
    assert (new.size, new.trigger_price, new.side) == (0.002, BTC_STOP, SELL)
    [ended] = await rig.paper.stop_history()
    assert (ended.id, ended.state) == (old.id, StopState.CANCELED)
    # the full-size stop existed before the old one was canceled: never zero live stops
    assert new.created_at < ended.updated_at
    [incident] = await rig.journal.incidents(SCOPE)
    assert "does not cover" in incident.detail and incident.resolved_at is not None


async def test_duplicate_stops_are_cut_to_exactly_one(rig: Rig) -> None:
    await rig.open(BTC, LONG, 0.001, BTC_STOP)
    [mine] = await rig.paper.open_stops()
    await rig.paper.place_stop(BTC, SELL, 0.001, BTC_STOP, "wdx1s901")
    await rig.paper.place_stop(BTC, SELL, 0.001, 66_000.0, "wdx1s902")
    assert len(await rig.paper.open_stops()) == 3

    report = await rig.reconcile()

    assert report.protected == 1
    assert len([a for a in report.actions if "canceled extra stop" in a]) == 2
    assert await rig.paper.open_stops() == [mine]
    assert {s.state for s in await rig.paper.stop_history()} == {StopState.CANCELED}


async def test_an_orphan_stop_is_canceled(rig: Rig) -> None:
    await rig.open(BTC, LONG, 0.001, BTC_STOP)
    await rig.open(ETH, SHORT, 0.1, 2000.0)
    [eth_stop] = await rig.paper.open_stops(ETH)
    await rig.paper.place_market_order(BTC, SELL, 0.001, "closedbyhand1", reduce_only=True)

    report = await rig.reconcile()

    assert any("orphan" in a for a in report.actions)
    assert await rig.paper.open_stops() == [eth_stop]
    [ended] = await rig.paper.stop_history(BTC)
    assert ended.state is StopState.CANCELED


async def test_level_already_passed_means_emergency_close_with_its_cost(rig: Rig) -> None:
    res = await rig.open(ETH, SHORT, 0.3, ETH_STOP)
    assert res.fill_price == 1949.03
    [stop] = await rig.paper.open_stops()
    await rig.paper.cancel_stop(ETH, stop.id)
    await rig.paper.set_price(ETH, ETH_OVERRUN)  # nothing fires: the stop is gone

    report = await rig.reconcile()

    assert report.protected == 0 and any("emergency close" in a for a in report.actions)
    assert await rig.paper.positions() == [] and await rig.paper.open_stops() == []
    close = (await all_orders(rig.paper))[-1]
    assert (close.side, close.reduce_only, close.filled) == (BUY, True, 0.3)
    fill = close.average_price
    assert fill is not None
    assert fill == pytest.approx(ETH_OVERRUN * 1.0005, abs=0.01)
    kinds = {i.kind: i for i in await rig.journal.incidents(SCOPE)}
    emergency = kinds["emergency_close"]
    assert emergency.cost == pytest.approx((fill - ETH_STOP) * 0.3)
    assert emergency.attribution is Attribution.EXTERNAL  # the stop was removed outside Warden
    assert all(i.resolved_at is not None for i in kinds.values())
    [exit_] = await rig.journal.exits(SCOPE)
    assert exit_.reason.startswith("emergency(") and exit_.exit_price == fill


ALL_READS = ("markets", "positions", "open_stops", "ticker", "get_stop", "balance")


class UnreadableExchange:
    """The paper exchange behind a broken network: the named reads fail with ``error``;
    writes still go through, so any write the guardian made would show."""

    def __init__(self, inner: PaperExchange, error: Exception, reads: tuple[str, ...]) -> None:
        self.inner = inner
        self.error = error
        self.failing = reads
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        if name in self.failing:
            return self._fail
        return getattr(self.inner, name)

    async def _fail(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        raise self.error


@pytest.mark.parametrize(
    ("error", "reads"),
    [
        (NetworkError("connection reset"), ALL_READS),
        (AuthError("invalid key"), ALL_READS),
        (NetworkError("connection reset"), ("open_stops",)),
    ],
    ids=["network", "auth", "stop-list-only"],
)
async def test_an_unreadable_exchange_means_no_action(
    db: Database, error: Exception, reads: tuple[str, ...]
) -> None:
    """Fail closed: without the exchange's view nothing is changed, the error is reported. In
    particular a stop list that cannot be read is not an empty one (that would stack a
    second stop on every position, or 'repair' what is fine)."""
    wrapped: list[UnreadableExchange] = []

    def wrap(paper: PaperExchange) -> Any:
        wrapped.append(UnreadableExchange(paper, error, reads))
        return wrapped[0]

    rig = build_rig(db, wrap=wrap)
    await rig.paper.place_market_order(ETH, SELL, 0.1, "openedbyhand1")  # unprotected
    await rig.paper.place_market_order(BTC, BUY, 0.001, "openedbyhand2")
    await rig.paper.place_stop(BTC, SELL, 0.001, BTC_STOP, "stopbyhand2")  # protected
    before = (await rig.paper.open_stops(), await all_orders(rig.paper))

    report = await rig.reconcile()

    assert report.errors and str(error) in report.errors[0]
    assert report.actions == [] and report.positions == 0
    assert wrapped[0].reads >= 1
    assert (await rig.paper.open_stops(), await all_orders(rig.paper)) == before
    assert await rig.paper.stop_history() == []
    assert await rig.journal.incidents(SCOPE) == []


async def test_an_external_position_after_a_closed_trade_gets_its_own_stop(rig: Rig) -> None:
    """A stop level remembered from an earlier, closed Warden trade on the same symbol must not
    be applied to a different position opened later outside Warden: here a short, for which
    the old long's level sits below the market (that would 'pass the level' and emergency-close
    somebody else's position)."""
    await rig.open(BTC, LONG, 0.001, BTC_STOP)
    async with rig.lease() as lease:
        await rig.executor.close(lease, BTC, "manual", "test")
    await rig.paper.place_market_order(BTC, SELL, 0.002, "shortbyhand1")
    [short] = await rig.paper.positions()

    report = await rig.reconcile()

    assert report.protected == 1, report.actions
    assert [p.size for p in await rig.paper.positions()] == [0.002]
    [stop] = await rig.paper.open_stops()
    expected = round(short.entry_price * (1 + FAST.default_stop_percent / 100), 1)
    assert (stop.side, stop.size, stop.trigger_price) == (BUY, 0.002, expected)
    assert "emergency_close" not in {i.kind for i in await rig.journal.incidents(SCOPE)}


async def test_a_level_from_a_stopped_out_trade_is_not_applied_to_the_other_side(
    rig: Rig,
) -> None:
    """Stopped out (the exchange closed it, so Warden recorded no exit); the market recovers
    and a short is opened outside Warden. The old long's level sits below the short's entry:
    it cannot be this position's stop."""
    await rig.open(BTC, LONG, 0.001, BTC_STOP)
    [fired] = await rig.paper.set_price(BTC, 65_000.0)
    assert fired.fill is not None and await rig.paper.positions() == []
    await rig.paper.set_price(BTC, 69_000.0)
    await rig.paper.place_market_order(BTC, SELL, 0.002, "shortbyhand1")
    [short] = await rig.paper.positions()

    report = await rig.reconcile()

    assert report.protected == 1, report.actions
    [stop] = await rig.paper.open_stops()
    expected = round(short.entry_price * (1 + FAST.default_stop_percent / 100), 1)
    assert (stop.side, stop.size, stop.trigger_price) == (BUY, 0.002, expected)


async def test_a_stop_that_fires_while_the_guardian_verifies_it_is_not_an_emergency(
    db: Database,
) -> None:
    holder: list[Rig] = []

    async def market_falls_while_verifying(seconds: float) -> None:
        await asyncio.sleep(seconds)
        await holder[0].paper.set_price(BTC, 60_000.0)

    rig = build_rig(db, keeper_sleep=market_falls_while_verifying)
    holder.append(rig)
    await rig.paper.place_market_order(BTC, BUY, 0.001, "openedbyhand1")

    report = await rig.reconcile()

    assert not any("emergency" in a for a in report.actions), report.actions
    assert await rig.paper.positions() == []
    [fired] = await rig.paper.stop_history()
    assert fired.state is StopState.TRIGGERED
    kinds = [i.kind for i in await rig.journal.incidents(SCOPE)]
    assert kinds == ["unprotected_position"]
    assert (await rig.journal.incidents(SCOPE))[0].resolved_at is not None


def test_the_guardian_policy_is_the_fast_one() -> None:
    assert FAST.verify_delay == VERIFY and SHORT.exit_side is BUY and LONG.exit_side is SELL


async def test_a_fired_stop_is_recorded_as_a_stop_loss_exit(rig: Rig) -> None:
    await rig.open(BTC, LONG, 0.001, BTC_STOP)
    [entry] = [i for i in await rig.journal.intents(SCOPE) if i.kind is IntentKind.ENTRY]
    [fired] = await rig.paper.set_price(BTC, BTC_STOP - 100)
    assert fired.fill is not None and fired.fill.average_price is not None

    report = await rig.reconcile()

    [exit_] = await rig.journal.exits(SCOPE)
    assert exit_.reason == "stop_loss"
    assert exit_.exit_price == fired.fill.average_price  # the fill, slippage included
    assert exit_.entry_price == entry.price
    assert exit_.fee == pytest.approx(fired.fill.fee)
    expected = (fired.fill.average_price - entry.price) * 0.001 - fired.fill.fee
    assert exit_.pnl == pytest.approx(expected)
    assert any("fired, exit recorded" in a for a in report.actions)
    assert any(a["key"].startswith("stop-loss:") for a in await alerts(rig.db))
    # the closed trade leaves nothing behind for the next position on the symbol
    assert await rig.journal.desired_stop_price(SCOPE, BTC) is None
    assert await rig.journal.position_owner(SCOPE, BTC) is None
    # and it is recorded once
    await rig.reconcile()
    assert len(await rig.journal.exits(SCOPE)) == 1
