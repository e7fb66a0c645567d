"""OKX scenarios through the FULL executor and guardian, the real ccxt client and the fake OKX.

Wired as bot/services.py wires an account (OrderSender, StopKeeper, Guardian, Executor on a
JournalStore), on a real database with the real execution lease, and a short read-back delay.
Each test replays a way real OKX accounts lose money to code: the post-mortem's silent stop
(acknowledged, then ``order_failed`` / failCode 1000) and its 51278 refusal, an entry whose
answer is lost, a duplicate client id, rate limiting, a stop canceled behind the agent's back.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import ccxt.async_support  # noqa: F401  imported once for the session, as the adapter does
import pytest

from storage.db import Database
from tests import rig_okx
from tests.fake_okx import BTC, ETH
from tests.rig_okx import SCOPE, Rig
from trading.executor import Outcome
from trading.journal import Attribution, IntentKind, IntentStatus, StopStatus
from trading.models import PositionSide, StopState

rig = rig_okx.rig  # the fixture, shared with the chart tests

BTC_SYM, ETH_SYM = "BTC/USDT:USDT", "ETH/USDT:USDT"
LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
BTC_STOP = 65_600.0  # 5.0% below 69,060
ETH_STOP, ETH_OVERRUN = 1_983.41, 2_006.02  # the post-mortem's level and fill


def one_live_stop(rig: Rig, inst_id: str, side: str, contracts: str, trigger: str) -> str:
    [live] = rig.stops("live")
    assert (live["instId"], live["side"], live["sz"], live["slTriggerPx"]) == (
        inst_id,
        side,
        contracts,
        trigger,
    )
    assert live["reduceOnly"] == "true" and live["ordType"] == "conditional"
    return str(live["algoId"])


# (a) acknowledged, then order_failed -------------------------------------------------------


async def test_stop_acknowledged_then_failed_is_detected_replaced_and_live(rig: Rig) -> None:
    rig.fake.faults.stop_order_failed = 1

    res = await rig.open(BTC_SYM, LONG, 0.05, BTC_STOP)

    assert res.outcome is Outcome.PROTECTED, res.detail
    assert res.stop_attempts == 2 and "failCode 1000" in res.notes[0]
    assert res.detection_latency is not None and res.detection_latency < 2.0
    [failed] = rig.stops("order_failed")
    assert failed["failCode"] == "1000"
    one_live_stop(rig, BTC, "sell", "5", "65600")
    first, second = sorted(await rig.journal.stops_for(SCOPE, BTC_SYM), key=lambda r: r.id)
    assert (first.status, first.exchange_state, first.fail_code) == (
        StopStatus.FAILED,
        StopState.FAILED,
        "1000",
    )
    assert first.exchange_id == failed["algoId"] and first.client_id == failed["algoClOrdId"]
    assert (second.status, second.exchange_state) == (StopStatus.VERIFIED, StopState.LIVE)
    [incident] = await rig.journal.incidents(SCOPE)
    assert (incident.kind, incident.attribution) == ("stop_placement_failed", Attribution.EXECUTION)
    assert incident.resolved_at is not None
    # the audit the post-mortem had to do by hand: the exchange's own history shows it
    [ended] = await rig.okx.stop_history(BTC_SYM)
    assert (ended.state, ended.fail_code, ended.id) == (StopState.FAILED, "1000", failed["algoId"])
    assert (await rig.reconcile()).clean


async def test_stop_failing_after_its_read_back_is_caught_by_the_guardian(rig: Rig) -> None:
    rig.fake.faults.stop_order_failed, rig.fake.faults.fail_after = 1, 0.3

    res = await rig.open(BTC_SYM, LONG, 0.05, BTC_STOP)
    assert res.outcome is Outcome.PROTECTED and res.stop_attempts == 1  # it was live then
    await asyncio.sleep(0.35)
    assert rig.stops("live") == []

    report = await rig.reconcile()

    assert report.protected == 1 and not report.errors, report
    assert "placed verified stop at 65600.0" in report.actions[0]
    assert "failCode 1000" in report.actions[0]
    one_live_stop(rig, BTC, "sell", "5", "65600")
    [incident] = await rig.journal.incidents(SCOPE)
    assert (incident.kind, incident.attribution) == ("unprotected_position", Attribution.EXECUTION)
    assert incident.resolved_at is not None


# (b) the level passed: 51278, emergency close, attributed with its cost ---------------------


async def test_stop_refused_51278_when_the_level_is_passed_is_an_emergency_close(
    rig: Rig,
) -> None:
    rig.fake.faults.jump_before_stop = {ETH: ETH_OVERRUN}  # the market moves as the stop goes out

    res = await rig.open(ETH_SYM, SHORT, 0.5, ETH_STOP)

    assert res.outcome is Outcome.EMERGENCY_CLOSED, res.detail
    assert "stop level already passed" in res.detail
    assert rig.fake.position(ETH) == 0 and rig.stops() == []
    entry, close = rig.fake.filled_orders(ETH)
    assert (entry["side"], entry["avgPx"], close["side"], close["avgPx"]) == (
        "sell",
        "1950",
        "buy",
        "2006.02",
    )
    assert close["reduceOnly"] == "true" and close["sz"] == "5"
    [rec] = await rig.journal.stops_for(SCOPE, ETH_SYM)
    assert rec.status is StopStatus.WOULD_TRIGGER and "51278" in str(
        await stop_answer(rig.db, rec.id)
    )
    [incident] = await rig.journal.incidents(SCOPE)
    assert (incident.kind, incident.attribution) == ("emergency_close", Attribution.EXECUTION)
    assert incident.cost == pytest.approx((ETH_OVERRUN - ETH_STOP) * 0.5)  # 11.305
    intents = await rig.journal.intents(SCOPE)
    assert [i.kind for i in intents] == [IntentKind.EMERGENCY_CLOSE, IntentKind.ENTRY]


async def test_the_post_mortem_silent_stop_then_the_level_passed(rig: Rig) -> None:
    """Incident #2 end to end: the stop was acknowledged and even seen live, then failed
    silently; the price passed the level; the guardian finds it and closes, attributing the
    loss beyond the level to execution."""
    rig.fake.faults.stop_order_failed, rig.fake.faults.fail_after = 1, 0.2
    assert (await rig.open(ETH_SYM, SHORT, 0.5, ETH_STOP)).outcome is Outcome.PROTECTED
    await asyncio.sleep(0.25)
    rig.fake.set_price(ETH, ETH_OVERRUN)  # a failed stop does not fire
    assert rig.fake.position(ETH) == Decimal("-5")

    report = await rig.reconcile()

    assert report.protected == 0 and "emergency close" in report.actions[0], report
    assert rig.fake.position(ETH) == 0
    assert rig.fake.filled_orders(ETH)[-1]["avgPx"] == "2006.02"
    [emergency] = [i for i in await rig.journal.incidents(SCOPE) if i.kind == "emergency_close"]
    assert emergency.attribution is Attribution.EXECUTION
    assert emergency.cost == pytest.approx(11.305)
    assert "failCode 1000" in emergency.detail
    [failed] = await rig.okx.stop_history(ETH_SYM)
    assert (failed.state, failed.fail_code) == (StopState.FAILED, "1000")


async def stop_answer(db: Database, stop_id: int) -> Any:
    async with db.read() as conn:
        cur = await conn.execute("SELECT api_answer FROM stop_placement WHERE id = ?", (stop_id,))
        row = await cur.fetchone()
        return row["api_answer"] if row else None


# (c) the entry fills, its answer is lost ---------------------------------------------------


async def test_entry_answer_lost_is_resolved_by_client_id_never_resent(rig: Rig) -> None:
    rig.fake.faults.lost_responses = 1  # executed, then the connection drops

    res = await rig.open(BTC_SYM, LONG, 0.05, BTC_STOP)

    assert res.outcome is Outcome.PROTECTED, res.detail
    [post] = rig.fake.calls("POST", "trade/order")  # exactly one order was ever sent
    [order] = rig.fake.filled_orders()
    [intent] = await rig.journal.intents(SCOPE)
    assert post.body["clOrdId"] == order["clOrdId"] == intent.client_id
    assert (intent.status, intent.filled) == (IntentStatus.FILLED, 0.05)
    lookups = [c.query for c in rig.fake.calls("GET", "trade/order")]
    assert {"instId": BTC, "clOrdId": intent.client_id} in lookups
    assert rig.fake.position(BTC) == Decimal(5)
    one_live_stop(rig, BTC, "sell", "5", "65600")

    again = await rig.open(BTC_SYM, LONG, 0.05, BTC_STOP)  # I3: the exchange is asked first
    assert again.outcome is Outcome.REFUSED and len(rig.fake.calls("POST", "trade/order")) == 1


# (d) duplicate client id -------------------------------------------------------------------


async def test_duplicate_client_id_on_the_entry_is_resolved_by_lookup(rig: Rig) -> None:
    rig.fake.faults.duplicate_after_apply = 1
    rig.fake.faults.duplicate_paths = ("trade/order",)

    res = await rig.open(BTC_SYM, LONG, 0.05, BTC_STOP)

    assert res.outcome is Outcome.PROTECTED, res.detail
    assert len(rig.fake.calls("POST", "trade/order")) == 1 and len(rig.fake.filled_orders()) == 1
    [intent] = await rig.journal.intents(SCOPE)
    assert intent.status is IntentStatus.FILLED
    one_live_stop(rig, BTC, "sell", "5", "65600")


async def test_duplicate_client_id_on_the_stop_is_resolved_by_lookup(rig: Rig) -> None:
    rig.fake.faults.duplicate_after_apply = 1
    rig.fake.faults.duplicate_paths = ("trade/order-algo",)

    res = await rig.open(BTC_SYM, LONG, 0.05, BTC_STOP)

    assert res.outcome is Outcome.PROTECTED and res.stop_attempts == 1, res.detail
    [post] = rig.fake.calls("POST", "trade/order-algo")
    algo_id = one_live_stop(rig, BTC, "sell", "5", "65600")
    [rec] = await rig.journal.stops_for(SCOPE, BTC_SYM)
    assert (rec.status, rec.exchange_id, rec.client_id) == (
        StopStatus.VERIFIED,
        algo_id,
        post.body["algoClOrdId"],
    )
    assert {"instId": BTC, "algoClOrdId": rec.client_id} in [
        c.query for c in rig.fake.calls("GET", "trade/order-algo")
    ]


# (e) rate limiting -------------------------------------------------------------------------


async def test_rate_limited_reads_are_retried_and_the_trade_goes_through(rig: Rig) -> None:
    await rig.okx.markets()
    rig.fake.faults.rate_limited = 2  # the next two requests, whatever they are

    res = await rig.open(BTC_SYM, LONG, 0.05, BTC_STOP)

    assert res.outcome is Outcome.PROTECTED, res.detail
    assert rig.fake.faults.rate_limited == 0
    assert len(rig.fake.calls("POST", "trade/order")) == 1
    one_live_stop(rig, BTC, "sell", "5", "65600")


async def test_exchange_down_for_a_while_then_back(rig: Rig) -> None:
    await rig.okx.markets()
    rig.fake.faults.server_errors = 2

    res = await rig.open(BTC_SYM, LONG, 0.05, BTC_STOP)

    assert res.outcome is Outcome.PROTECTED, res.detail
    assert len(rig.fake.calls("POST", "trade/order")) == 1


async def test_a_rate_limited_entry_is_not_sent_again_on_a_guess(rig: Rig) -> None:
    # the reads before the entry pass; the entry itself (POST trade/order) is refused with 429
    rig.fake.faults.rate_limited, rig.fake.faults.rate_limit_paths = 1, ("trade/order",)

    res = await rig.open(BTC_SYM, LONG, 0.05, BTC_STOP)

    assert res.outcome is Outcome.UNRESOLVED, res.detail
    assert len(rig.fake.calls("POST", "trade/order")) == 1  # refused once, never resent
    assert rig.fake.orders == [] and rig.fake.position(BTC) == 0 and rig.stops() == []
    [intent] = await rig.journal.intents(SCOPE)
    assert intent.status is IntentStatus.UNKNOWN  # looked up by client id: not there
    assert (await rig.reconcile()).clean


async def test_cut_off_answers_are_read_again_or_resolved_never_guessed(rig: Rig) -> None:
    await rig.okx.markets()
    rig.fake.faults.malformed, rig.fake.faults.malformed_paths = 1, ("positions",)

    res = await rig.open(BTC_SYM, LONG, 0.05, BTC_STOP)  # the positions read is retried

    assert res.outcome is Outcome.PROTECTED, res.detail
    assert len(rig.fake.calls("GET", "account/positions")) == 2
    rig.fake.faults.malformed, rig.fake.faults.malformed_paths = 1, ("trade/order",)

    res = await rig.open(ETH_SYM, SHORT, 0.5, ETH_STOP)  # the entry's answer is cut off

    assert res.outcome is Outcome.PROTECTED, res.detail
    assert len(rig.fake.calls("POST", "trade/order")) == 2  # one per open, none resent
    assert rig.fake.position(ETH) == Decimal("-5") and len(rig.stops("live")) == 2


# (f) a stop canceled behind the agent's back ------------------------------------------------


async def test_stop_canceled_outside_is_restored_by_the_guardian(rig: Rig) -> None:
    assert (await rig.open(BTC_SYM, LONG, 0.05, BTC_STOP)).outcome is Outcome.PROTECTED
    [original] = rig.stops("live")
    rig.fake.cancel_algo_outside(original["algoId"])

    report = await rig.reconcile()

    assert report.protected == 1 and "canceled outside Warden" in report.actions[0], report
    replaced = one_live_stop(rig, BTC, "sell", "5", "65600")
    assert replaced != original["algoId"]
    [incident] = await rig.journal.incidents(SCOPE)
    assert (incident.kind, incident.attribution) == ("unprotected_position", Attribution.EXTERNAL)
    assert incident.resolved_at is not None
    assert (await rig.reconcile()).clean


async def test_a_position_opened_outside_gets_a_stop(rig: Rig) -> None:
    rig.fake.open_outside(ETH, "sell", "3")  # 0.3 ETH short opened in OKX's app

    report = await rig.reconcile()

    assert report.protected == 1, report
    one_live_stop(rig, ETH, "buy", "3", "2145")  # 10% above 1,950
    [incident] = await rig.journal.incidents(SCOPE)
    assert incident.attribution is Attribution.EXTERNAL


async def test_a_fired_stop_is_recorded_as_the_exit_at_its_fill_price(rig: Rig) -> None:
    assert (await rig.open(BTC_SYM, LONG, 0.05, BTC_STOP)).outcome is Outcome.PROTECTED
    rig.fake.set_price(BTC, 65_500.0)  # gaps through 65,600: the stop fills at 65,500
    assert rig.fake.position(BTC) == 0

    report = await rig.reconcile()

    assert report.actions == [
        f"{BTC_SYM}: stop {rig.stops('effective')[0]['algoId']} fired, exit recorded at 65500.0"
    ], report
    [exit_] = await rig.journal.exits(SCOPE)
    assert (exit_.exit_price, exit_.entry_price, exit_.reason) == (
        65_500.0,
        69_060.0,
        "stop_loss",
    )
    assert exit_.fee == pytest.approx(0.05 * 65_500 * 0.0005)
    assert (await rig.reconcile()).clean


async def test_close_cancels_the_stop_and_closes_reduce_only(rig: Rig) -> None:
    assert (await rig.open(ETH_SYM, SHORT, 0.5, ETH_STOP)).outcome is Outcome.PROTECTED
    rig.fake.set_price(ETH, 1_900.0)

    async with rig.lease("test close") as lease:
        [res] = await rig.executor.close(lease, ETH_SYM, "signal", "test")

    assert res.outcome is Outcome.CLOSED and res.fill_price == 1_900.0, res.detail
    assert rig.fake.position(ETH) == 0 and rig.stops("live") == []
    assert rig.stops("canceled") and rig.fake.filled_orders(ETH)[-1]["reduceOnly"] == "true"
    [canceled] = await rig.okx.stop_history(ETH_SYM)
    assert canceled.state is StopState.CANCELED
    assert await rig.okx.open_orders() == [] and await rig.okx.positions() == []


# (g) OKX's own "timed out" (51149 / 51054, HTTP 500): applied, outcome unknown --------------


@pytest.mark.parametrize("code", ["51149", "51054", "50026"])
async def test_entry_applied_then_timed_out_is_resolved_by_client_id(rig: Rig, code: str) -> None:
    """OKX documents 51149 "Order timed out" and 51054 "Request timed out" (both HTTP 500) as
    an unknown outcome; 50026 "System error" is any other 5xx with a JSON body. The order went
    through: `warden open` must find it by clOrdId and go on exactly as after a clean fill."""
    await rig.okx.markets()
    rig.fake.faults.timeout_after_apply, rig.fake.faults.timeout_code = 1, code
    rig.fake.faults.timeout_paths = ("trade/order",)

    res = await rig.open(BTC_SYM, LONG, 0.05, BTC_STOP)

    assert res.outcome is Outcome.PROTECTED, res.detail
    assert rig.fake.faults.timeout_after_apply == 0  # the fault did fire
    [post] = rig.fake.calls("POST", "trade/order")  # one order, never resent
    [order] = rig.fake.filled_orders()
    [intent] = await rig.journal.intents(SCOPE)
    assert post.body["clOrdId"] == order["clOrdId"] == intent.client_id
    assert (intent.status, intent.filled) == (IntentStatus.FILLED, 0.05)
    lookups = [c.query for c in rig.fake.calls("GET", "trade/order")]
    assert {"instId": BTC, "clOrdId": intent.client_id} in lookups
    algo_id = one_live_stop(rig, BTC, "sell", "5", "65600")
    [rec] = await rig.journal.stops_for(SCOPE, BTC_SYM)
    assert (rec.status, rec.exchange_id) == (StopStatus.VERIFIED, algo_id)  # read back live
    assert (await rig.reconcile()).clean


@pytest.mark.parametrize("code", ["51149", "51054"])
async def test_stop_applied_then_timed_out_is_resolved_by_algo_client_id(
    rig: Rig, code: str
) -> None:
    await rig.okx.markets()
    rig.fake.faults.timeout_after_apply, rig.fake.faults.timeout_code = 1, code
    rig.fake.faults.timeout_paths = ("trade/order-algo",)

    res = await rig.open(BTC_SYM, LONG, 0.05, BTC_STOP)

    assert res.outcome is Outcome.PROTECTED and res.stop_attempts == 1, res.detail
    [post] = rig.fake.calls("POST", "trade/order-algo")  # never placed twice
    algo_id = one_live_stop(rig, BTC, "sell", "5", "65600")
    [rec] = await rig.journal.stops_for(SCOPE, BTC_SYM)
    assert (rec.status, rec.exchange_id, rec.client_id) == (
        StopStatus.VERIFIED,
        algo_id,
        post.body["algoClOrdId"],
    )
    assert {"instId": BTC, "algoClOrdId": rec.client_id} in [
        c.query for c in rig.fake.calls("GET", "trade/order-algo")
    ]
    assert (await rig.reconcile()).clean


# (h) stops the trader set in OKX's app, paused stops ------------------------------------------


async def test_stops_set_in_okx_app_are_read_and_the_guardian_runs(rig: Rig) -> None:
    """A whole-position stop (closeFraction "1", empty sz, empty algoClOrdId) and an oco with a
    foreign client id: open_stops, get_stop and stop_history read them, the guardian runs."""
    rig.fake.open_outside(BTC, "buy", "5")
    rig.fake.open_outside(ETH, "sell", "3")
    whole = rig.fake.place_outside_stop(BTC, "sell", "65000")
    oco = rig.fake.place_outside_stop(
        ETH, "buy", "2100", sz="3", tp_trigger="1800", ord_type="oco", algo_cl_ord_id="app77"
    )

    stops = {s.id: s for s in await rig.okx.open_stops()}

    assert set(stops) == {whole, oco}
    w, o = stops[whole], stops[oco]
    assert (w.whole_position, w.size, w.reduce_only, w.trigger_price) == (True, 0.0, True, 65000)
    assert (w.client_id, w.placed_by_warden) == (None, False)
    assert (o.whole_position, o.size, o.trigger_price, o.client_id) == (False, 0.3, 2100, "app77")
    assert (await rig.okx.get_stop(BTC_SYM, stop_id=whole)) == w
    assert (await rig.okx.get_stop(ETH_SYM, client_id="app77")) == o

    report = await rig.reconcile()  # the guardian's rules for these are its own: no crash

    assert not report.errors, report
    rig.fake.set_price(BTC, 64_900.0)  # the app's stop fires and closes the whole position
    assert rig.fake.position(BTC) == 0
    rig.fake.set_price(ETH, 1_790.0)  # the oco's take-profit leg closes the short
    assert rig.fake.position(ETH) == 0
    ended = {s.id: s for s in await rig.okx.stop_history()}
    assert ended[whole].state is StopState.TRIGGERED and ended[whole].whole_position
    assert ended[oco].state is StopState.CANCELED  # its stop-loss leg never fired
    assert not (await rig.reconcile()).errors


async def test_a_paused_stop_is_never_protection(rig: Rig) -> None:
    assert (await rig.open(BTC_SYM, LONG, 0.05, BTC_STOP)).outcome is Outcome.PROTECTED
    [original] = rig.stops("live")
    rig.fake.set_algo_state(original["algoId"], "pause")  # paused in OKX's app

    seen = await rig.okx.get_stop(BTC_SYM, stop_id=original["algoId"])
    assert seen is not None and seen.state is StopState.PAUSED
    assert await rig.okx.open_stops() == []
    rig.fake.set_price(BTC, 65_500.0)  # a paused algo does not fire
    assert rig.fake.position(BTC) == Decimal(5)

    report = await rig.reconcile()

    # the level is passed and the only stop is paused: closed, never taken as protected
    assert not report.errors and report.protected == 0, report
    assert rig.fake.position(BTC) == 0


# (i) leverage -----------------------------------------------------------------------------------


async def test_leverage_is_sent_per_instrument_with_the_margin_mode_before_entries(
    rig: Rig,
) -> None:
    assert (await rig.open(BTC_SYM, LONG, 0.05, BTC_STOP)).outcome is Outcome.PROTECTED
    assert (await rig.open(ETH_SYM, SHORT, 0.5, ETH_STOP)).outcome is Outcome.PROTECTED

    levers = [c.body for c in rig.fake.calls("POST", "account/set-leverage")]
    assert levers == [
        {"lever": 5, "mgnMode": "cross", "instId": BTC},
        {"lever": 5, "mgnMode": "cross", "instId": ETH},
    ]
    order_of = [
        (r.method, r.path.rsplit("/", 1)[1]) for r in rig.fake.requests if r.method == "POST"
    ]
    assert order_of.index(("POST", "set-leverage")) < order_of.index(("POST", "order"))
    assert (await rig.okx.leverage_setting(ETH_SYM)).leverage == 5
