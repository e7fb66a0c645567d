"""The OKX adapter driving the REAL ccxt okx client against the fake OKX server: markets, sizes,
reads and stops (errors, the account and credentials are in tests/test_okx_errors_account.py).

What goes over the wire is checked in the fake's request log (contracts, ``ordType``,
``algoClOrdId``, ``tdMode``...); what comes back is checked as the port's models and errors.
"""

from __future__ import annotations

import math
from decimal import Decimal

import ccxt.async_support as ccxt_async  # imported once for the session, as the adapter does
import pytest

from tests import rig_okx_adapter
from tests.fake_okx import API_KEY, BTC, ETH, PASSPHRASE, SECRET, FakeOkx
from tests.rig_okx_adapter import BTC_SYM, BUY, ETH_SYM, SELL, adapter, no_payload
from trading.adapters.okx import OkxExchange
from trading.errors import NetworkError, NotSent, Rejected, UnknownOutcome
from trading.models import OrderStatus, PositionSide, StopState

fake = rig_okx_adapter.fake  # the fixture, from tests/rig_okx_adapter.py
okx = rig_okx_adapter.okx  # the fixture, from tests/rig_okx_adapter.py


async def test_markets_are_live_usdt_swaps_in_base_units(okx: OkxExchange) -> None:
    markets = await okx.markets()
    assert sorted(markets) == [BTC_SYM, ETH_SYM]  # no coin-margined, no suspended swap
    btc, eth = markets[BTC_SYM], markets[ETH_SYM]
    assert (btc.base, btc.quote, btc.contract_size) == ("BTC", "USDT", 0.01)
    assert (btc.min_size, btc.size_step, btc.price_step) == (0.0001, 0.0001, 0.1)
    assert (eth.contract_size, eth.min_size, eth.size_step, eth.price_step) == (
        0.1,
        0.001,
        0.001,
        0.01,
    )


async def test_sizes_go_out_in_contracts_and_come_back_in_base_units(
    fake: FakeOkx, okx: OkxExchange
) -> None:
    order = await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")
    eth = await okx.place_market_order(ETH_SYM, SELL, 0.123, "wdtest1e2")

    [btc_post, eth_post] = [c.body for c in fake.calls("POST", "trade/order")]
    assert btc_post["sz"] == "5" and eth_post["sz"] == "1.23"  # 0.05 / 0.01, 0.123 / 0.1
    assert btc_post["ordType"] == "market" and btc_post["tdMode"] == "cross"
    assert btc_post["clOrdId"] == "wdtest1e1" and "reduceOnly" not in btc_post
    assert "tag" not in btc_post  # no broker tag is put on the user's orders
    assert (order.size, order.filled, order.average_price) == (0.05, 0.05, 69_060.0)
    assert (order.status, order.client_id, order.reduce_only) == (
        OrderStatus.FILLED,
        "wdtest1e1",
        False,
    )
    assert order.fee == pytest.approx(0.05 * 69_060 * 0.0005)
    assert (eth.size, eth.filled) == (0.123, 0.123)
    assert fake.position(BTC) == Decimal(5) and fake.position(ETH) == Decimal("-1.23")


@pytest.mark.parametrize(
    ("size", "why"),
    [
        (0.00015, "multiple of the size step"),
        (0.00005, "multiple of the size step"),
        (0.00004, "multiple of the size step"),
        (0.0, "positive"),
        (-0.01, "positive"),
        (math.nan, "number"),
        (math.inf, "positive"),
    ],
)
async def test_a_size_okx_cannot_take_is_refused_before_sending(
    fake: FakeOkx, okx: OkxExchange, size: float, why: str
) -> None:
    with pytest.raises(NotSent, match=why):
        await okx.place_market_order(BTC_SYM, BUY, size, "wdtest1e1")
    with pytest.raises(NotSent, match=why):
        await okx.place_stop(BTC_SYM, SELL, size, 65_000.0, "wdtest1s1")
    assert fake.calls("POST", "trade/order") == fake.calls("POST", "trade/order-algo") == []


@pytest.mark.parametrize("size", [0.0001, 0.0003, 0.0007, 0.0123, 0.1, 1.1, 12.3456])
def test_contract_conversion_is_exact_both_ways(size: float) -> None:
    from trading.adapters.okx_parse import Contract

    btc = Contract(
        BTC_SYM,
        BTC,
        "BTC",
        "USDT",
        Decimal("0.01"),
        Decimal("0.01"),
        Decimal("0.01"),
        Decimal("0.1"),
    )
    contracts = btc.to_contracts(size)
    assert btc.to_base(contracts) == size
    assert contracts == Decimal(repr(size)) * 100
    assert btc.price(65_600.04) == Decimal("65600") and btc.price(65_600.06) == Decimal("65600.1")


async def test_a_bad_client_id_is_refused_before_sending(fake: FakeOkx, okx: OkxExchange) -> None:
    for bad in ("wd-1", "x" * 33, ""):
        with pytest.raises(NotSent, match="letters and digits"):
            await okx.place_market_order(BTC_SYM, BUY, 0.01, bad)
    assert fake.calls("POST", "trade/order") == []


async def test_positions_and_balance(fake: FakeOkx, okx: OkxExchange) -> None:
    assert await okx.positions() == []
    start = await okx.balance()
    assert (start.currency, start.total, start.free, start.used) == ("USDT", 10_000, 10_000, 0)

    await okx.prepare(BTC_SYM, 5)
    await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")
    await okx.place_market_order(ETH_SYM, SELL, 0.5, "wdtest1e2")
    fake.set_price(BTC, 70_060.0)
    fake.set_price(ETH, 1_900.0)

    btc, eth = sorted(await okx.positions(), key=lambda p: p.symbol)
    assert (btc.symbol, btc.side, btc.size, btc.entry_price) == (
        BTC_SYM,
        PositionSide.LONG,
        0.05,
        69_060,
    )
    assert btc.unrealized_pnl == pytest.approx(50.0) and btc.leverage == 5
    assert (eth.side, eth.size, eth.entry_price) == (PositionSide.SHORT, 0.5, 1_950)
    assert eth.unrealized_pnl == pytest.approx(25.0) and eth.leverage == 10
    assert [p.symbol for p in await okx.positions(ETH_SYM)] == [ETH_SYM]

    fees = (0.05 * 69_060 + 0.5 * 1_950) * 0.0005
    margin = 0.05 * 70_060 / 5 + 0.5 * 1_900 / 10
    bal = await okx.balance()
    assert bal.total == pytest.approx(10_000 - fees + 75)
    assert bal.used == pytest.approx(margin) and bal.free == pytest.approx(bal.total - margin)


@pytest.mark.parametrize("acct_lv", ["3", "4"])
async def test_multi_currency_and_portfolio_accounts_size_from_account_equity(
    fake: FakeOkx, okx: OkxExchange, acct_lv: str
) -> None:
    """acctLv 3/4: the USDT line is dust while the account is worth 10,000 USD in BTC
    collateral; totalEq also counts 5,000 USD that is not collateral. Sized from adjEq."""
    fake.acct_lv, fake.non_collateral_usd = acct_lv, Decimal(5_000)
    await okx.prepare(BTC_SYM, 5)
    await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")

    bal = await okx.balance()

    fee = 0.05 * 69_060 * 0.0005
    margin = 0.05 * 69_060 / 5
    assert bal.currency == "USD" and bal.total == pytest.approx(10_000 - fee)
    assert bal.free == pytest.approx(10_000 - fee - margin) and bal.used == pytest.approx(margin)
    [query] = [c.query for c in fake.calls("GET", "account/balance")]
    assert "ccy" not in query  # account-level figures, every currency counted once


@pytest.mark.parametrize(
    "account",
    [
        {"adjEq": "", "availEq": "9000", "totalEq": "10000"},  # no adjusted equity
        {"adjEq": "10000", "totalEq": "10000"},  # no availEq
        {"adjEq": "-5", "availEq": "0", "totalEq": "10000"},
    ],
)
def test_an_account_level_balance_without_its_figures_is_refused_not_guessed(
    account: dict[str, str],
) -> None:
    from trading.adapters.okx_parse import BadPayload, balance_from

    usdt = {"ccy": "USDT", "eq": "10000", "availEq": "10000", "frozenBal": "0"}
    response = {"code": "0", "data": [dict(account, details=[usdt])], "msg": ""}
    with pytest.raises(BadPayload):
        balance_from(response, acct_lv="3")
    assert balance_from(response, acct_lv="2").total == 10_000  # single-currency: the USDT line


async def test_leverage_setting_reads_the_position_or_the_configured_mode(fake: FakeOkx) -> None:
    okx = adapter(fake, leverage=3, margin_mode="isolated")
    try:
        before = await okx.leverage_setting(BTC_SYM)
        assert (before.symbol, before.leverage, before.margin_mode) == (BTC_SYM, 10, "isolated")
        assert fake.calls("POST", "account/set-leverage") == []  # read only
        await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")
        after = await okx.leverage_setting(BTC_SYM)
        fake.open_outside(ETH, "sell", "3", mode="cross")  # opened in OKX's app, cross, 10x
        eth = await okx.leverage_setting(ETH_SYM)
    finally:
        await okx.close()
    assert (after.leverage, after.margin_mode) == (3, "isolated")
    assert (eth.leverage, eth.margin_mode) == (10, "cross")  # the position's own, not config
    [info] = [c.query for c in fake.calls("GET", "account/leverage-info")]
    assert info == {"instId": BTC, "mgnMode": "isolated"}


@pytest.mark.parametrize("code", ["51149", "51054", "50026"])
async def test_a_placement_applied_then_timed_out_is_an_unknown_outcome(
    fake: FakeOkx, okx: OkxExchange, code: str
) -> None:
    await okx.markets()
    fake.faults.timeout_after_apply, fake.faults.timeout_code = 2, code

    with pytest.raises(UnknownOutcome) as entry:
        await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")
    with pytest.raises(UnknownOutcome) as stop:
        await okx.place_stop(BTC_SYM, SELL, 0.05, 65_600.0, "wdtest1s1")

    assert (entry.value.client_id, stop.value.client_id) == ("wdtest1e1", "wdtest1s1")
    assert not isinstance(entry.value, Rejected) and not entry.value.retryable
    no_payload(entry.value)
    order = await okx.get_order(BTC_SYM, client_id="wdtest1e1")  # both went through
    placed = await okx.get_stop(BTC_SYM, client_id="wdtest1s1")
    assert order is not None and order.status is OrderStatus.FILLED
    assert placed is not None and placed.state is StopState.LIVE


async def test_a_5xx_with_an_okx_body_is_retryable_on_reads_unknown_on_writes(
    fake: FakeOkx, okx: OkxExchange
) -> None:
    """ccxt alone reads a 5xx's OKX code as a plain refusal; the server failed mid-request."""
    await okx.balance()
    fake.faults.server_errors, fake.faults.server_error_json = 2, True
    with pytest.raises(NetworkError) as read:
        await okx.positions()
    with pytest.raises(UnknownOutcome) as write:
        await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")
    assert read.value.retryable and write.value.client_id == "wdtest1e1"
    assert "50026" in str(write.value)
    no_payload(read.value)
    no_payload(write.value)


async def test_candles_all_of_them_oldest_first_and_the_ticker(
    fake: FakeOkx, okx: OkxExchange
) -> None:
    start = 1_700_000_000_000
    rows = [
        [str(start + i * 1_800_000), "100", "110", "90", str(101 + i), "500", "5", "505", "1"]
        for i in range(4)
    ]
    rows[-1][-1] = "0"  # the forming candle: kept, the cycle drops it by clock
    fake.candles[BTC] = rows

    candles = await okx.candles(BTC_SYM, "30m", limit=10)

    assert [c.ts for c in candles] == [(start + i * 1_800_000) / 1000 for i in range(4)]
    assert [c.close for c in candles] == [101, 102, 103, 104]
    assert (candles[0].open, candles[0].high, candles[0].low) == (100, 110, 90)
    assert candles[0].volume == 5  # volCcy: base units, not contracts
    [call] = fake.calls("GET", "market/candles")
    assert call.query["bar"] == "30m" and call.query["instId"] == BTC

    ticker = await okx.ticker(ETH_SYM)
    assert (ticker.symbol, ticker.last) == (ETH_SYM, 1_950.0) and ticker.ts > 1e9


async def test_a_stop_is_a_reduce_only_conditional_algo_order(
    fake: FakeOkx, okx: OkxExchange
) -> None:
    await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")

    ack = await okx.place_stop(BTC_SYM, SELL, 0.05, 65_600.04, "wdtest1s1")

    [post] = [c.body for c in fake.calls("POST", "trade/order-algo")]
    assert post["ordType"] == "conditional" and post["side"] == "sell" and post["sz"] == "5"
    assert post["slTriggerPx"] == "65600" and post["slOrdPx"] == "-1"  # tick 0.1, market
    assert post["reduceOnly"] is True and post["tdMode"] == "cross"
    assert post["algoClOrdId"] == "wdtest1s1"
    assert ack.client_id == "wdtest1s1" and ack.id is not None

    by_id = await okx.get_stop(BTC_SYM, stop_id=ack.id)
    by_client_id = await okx.get_stop(BTC_SYM, client_id="wdtest1s1")
    assert by_id == by_client_id and by_id is not None
    assert (by_id.id, by_id.client_id, by_id.side, by_id.size) == (ack.id, "wdtest1s1", SELL, 0.05)
    assert (by_id.trigger_price, by_id.state, by_id.reduce_only) == (65_600, StopState.LIVE, True)
    assert by_id.fail_code is None and by_id.created_at > 1e9
    assert await okx.open_stops() == [by_id] == await okx.open_stops(BTC_SYM)
    assert await okx.open_stops(ETH_SYM) == []
    [listing] = fake.calls("GET", "trade/orders-algo-pending")[:1]
    assert listing.query["ordType"] == "conditional,oco"  # not the bare 'trigger' flag
    assert await okx.get_stop(BTC_SYM, client_id="wdnothere1") is None

    await okx.cancel_stop(BTC_SYM, ack.id)
    assert await okx.open_stops() == []
    canceled = await okx.get_stop(BTC_SYM, stop_id=ack.id)
    assert canceled is not None and canceled.state is StopState.CANCELED


@pytest.mark.parametrize(
    ("okx_state", "fail_code", "state", "code"),
    [
        ("live", "", StopState.LIVE, None),
        ("pause", "", StopState.PAUSED, None),  # exists, not in effect: never protection
        ("partially_effective", "", StopState.LIVE, None),
        ("effective", "", StopState.TRIGGERED, None),
        ("canceled", "", StopState.CANCELED, None),
        ("order_failed", "1000", StopState.FAILED, "1000"),
        ("order_failed", "", StopState.FAILED, "unknown"),
        ("a_state_okx_adds_later", "", StopState.FAILED, "state a_state_okx_adds_later"),
    ],
)
async def test_stop_state_is_the_algo_records_own(
    fake: FakeOkx,
    okx: OkxExchange,
    okx_state: str,
    fail_code: str,
    state: StopState,
    code: str | None,
) -> None:
    await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")
    ack = await okx.place_stop(BTC_SYM, SELL, 0.05, 65_600.0, "wdtest1s1")
    assert ack.id is not None
    fake.set_algo_state(ack.id, okx_state, fail_code)

    seen = await okx.get_stop(BTC_SYM, client_id="wdtest1s1")

    assert seen is not None and (seen.state, seen.fail_code) == (state, code)


async def test_order_failed_is_failed_with_its_code_where_ccxt_says_canceled(
    fake: FakeOkx, okx: OkxExchange
) -> None:
    """The reason the adapter reads ``info``: ccxt's unified order hides the failure."""
    await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")
    fake.faults.stop_order_failed = 1

    ack = await okx.place_stop(BTC_SYM, SELL, 0.05, 65_600.0, "wdtest1s1")

    seen = await okx.get_stop(BTC_SYM, stop_id=ack.id)
    assert seen is not None and (seen.state, seen.fail_code) == (StopState.FAILED, "1000")
    raw = ccxt_async.okx(
        {"apiKey": API_KEY, "secret": SECRET, "password": PASSPHRASE, "rateLimit": 1}
    )
    raw.timeout_on_exit = 0
    raw.set_sandbox_mode(True)
    raw.urls["api"] = {"rest": fake.url}
    try:
        unified = await raw.fetch_order(ack.id, BTC_SYM, {"trigger": True})
    finally:
        await raw.close()
    assert unified["status"] == "canceled"
    assert "1000" not in [v for k, v in unified.items() if k != "info"]
    assert await okx.open_stops() == []


async def test_history_holds_every_ended_stop_failed_ones_included(
    fake: FakeOkx, okx: OkxExchange
) -> None:
    """The post-mortem's audit: all 4 placements answered code 0 and ended order_failed."""
    await okx.place_market_order(ETH_SYM, SELL, 0.5, "wdtest1e1")
    fake.faults.stop_order_failed = 4
    for n in range(1, 5):
        await okx.place_stop(ETH_SYM, BUY, 0.5, 1_983.41, f"wdtest1s{n}")
    live = await okx.place_stop(ETH_SYM, BUY, 0.5, 1_983.41, "wdtest1s5")
    canceled = await okx.place_stop(ETH_SYM, BUY, 0.5, 1_990.0, "wdtest1s6")
    assert canceled.id is not None
    await okx.cancel_stop(ETH_SYM, canceled.id)
    fake.set_price(ETH, 1_983.41)  # the live stop fires and closes the short

    history = await okx.stop_history()

    assert [s.client_id for s in history] == [f"wdtest1s{n}" for n in (1, 2, 3, 4, 6, 5)]
    assert [(s.state, s.fail_code) for s in history[:4]] == [(StopState.FAILED, "1000")] * 4
    assert history[4].state is StopState.CANCELED
    assert history[5].state is StopState.TRIGGERED and history[5].id == live.id
    assert await okx.positions() == [] and await okx.open_stops() == []
    states = {c.query["state"] for c in fake.calls("GET", "trade/orders-algo-history")}
    assert states == {"effective", "canceled", "order_failed"}
    assert all(
        c.query["ordType"] == "conditional,oco"
        for c in fake.calls("GET", "trade/orders-algo-history")
    )
    assert [s.client_id for s in await okx.stop_history(ETH_SYM, since=history[4].updated_at)] == [
        "wdtest1s6",
        "wdtest1s5",
    ]
    assert await okx.stop_history(BTC_SYM) == []


async def test_history_is_read_page_by_page_to_the_end(fake: FakeOkx, okx: OkxExchange) -> None:
    await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")
    fake.faults.stop_order_failed = 1
    ack = await okx.place_stop(BTC_SYM, SELL, 0.05, 65_600.0, "wdtest1s1")
    assert ack.id is not None
    for n in range(2, 231):
        fake.copy_algo(ack.id, algoClOrdId=f"wdtest1s{n}", clOrdId=f"wdtest1s{n}")

    history = await okx.stop_history()

    assert len(history) == 230 and {s.fail_code for s in history} == {"1000"}
    pages = [c.query for c in fake.calls("GET", "trade/orders-algo-history")]
    failed_pages = [q for q in pages if q["state"] == "order_failed"]
    assert len(failed_pages) == 3 and "after" not in failed_pages[0]
    assert all("after" in q for q in failed_pages[1:])


async def test_fills_carry_the_client_id_or_the_stop_that_made_them(
    fake: FakeOkx, okx: OkxExchange
) -> None:
    await okx.place_market_order(ETH_SYM, SELL, 0.5, "wdtest1e1")
    ack = await okx.place_stop(ETH_SYM, BUY, 0.5, 1_983.41, "wdtest1s1")
    fake.set_price(ETH, 1_990.0)  # through the stop: it fires and closes the short here

    entry, stopped = await okx.fills()

    assert (entry.symbol, entry.side, entry.size, entry.price) == (ETH_SYM, SELL, 0.5, 1_950)
    assert (entry.client_id, entry.stop_id, entry.reduce_only) == ("wdtest1e1", None, False)
    assert entry.fee == pytest.approx(0.5 * 1_950 * 0.0005)
    assert (stopped.side, stopped.size, stopped.price) == (BUY, 0.5, 1_990)
    assert (stopped.stop_id, stopped.reduce_only) == (ack.id, True)
    assert stopped.ts >= entry.ts > 1e9
    assert await okx.fills(ETH_SYM, since=stopped.ts) == [stopped]
    assert await okx.fills(BTC_SYM) == []
    assert all(c.query["instType"] == "SWAP" for c in fake.calls("GET", "trade/fills-history"))


async def test_fills_are_read_page_by_page(fake: FakeOkx, okx: OkxExchange) -> None:
    await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")
    [first] = fake.fills
    fake.fills += [
        dict(first, billId=fake.new_id(), ts=str(int(first["ts"]) + n)) for n in range(1, 150)
    ]

    fills = await okx.fills(BTC_SYM)

    assert len(fills) == 150 and [f.ts for f in fills] == sorted(f.ts for f in fills)
    assert len(fake.calls("GET", "trade/fills-history")) == 2


async def test_take_profit_and_trigger_algos_are_not_stops(fake: FakeOkx, okx: OkxExchange) -> None:
    await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")
    ack = await okx.place_stop(BTC_SYM, SELL, 0.05, 65_600.0, "wdtest1s1")
    assert ack.id is not None
    fake.copy_algo(ack.id, slTriggerPx="", tpTriggerPx="75000", algoClOrdId="usertp1")
    fake.copy_algo(ack.id, ordType="trigger", algoClOrdId="usertrigger1")

    assert [s.id for s in await okx.open_stops()] == [ack.id]
