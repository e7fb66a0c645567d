"""The Hyperliquid adapter's stops and leverage, driving the REAL ccxt client against the fake
Hyperliquid server (as tests/test_hyperliquid_adapter.py): stops fire on the mark price, a stop's
limit lies stop-slippage beyond its trigger, a fired stop resting unfilled is never live,
position TP/SL and sized UI stops are read, leverage and margin mode are set once per coin.
Every test that builds the adapter also proves, at teardown, that no builder-fee approval or
referrer was ever sent.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests import rig_hyperliquid
from tests.fake_hyperliquid import FakeHyperliquid
from tests.rig_hyperliquid import (
    BTC,
    BUY,
    ETH,
    SELL,
    WALLET,
    Venue,
    long_btc,
    start_venue,
    stop_venue,
)
from trading.adapters.hyperliquid import HyperliquidExchange
from trading.adapters.hyperliquid_parse import Malformed, parse_stop
from trading.errors import NotSent, Rejected
from trading.models import LeverageSetting, StopState

venue = rig_hyperliquid.venue  # the fixture, from tests/rig_hyperliquid.py


async def test_the_ticker_is_the_mark_price_not_the_mid(venue: Venue) -> None:
    """Stops trigger on the mark (Hyperliquid docs, "My TP/SL did not execute correctly"):
    the price the domain checks a stop against is the mark, not the book's mid."""
    venue.fake.set_mark("BTC", 69000.0, mid=69100.0)
    assert (await venue.ex.ticker(BTC)).last == 69000.0


async def test_a_stop_fires_on_the_mark_even_while_the_mid_is_above_it(venue: Venue) -> None:
    await long_btc(venue)
    ack = await venue.ex.place_stop(BTC, SELL, 0.001, 65600.0, "wd0a1b2cs2")
    venue.fake.set_mark("BTC", 65500.0, mid=65700.0)
    stop = await venue.ex.get_stop(BTC, stop_id=ack.id)
    assert stop is not None and stop.state is StopState.TRIGGERED
    assert await venue.ex.positions() == []
    *_, closing = await venue.ex.fills(BTC)
    assert closing.price == 65700.0 and closing.stop_id == ack.id  # filled on the book


@pytest.mark.parametrize(("percent", "factor"), [(None, 0.90), (15.0, 0.85)])
async def test_a_stops_limit_is_stop_slippage_beyond_its_trigger(
    percent: float | None, factor: float
) -> None:
    """The venue's market TP/SL allow 10% of slippage; a sell stop's limit sits
    ``stop_slippage_percent`` (default 10) below its trigger, a buy stop's above."""
    settings: dict[str, Any] = {} if percent is None else {"stop_slippage_percent": percent}
    v = await start_venue(FakeHyperliquid(WALLET), **settings)
    try:
        await long_btc(v)
        v.fake.open_position("ETH", -0.3, 1950.0)
        await v.ex.place_stop(BTC, SELL, 0.001, 65600.0, "wd0a1b2cs2")
        await v.ex.place_stop(ETH, BUY, 0.3, 2100.0, "wd0a1b2cs3")
        sell, buy = v.fake.order_actions()[-2:]
        assert float(sell["p"]) == pytest.approx(65600.0 * factor, abs=1.0)
        assert float(buy["p"]) == pytest.approx(2100.0 * (2 - factor), abs=0.1)
        assert float(sell["p"]) < 65600.0 and float(buy["p"]) > 2100.0
        assert len(v.fake.live_stops()) == 2
    finally:
        await stop_venue(v)


async def test_the_venue_refuses_a_stop_limit_on_the_wrong_side_of_its_trigger(
    venue: Venue,
) -> None:
    """The control for the next test: a reduce-only sell stop whose limit is above its
    trigger is answered "Invalid TP/SL price" though the level is nowhere near passed."""
    await long_btc(venue)
    params = {"stopLossPrice": 65600.0, "reduceOnly": True}
    with pytest.raises(Exception, match="Invalid TP/SL price"):
        await venue.ex.client.create_order(BTC, "limit", "sell", 0.001, 66000.0, params)
    assert venue.fake.live_stops() == []


async def test_a_stop_whose_limit_would_not_lie_beyond_its_trigger_is_never_sent() -> None:
    # a slippage so small that the limit rounds onto the trigger (5 significant figures)
    v = await start_venue(FakeHyperliquid(WALLET), stop_slippage_percent=0.0001)
    try:
        await long_btc(v)
        sent = len(v.fake.actions)
        with pytest.raises(NotSent, match=r"not sent.*wrong side of its trigger"):
            await v.ex.place_stop(BTC, SELL, 0.001, 65600.0, "wd0a1b2cs2")
        assert len(v.fake.actions) == sent
    finally:
        await stop_venue(v)


@pytest.mark.parametrize("bad", [0.0, -1.0, 100.0, float("nan")])
def test_a_stop_slippage_outside_0_100_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="stop_slippage_percent"):
        HyperliquidExchange("hl", "main", None, None, stop_slippage_percent=bad)


@pytest.mark.parametrize("reads_open", [False, True])
async def test_a_stop_that_fired_but_rests_unfilled_is_never_live(
    venue: Venue, reads_open: bool
) -> None:
    """The mark gaps from 69,060 to 58,000, through the stop (65,600) AND its limit (59,040):
    the stop fires, its limit rests unfilled, the long stays open. Whether the venue then
    reports the resting limit as ``triggered`` or as ``open`` again, no read says LIVE."""
    venue.fake.triggered_reads_open = reads_open
    await long_btc(venue)
    ack = await venue.ex.place_stop(BTC, SELL, 0.001, 65600.0, "wd0a1b2cs2")
    venue.fake.set_mark("BTC", 58000.0)

    [position] = await venue.ex.positions(BTC)
    assert position.size == 0.001  # still open
    assert await venue.ex.open_stops(BTC) == []
    for found in (
        await venue.ex.get_stop(BTC, stop_id=ack.id),
        await venue.ex.get_stop(BTC, client_id="wd0a1b2cs2"),
    ):
        assert found is not None and found.state is StopState.TRIGGERED
    [ended] = await venue.ex.stop_history(BTC)
    assert (ended.id, ended.state, ended.client_id) == (ack.id, StopState.TRIGGERED, "wd0a1b2cs2")
    [resting] = await venue.ex.open_orders(BTC)  # the stop's limit, on the book
    assert resting.id == ack.id and resting.reduce_only

    venue.fake.set_mark("BTC", 59100.0)  # the book comes back above the limit: it fills
    assert await venue.ex.positions() == []
    done = await venue.ex.get_stop(BTC, stop_id=ack.id)
    assert done is not None and done.state is StopState.TRIGGERED


async def test_a_fired_stop_canceled_while_resting_reads_canceled(venue: Venue) -> None:
    await long_btc(venue)
    ack = await venue.ex.place_stop(BTC, SELL, 0.001, 65600.0, "wd0a1b2cs2")
    venue.fake.set_mark("BTC", 58000.0)
    assert ack.id is not None
    await venue.ex.cancel_order(BTC, ack.id)
    stop = await venue.ex.get_stop(BTC, stop_id=ack.id)
    assert stop is not None and stop.state is StopState.CANCELED
    [ended] = await venue.ex.stop_history(BTC)
    assert ended.state is StopState.CANCELED
    assert len(await venue.ex.positions()) == 1


async def test_a_position_tpsl_and_a_sized_ui_stop_are_read(venue: Venue) -> None:
    """A position TP/SL (isPositionTpsl, size "0.0") closes the whole position; a sized
    trigger order from the UI has no cloid. Both parse, neither is Warden's."""
    await long_btc(venue, 0.002)
    venue.fake.open_position("ETH", -0.3, 1950.0)
    whole = venue.fake.add_position_tpsl("BTC", 65000.0)
    foreign = "0x" + "ab" * 16
    sized = venue.fake.add_trigger("ETH", True, 0.1, 2100.0, 2310.0, cloid=foreign)
    mine = (await venue.ex.place_stop(BTC, SELL, 0.002, 65600.0, "wd0a1b2cs2")).id
    assert mine is not None

    stops = {s.id: s for s in await venue.ex.open_stops()}
    assert set(stops) == {str(whole.oid), str(sized.oid), mine}
    w = stops[str(whole.oid)]
    assert (w.whole_position, w.size, w.reduce_only, w.client_id) == (True, 0.0, True, None)
    assert (w.side, w.trigger_price, w.state, w.placed_by_warden) == (
        SELL,
        65000.0,
        StopState.LIVE,
        False,
    )
    z = stops[str(sized.oid)]
    assert (z.whole_position, z.size, z.client_id, z.placed_by_warden) == (
        False,
        0.1,
        foreign,
        False,
    )
    assert stops[mine].placed_by_warden and not stops[mine].whole_position
    again = await venue.ex.get_stop(ETH, stop_id=str(sized.oid))
    assert again == z
    got = await venue.ex.get_stop(BTC, stop_id=str(whole.oid))
    assert got is not None and got.whole_position and got.state is StopState.LIVE

    venue.fake.set_mark("BTC", 64900.0)  # both BTC stops fire; the position closes
    assert [p.symbol for p in await venue.ex.positions()] == [ETH]
    history = {s.id: s for s in await venue.ex.stop_history()}
    assert history[str(whole.oid)].whole_position
    assert {history[str(whole.oid)].state, history[mine].state} <= {
        StopState.TRIGGERED,
        StopState.CANCELED,
    }


async def test_leverage_and_margin_mode_are_set_once_per_coin_before_the_first_entry() -> None:
    v = await start_venue(FakeHyperliquid(WALLET), leverage=5, margin_mode="isolated")
    try:
        await long_btc(v)
        await long_btc(v, cid="wd0a1b2ce2")
        await v.ex.place_market_order(BTC, SELL, 0.002, "wd0a1b2cc3", reduce_only=True)
        await v.ex.place_market_order(ETH, BUY, 0.01, "wd0a1b2ce4")
        levers = [a for a in v.fake.actions if a["type"] == "updateLeverage"]
        # ccxt's setMarginMode: one action carrying both (its recorded request fixture)
        assert levers == [
            {"type": "updateLeverage", "asset": 0, "isCross": False, "leverage": 5},
            {"type": "updateLeverage", "asset": 1, "isCross": False, "leverage": 5},
        ]
        lever, order = "updateLeverage", "order"
        assert v.fake.action_types == [lever, order, order, order, lever, order]
        assert await v.ex.leverage_setting(ETH) == LeverageSetting(ETH, 5.0, "isolated")
        [eth] = await v.ex.positions(ETH)
        assert eth.leverage == 5.0
    finally:
        await stop_venue(v)


async def test_leverage_setting_reads_the_coin_without_a_position(venue: Venue) -> None:
    assert await venue.ex.leverage_setting(BTC) == LeverageSetting(BTC, 20.0, "cross")
    assert venue.fake.info_types[-1] == "activeAssetData"
    assert not venue.fake.actions  # read only


async def test_an_entry_whose_leverage_cannot_be_set_is_refused_unsent() -> None:
    v = await start_venue(FakeHyperliquid(WALLET), leverage=3)
    v.fake.leverage_error = "Cannot switch leverage type with open position."
    try:
        with pytest.raises(Rejected, match=r"entry not sent, leverage 3 .* could not be set"):
            await v.ex.place_market_order(BTC, BUY, 0.001, "wd0a1b2ce1")
        assert v.fake.order_actions() == [] and await v.ex.positions() == []
        v.fake.leverage_error = None  # not remembered as set: the next entry tries again
        await long_btc(v)
        assert v.fake.action_types == ["updateLeverage", "updateLeverage", "order"]
        assert v.fake.leverage_set == {"BTC": ("cross", 3)}
    finally:
        await stop_venue(v)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"margin_mode": "portfolio"}, "margin_mode"),
        ({"leverage": 0}, "leverage"),
        ({"leverage": True}, "leverage"),
    ],
)
def test_bad_leverage_settings_are_refused(settings: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HyperliquidExchange("hl", "main", None, None, **settings)


@pytest.mark.parametrize(
    ("flag", "size", "whole", "expected_size"),
    [
        (True, "0.0", True, 0.0),  # set from the position: closes all of it
        (True, "0.05", False, 0.05),  # given a size in the UI: fixed-size
        ("true", "0.0", None, None),  # a junk flag never claims to cover everything
        (False, "0.0", None, None),
    ],
)
def test_only_a_zero_size_position_tpsl_covers_the_whole_position(
    flag: object, size: str, whole: bool | None, expected_size: float | None
) -> None:
    record = {
        "coin": "BTC",
        "side": "A",
        "limitPx": "58500.0",
        "sz": size,
        "origSz": size,
        "oid": 7,
        "isTrigger": True,
        "triggerPx": "65000.0",
        "orderType": "Stop Market",
        "isPositionTpsl": flag,
        "cloid": None,
    }
    if whole is None:
        with pytest.raises(Malformed, match="not above zero"):
            parse_stop(record, "open", None, BTC)
        return
    stop = parse_stop(record, "open", None, BTC)
    assert (stop.whole_position, stop.size, stop.reduce_only) == (whole, expected_size, whole)


async def test_an_entry_whose_leverage_step_cannot_even_read_the_markets_is_refused() -> None:
    v = await start_venue(FakeHyperliquid(WALLET), leverage=3)
    v.fake.rate_limit(1, "/info")  # the markets, read before updateLeverage
    try:
        with pytest.raises(Rejected, match="entry not sent, leverage 3"):
            await v.ex.place_market_order(BTC, BUY, 0.001, "wd0a1b2ce1")
        assert v.fake.actions == []
    finally:
        await stop_venue(v)
