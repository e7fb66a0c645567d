"""The Hyperliquid adapter, driving the REAL ccxt client against the fake Hyperliquid server.

Pure parts (cloid mapping, status mapping) are tested as functions; everything else goes
through ccxt's own request building, signing and error handling, over HTTP, to
``tests.fake_hyperliquid``. Every test that builds the adapter also proves, at teardown, that
no builder-fee approval or referrer was ever sent, and no order carried a builder. Stops on the
mark price, stop limits, fired stops resting unfilled, TP/SL and leverage are in
tests/test_hyperliquid_stops_leverage.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from tests import rig_hyperliquid
from tests.conftest import ROOT, child_env
from tests.fake_hyperliquid import FakeHyperliquid
from tests.rig_hyperliquid import (
    BTC,
    BUY,
    ETH,
    GRANTS,
    PRIVATE_KEY,
    SELL,
    SLIPPAGE,
    WALLET,
    Venue,
    assert_nothing_granted,
    long_btc,
    start_venue,
    stop_venue,
)
from trading.adapters.hyperliquid import (
    GRANT_OPTIONS,
    HyperliquidExchange,
    MissingCredentials,
    build_hyperliquid,
)
from trading.adapters.hyperliquid_parse import (
    exchange_reason,
    from_cloid,
    latest_by_oid,
    order_status,
    parse_fill,
    stop_state,
    to_cloid,
)
from trading.errors import (
    AuthError,
    NetworkError,
    NotSent,
    RateLimited,
    Rejected,
    StopWouldTrigger,
    UnclearStopRefusal,
    UnknownOutcome,
)
from trading.models import OrderStatus, PositionSide, StopState
from trading.port import ExchangePort

venue = rig_hyperliquid.venue  # the fixture, from tests/rig_hyperliquid.py

CLOID = re.compile(r"^0x[0-9a-f]{32}$")


@pytest.mark.parametrize(
    "client_id", ["wd0a1b2ce1", "wdffffffs9", "wd000000x0", "wdabcdefc281474976710655"]
)
def test_warden_ids_map_to_cloids_and_back(client_id: str) -> None:
    cloid = to_cloid(client_id)
    assert CLOID.match(cloid)
    assert to_cloid(client_id) == cloid  # deterministic: a restart sends the same cloid
    assert from_cloid(cloid) == client_id
    assert from_cloid(cloid.upper().replace("0X", "0x")) == client_id


def test_cloids_differ_per_client_id() -> None:
    ids = [f"wd{inst}{k}{n}" for inst in ("0a1b2c", "0a1b2d") for k in "ecxs" for n in range(300)]
    assert len({to_cloid(i) for i in ids}) == len(ids)


@pytest.mark.parametrize(
    "foreign",
    [
        None,
        "",
        "0x" + "00" * 16,
        "0x" + "ab" * 16,
        "0x1234",
        "not hex at all",
        to_cloid("someone-else:42"),  # hashed, not packed
        to_cloid("wd0a1b2ce1")[:-2] + "00",  # checksum broken
        to_cloid("wd0a1b2ce01"),  # a leading zero is not a Warden id: hashed
    ],
)
def test_cloids_from_elsewhere_are_never_taken_for_warden_ids(foreign: str | None) -> None:
    assert from_cloid(foreign) is None


def test_ids_that_are_not_wardens_still_get_a_deterministic_cloid() -> None:
    assert CLOID.match(to_cloid("manual-1")) and to_cloid("manual-1") == to_cloid("manual-1")
    assert to_cloid("manual-1") != to_cloid("manual-2")


# -- statuses --------------------------------------------------------------------------------

STOP_STATES = {
    "open": (StopState.LIVE, None),
    "triggered": (StopState.TRIGGERED, None),
    "filled": (StopState.TRIGGERED, None),
    "canceled": (StopState.CANCELED, None),
    "marginCanceled": (StopState.CANCELED, None),
    "reduceOnlyCanceled": (StopState.CANCELED, None),
    "siblingFilledCanceled": (StopState.CANCELED, None),
    "selfTradeCanceled": (StopState.CANCELED, None),
    "liquidatedCanceled": (StopState.CANCELED, None),
    "scheduledCancel": (StopState.CANCELED, None),
    "rejected": (StopState.FAILED, "rejected"),
    "badTriggerPxRejected": (StopState.FAILED, "badTriggerPxRejected"),
    "perpMarginRejected": (StopState.FAILED, "perpMarginRejected"),
    "reduceOnlyRejected": (StopState.FAILED, "reduceOnlyRejected"),
}


@pytest.mark.parametrize(("status", "expected"), STOP_STATES.items())
def test_every_hyperliquid_status_maps_to_a_stop_state(
    status: str, expected: tuple[StopState, str | None]
) -> None:
    assert stop_state(status) == expected


def test_an_unknown_status_is_never_taken_for_live() -> None:
    state, code = stop_state("somethingNew")
    assert state is StopState.FAILED and code == "unknown status somethingNew"


@pytest.mark.parametrize(
    ("status", "filled", "expected"),
    [
        ("filled", 0.0, OrderStatus.FILLED),
        ("open", 0.0, OrderStatus.OPEN),
        ("open", 0.5, OrderStatus.PARTIALLY_FILLED),
        ("triggered", 0.0, OrderStatus.OPEN),
        ("canceled", 0.0, OrderStatus.CANCELED),
        ("marginCanceled", 0.4, OrderStatus.PARTIALLY_FILLED),
        ("rejected", 0.0, OrderStatus.REJECTED),
        ("iocCancelRejected", 0.0, OrderStatus.REJECTED),
        ("somethingNew", 0.0, OrderStatus.OPEN),  # not settled: resolved later, never guessed
    ],
)
def test_order_statuses(status: str, filled: float, expected: OrderStatus) -> None:
    assert order_status(status, filled) is expected


def test_history_keeps_each_orders_latest_status() -> None:
    order = {"oid": 7, "coin": "BTC"}
    entries = [
        {"order": order, "status": "open", "statusTimestamp": 5},
        {"order": order, "status": "rejected", "statusTimestamp": 5},
        {"order": {"oid": 8}, "status": "canceled", "statusTimestamp": 9},
        {"order": {"oid": 8}, "status": "open", "statusTimestamp": 3},
    ]
    assert sorted(e["status"] for e in latest_by_oid(entries)) == ["canceled", "rejected"]


def test_a_fill_counts_the_builder_fee_and_takes_ids_from_its_order() -> None:
    # the shape of ccxt's recorded fixture: string ids, a builderFee, no cloid on the fill
    fill: dict[str, object] = {"coin": "HYPE", "px": "33.209", "sz": "0.73", "side": "A"}
    fill |= {"time": "1770458548926"}
    fill |= {"dir": "Close Long", "oid": "314848230306", "fee": "0.012896"}
    fill |= {"builderFee": "0.002424", "feeToken": "USDC", "twapId": None}
    stop = {"oid": 314848230306, "isTrigger": True, "cloid": to_cloid("wd0a1b2cs7")}
    parsed = parse_fill(fill, "HYPE/USDC:USDC", {"314848230306": stop})
    assert parsed.fee == pytest.approx(0.01532) and parsed.reduce_only
    assert (parsed.side, parsed.ts, parsed.order_id) == (SELL, 1770458548.926, "314848230306")
    assert (parsed.client_id, parsed.stop_id) == ("wd0a1b2cs7", "314848230306")
    assert parse_fill(fill, "HYPE/USDC:USDC", {}).client_id is None


def test_the_exchanges_reason_is_read_out_of_ccxts_error_text() -> None:
    body = '{"status":"ok","response":{"type":"order","data":{"statuses":[{"error":"X y."}]}}}'
    assert exchange_reason("hyperliquid " + body) == "X y."
    assert exchange_reason('hyperliquid {"status":"err","response":"Bad"}') == "Bad"
    assert (
        exchange_reason("hyperliquid POST http://x/exchange")
        == "hyperliquid POST http://x/exchange"
    )


@pytest.mark.slow
def test_importing_the_adapter_does_not_import_ccxt() -> None:
    code = "import sys, trading.adapters.hyperliquid; sys.exit('ccxt' in sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=child_env(), check=True)


def secrets_of(wallet: str | None, key: str | None) -> Callable[[str], str | None]:
    return {"HYPERLIQUID_WALLET_ADDRESS": wallet, "HYPERLIQUID_PRIVATE_KEY": key}.get


def build(url: str | None, wallet: str | None, key: str | None, **kw: Any) -> HyperliquidExchange:
    return build_hyperliquid(
        "hl",
        account="main",
        sandbox=kw.pop("sandbox", False),
        api_url=url,
        slippage_percent=SLIPPAGE,
        secrets=secrets_of(wallet, key),
        **kw,
    )


@pytest.mark.parametrize(
    ("wallet", "key"),
    [("0x1234", PRIVATE_KEY), (WALLET, "0xdeadbeef"), (WALLET, PRIVATE_KEY[:-1] + "z")],
)
def test_bad_credentials_are_refused_without_echoing_the_key(wallet: str, key: str) -> None:
    with pytest.raises(AuthError) as caught:
        build(None, wallet, key)
    assert key not in str(caught.value) and PRIVATE_KEY not in str(caught.value)


def test_the_factory_keeps_ccxts_rate_limiter_and_a_timeout() -> None:
    ex = build(None, WALLET, PRIVATE_KEY)
    assert ex.client.enableRateLimit is True and ex.client.timeout == 10_000
    assert (
        ex.client.implode_hostname(ex.client.urls["api"]["public"]) == "https://api.hyperliquid.xyz"
    )


def test_missing_credentials_are_named_never_shown() -> None:
    with pytest.raises(MissingCredentials, match="HYPERLIQUID_PRIVATE_KEY not set") as caught:
        build(None, WALLET, None)
    assert WALLET not in str(caught.value)


async def test_without_credentials_only_public_data_works() -> None:
    fake = FakeHyperliquid(WALLET)
    ex = build(await fake.start(), None, None, require_credentials=False, enable_rate_limit=False)
    try:
        assert set(await ex.markets()) == {BTC, ETH}
        assert (await ex.ticker(BTC)).last == 69060.0
        for read in (ex.positions, ex.balance, ex.open_stops):
            with pytest.raises(AuthError, match="public data only"):
                await read()
        with pytest.raises(NotSent, match="not sent"):
            await ex.place_market_order(BTC, BUY, 0.001, "wd0a1b2ce1")
        with pytest.raises(NotSent, match="not sent"):
            await ex.place_stop(BTC, SELL, 0.001, 65600.0, "wd0a1b2cs1")
    finally:
        await ex.close()
        await fake.stop()
    assert fake.actions == [] and "/exchange" not in fake.paths


async def test_builder_fee_and_referrer_are_switched_off_on_the_client(venue: Venue) -> None:
    for option, value in GRANT_OPTIONS.items():
        assert venue.ex.client.options[option] == value
    assert venue.ex.client.options["maxRetriesOnFailure"] == 0
    with pytest.raises(NotSent, match="never approves"):
        await venue.ex.client.approve_builder_fee("0x" + "11" * 20, "0.1%")
    assert "PRIVATE" not in repr(venue.ex) and PRIVATE_KEY not in repr(venue.ex)


async def test_a_stock_ccxt_client_would_grant_both_which_the_fake_records() -> None:
    """The control for every teardown check: left at its defaults, ccxt 4.5.90 sends
    approveBuilderFee and setReferrer before its first order, and the fake sees them."""
    import ccxt.async_support as ccxt_async

    fake = FakeHyperliquid(WALLET)
    url = await fake.start()
    stock = ccxt_async.hyperliquid(
        {"walletAddress": WALLET, "privateKey": PRIVATE_KEY, "enableRateLimit": False}
    )
    stock.urls["api"] = {"public": url, "private": url}
    try:
        await stock.create_order(BTC, "market", "buy", 0.001, 69060.0)
    finally:
        await stock.close()
        await fake.stop()
    assert set(GRANTS) <= set(fake.action_types)
    assert any("builder" in a for a in fake.actions if a["type"] == "order")


async def test_sandbox_signs_for_testnet_and_still_honours_the_api_url() -> None:
    fake = FakeHyperliquid(WALLET)
    url = await fake.start()
    ex = build(url, WALLET, PRIVATE_KEY, sandbox=True, enable_rate_limit=False)
    try:
        assert ex.client.options["sandboxMode"] is True
        assert ex.client.urls["api"] == {"public": url, "private": url}
        await ex.place_market_order(BTC, BUY, 0.001, "wd0a1b2ce1")
    finally:
        await ex.close()
        await fake.stop()
    assert fake.action_types == ["order"]
    assert_nothing_granted(fake)


def as_port(ex: HyperliquidExchange) -> ExchangePort:
    return ex  # mypy checks the whole protocol here


def test_the_adapter_implements_the_whole_port() -> None:
    wanted = {n for n in vars(ExchangePort) if not n.startswith("_") and n != "name"}
    missing = {n for n in wanted if not callable(getattr(HyperliquidExchange, n, None))}
    assert not missing, missing


async def test_markets_are_the_usdc_perpetuals_with_their_steps(venue: Venue) -> None:
    markets = await as_port(venue.ex).markets()
    assert set(markets) == {BTC, ETH}
    btc = markets[BTC]
    assert (btc.base, btc.quote, btc.contract_size) == ("BTC", "USDC", 1.0)
    assert btc.size_step == pytest.approx(1e-5) and btc.min_size == pytest.approx(1e-5)
    assert btc.price_step == 1.0  # 5 significant figures at 69,060
    assert markets[ETH].size_step == pytest.approx(1e-4)
    assert markets[ETH].price_step == pytest.approx(0.1)


async def test_ticker_balance_candles(venue: Venue) -> None:
    assert (await venue.ex.ticker(BTC)).last == 69060.0
    bal = await venue.ex.balance()
    assert (bal.currency, bal.total, bal.used) == ("USDC", 10_000.0, 0.0)
    candles = await venue.ex.candles(BTC, "1m", limit=5)
    assert candles and all(c.close == 69060.0 for c in candles)
    assert await venue.ex.server_time() > 1.7e9


async def test_positions_from_clearinghouse_state(venue: Venue) -> None:
    assert await venue.ex.positions() == []
    venue.fake.open_position("ETH", -0.3, 1950.0)  # outside the agent
    await long_btc(venue)
    positions = {p.symbol: p for p in await venue.ex.positions()}
    assert positions[BTC].side is PositionSide.LONG and positions[BTC].size == 0.001
    assert positions[ETH].side is PositionSide.SHORT and positions[ETH].size == 0.3
    assert positions[ETH].entry_price == 1950.0 and positions[ETH].leverage == 20
    assert [p.symbol for p in await venue.ex.positions(ETH)] == [ETH]


async def test_a_market_order_is_an_ioc_limit_within_the_slippage_bound(venue: Venue) -> None:
    order = await venue.ex.place_market_order(BTC, BUY, 0.001, "wd0a1b2ce1")
    [wire] = venue.fake.order_actions()
    mid = 69060.0
    assert wire["t"] == {"limit": {"tif": "Ioc"}}
    assert wire["b"] is True and wire["r"] is False and wire["s"] == "0.001"
    assert wire["c"] == to_cloid("wd0a1b2ce1")
    assert mid < float(wire["p"]) <= mid * (1 + SLIPPAGE / 100) + 1.0  # one price step
    assert order.status is OrderStatus.FILLED and order.filled == 0.001
    assert order.average_price == mid and order.client_id == "wd0a1b2ce1"
    assert order.fee == pytest.approx(0.001 * mid * 0.00045)

    close = await venue.ex.place_market_order(BTC, SELL, 0.001, "wd0a1b2cc2", reduce_only=True)
    sell = venue.fake.order_actions()[1]
    assert sell["r"] is True and sell["b"] is False
    assert mid * (1 - SLIPPAGE / 100) - 1.0 <= float(sell["p"]) < mid
    assert close.filled == 0.001 and await venue.ex.positions() == []


async def test_an_order_is_read_back_by_client_id(venue: Venue) -> None:
    await long_btc(venue)
    order = await venue.ex.get_order(BTC, client_id="wd0a1b2ce1")
    assert order is not None and order.status is OrderStatus.FILLED
    assert (order.filled, order.average_price, order.client_id) == (0.001, 69060.0, "wd0a1b2ce1")
    by_id = await venue.ex.get_order(BTC, order_id=order.id)
    assert by_id is not None and by_id.client_id == "wd0a1b2ce1"
    assert await venue.ex.get_order(BTC, client_id="wd0a1b2ce99") is None


async def test_exchange_refusals_keep_the_exchanges_reason(venue: Venue) -> None:
    with pytest.raises(Rejected, match=r"minimum value of \$10"):
        await venue.ex.place_market_order(BTC, BUY, 0.0001, "wd0a1b2ce1")
    with pytest.raises(Rejected, match="Reduce only order would increase position"):
        await venue.ex.place_market_order(BTC, SELL, 0.001, "wd0a1b2cc2", reduce_only=True)
    with pytest.raises(NotSent, match="not a Hyperliquid USDC perpetual"):
        await venue.ex.place_market_order("BTC/USDT:USDT", BUY, 0.001, "wd0a1b2ce3")
    assert len(venue.fake.order_actions()) == 2  # the unknown symbol was never sent
    assert venue.fake.orders == {}


async def test_resting_orders_and_stops_are_listed_apart(venue: Venue) -> None:
    await long_btc(venue)
    await venue.ex.client.create_order(BTC, "limit", "buy", 0.001, 60000)  # rests
    await venue.ex.place_stop(BTC, SELL, 0.001, 65600.0, "wd0a1b2cs2")
    [resting] = await venue.ex.open_orders(BTC)
    assert resting.status is OrderStatus.OPEN and resting.size == 0.001
    [stop] = await venue.ex.open_stops(BTC)
    assert stop.client_id == "wd0a1b2cs2" and stop.state is StopState.LIVE
    assert await venue.ex.open_stops(ETH) == [] and await venue.ex.open_orders(ETH) == []
    await venue.ex.cancel_order(BTC, resting.id)
    assert await venue.ex.open_orders() == []


async def test_a_stop_is_a_reduce_only_trigger_market_order(venue: Venue) -> None:
    await long_btc(venue)
    ack = await venue.ex.place_stop(BTC, SELL, 0.001, 65586.3, "wd0a1b2cs2")
    wire = venue.fake.order_actions()[-1]
    assert wire["t"] == {"trigger": {"isMarket": True, "triggerPx": "65586", "tpsl": "sl"}}
    assert wire["r"] is True and wire["b"] is False and wire["c"] == to_cloid("wd0a1b2cs2")
    assert ack.client_id == "wd0a1b2cs2" and ack.id is not None
    stop = await venue.ex.get_stop(BTC, stop_id=ack.id)
    assert stop is not None and stop.state is StopState.LIVE and stop.reduce_only
    assert (stop.side, stop.size, stop.trigger_price) == (SELL, 0.001, 65586.0)


async def test_a_waiting_for_trigger_reply_has_no_id_and_is_found_by_cloid(venue: Venue) -> None:
    await long_btc(venue)
    venue.fake.stop_reply_waiting = True
    ack = await venue.ex.place_stop(BTC, SELL, 0.001, 65600.0, "wd0a1b2cs2")
    assert ack.id is None
    stop = await venue.ex.get_stop(BTC, stop_id=ack.id, client_id=ack.client_id)
    assert stop is not None and stop.state is StopState.LIVE and stop.client_id == "wd0a1b2cs2"


@pytest.mark.parametrize(
    ("fate", "state", "code"),
    [
        ("rejected", StopState.FAILED, "rejected"),
        ("perpMarginRejected", StopState.FAILED, "perpMarginRejected"),
        ("canceled", StopState.CANCELED, None),
        ("marginCanceled", StopState.CANCELED, None),
        ("siblingFilledCanceled", StopState.CANCELED, None),
    ],
)
async def test_an_acknowledged_stop_that_ended_shows_its_own_state(
    venue: Venue, fate: str, state: StopState, code: str | None
) -> None:
    await long_btc(venue)
    venue.fake.stop_fates.append(fate)
    ack = await venue.ex.place_stop(BTC, SELL, 0.001, 65600.0, "wd0a1b2cs2")
    assert ack.id is None  # "waitingForTrigger": the reply looks fine
    stop = await venue.ex.get_stop(BTC, client_id=ack.client_id)
    assert stop is not None and (stop.state, stop.fail_code) == (state, code)
    assert await venue.ex.open_stops() == []


async def test_a_stop_beyond_the_market_is_refused_as_would_trigger(venue: Venue) -> None:
    await long_btc(venue)
    with pytest.raises(StopWouldTrigger, match="Invalid TP/SL price"):
        await venue.ex.place_stop(BTC, SELL, 0.001, 70000.0, "wd0a1b2cs2")
    assert venue.fake.live_stops() == []


async def test_a_stop_that_fires_reads_triggered_and_closes_the_position(venue: Venue) -> None:
    await long_btc(venue)
    ack = await venue.ex.place_stop(BTC, SELL, 0.001, 65600.0, "wd0a1b2cs2")
    venue.fake.set_mark("BTC", 65500.0)
    stop = await venue.ex.get_stop(BTC, stop_id=ack.id)
    assert stop is not None and stop.state is StopState.TRIGGERED
    assert await venue.ex.positions() == []


async def test_stop_history_has_every_ended_stop_since_a_time(venue: Venue) -> None:
    await long_btc(venue)
    venue.fake.stop_fates.extend(["rejected", "marginCanceled"])
    await venue.ex.place_stop(BTC, SELL, 0.001, 65600.0, "wd0a1b2cs1")
    await venue.ex.place_stop(BTC, SELL, 0.001, 65600.0, "wd0a1b2cs2")
    third = await venue.ex.place_stop(BTC, SELL, 0.001, 65600.0, "wd0a1b2cs3")
    assert third.id is not None
    await venue.ex.cancel_stop(BTC, third.id)
    live = await venue.ex.place_stop(BTC, SELL, 0.001, 65600.0, "wd0a1b2cs4")
    history = await venue.ex.stop_history(BTC)
    assert [(s.client_id, s.state, s.fail_code) for s in history] == [
        ("wd0a1b2cs1", StopState.FAILED, "rejected"),
        ("wd0a1b2cs2", StopState.CANCELED, None),
        ("wd0a1b2cs3", StopState.CANCELED, None),
    ]
    assert live.id not in {s.id for s in history}
    assert await venue.ex.stop_history(BTC, since=history[1].updated_at) == history[1:]
    assert await venue.ex.stop_history(ETH) == []


async def test_canceling_a_stop_that_is_gone_is_refused(venue: Venue) -> None:
    await long_btc(venue)
    ack = await venue.ex.place_stop(BTC, SELL, 0.001, 65600.0, "wd0a1b2cs2")
    assert ack.id is not None
    await venue.ex.cancel_stop(BTC, ack.id)
    with pytest.raises(Rejected, match="never placed, already canceled, or filled"):
        await venue.ex.cancel_stop(BTC, ack.id)
    assert await venue.ex.get_stop(BTC, stop_id="123456") is None


@pytest.mark.parametrize("lost", ["drop", "delay"])
async def test_a_lost_reply_to_a_write_is_an_unknown_outcome_with_the_client_id(
    lost: str,
) -> None:
    v = await start_venue(FakeHyperliquid(WALLET), timeout_ms=400)
    v.fake.lose_next_order, v.fake.delay_seconds = lost, 1.0
    try:
        with pytest.raises(UnknownOutcome) as caught:
            await v.ex.place_market_order(BTC, BUY, 0.001, "wd0a1b2ce1")
        assert caught.value.client_id == "wd0a1b2ce1"
        # it did go through: the exchange has it under the cloid
        order = await v.ex.get_order(BTC, client_id="wd0a1b2ce1")
        assert order is not None and order.filled == 0.001
        assert len(v.fake.order_actions()) == 1  # sent once, never retried
    finally:
        await stop_venue(v)


async def test_rate_limited_reads_and_writes(venue: Venue) -> None:
    await venue.ex.markets()
    venue.fake.rate_limit(1, "/info")
    with pytest.raises(RateLimited):
        await venue.ex.positions()
    venue.fake.rate_limit(1, "/exchange")
    with pytest.raises(RateLimited):
        await venue.ex.place_market_order(BTC, BUY, 0.001, "wd0a1b2ce1")
    assert venue.fake.orders == {} and venue.fake.paths.count("/exchange") == 1


async def test_malformed_answers_are_clear_errors_and_never_crash(venue: Venue) -> None:
    await venue.ex.markets()
    for read in (venue.ex.positions, venue.ex.open_stops, venue.ex.stop_history):
        venue.fake.malformed(1, "/info")
        with pytest.raises(NetworkError, match="malformed"):
            await read()
    venue.fake.malformed(2, "/info")  # ccxt shrugs off a broken userAbstraction on its own
    with pytest.raises(NetworkError, match="malformed"):
        await venue.ex.balance()
    venue.fake.malformed(1, "/exchange")
    with pytest.raises(UnknownOutcome) as caught:
        await venue.ex.place_stop(BTC, SELL, 0.001, 65600.0, "wd0a1b2cs2")
    assert caught.value.client_id == "wd0a1b2cs2"
    assert venue.fake.orders == {}


async def test_errors_never_carry_the_private_key(venue: Venue) -> None:
    failures: list[Exception] = []
    venue.fake.rate_limit(1)
    for call in (
        venue.ex.markets,
        lambda: venue.ex.place_market_order(BTC, SELL, 0.001, "wd0a1b2cc1", reduce_only=True),
        lambda: venue.ex.place_stop(BTC, SELL, 0.001, 70000.0, "wd0a1b2cs2"),
        lambda: venue.ex.cancel_stop(BTC, "42"),
    ):
        try:
            await call()
        except (RateLimited, Rejected) as exc:
            failures.append(exc)
    assert [type(e) for e in failures] == [RateLimited, Rejected, UnclearStopRefusal, Rejected]
    for failure in failures:
        assert PRIVATE_KEY[2:] not in f"{failure} {failure!r}"


async def test_an_unknown_api_wallet_is_an_auth_error_that_names_no_address(venue: Venue) -> None:
    venue.fake.unknown_signer = WALLET
    with pytest.raises(AuthError, match="does not know this wallet") as caught:
        await venue.ex.place_stop(BTC, SELL, 0.001, 65600.0, "wd0a1b2cs2")
    assert WALLET[2:].lower() not in str(caught.value).lower()
    assert "User or API Wallet 0x… does not exist" in str(caught.value)


async def test_fills_name_the_order_the_client_id_and_the_stop(venue: Venue) -> None:
    await long_btc(venue)
    ack = await venue.ex.place_stop(BTC, SELL, 0.001, 65600.0, "wd0a1b2cs2")
    venue.fake.set_mark("BTC", 65500.0)
    entry, stopped = await venue.ex.fills()
    assert (entry.side, entry.size, entry.price) == (BUY, 0.001, 69060.0)
    assert entry.client_id == "wd0a1b2ce1" and not entry.reduce_only and entry.stop_id is None
    assert entry.fee == pytest.approx(0.001 * 69060.0 * 0.00045)
    assert (stopped.side, stopped.price, stopped.stop_id) == (SELL, 65500.0, ack.id)
    assert stopped.reduce_only and stopped.client_id == "wd0a1b2cs2"
    assert await venue.ex.fills(BTC, since=stopped.ts) == [stopped]
    assert await venue.ex.fills(ETH) == []
