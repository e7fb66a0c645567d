"""The Hyperliquid adapter against payloads nobody on this team wrote.

``tests/venue_payloads/hyperliquid/`` holds one JSON per request type the adapter uses, each
with a ``source``: ccxt's responses recorded from the live venue (repository ccxt/ccxt,
``ts/src/test/static/response/hyperliquid.json``, by method and description), else the
Hyperliquid API docs' example where ccxt recorded none (``recorded: false``: meta/
metaAndAssetCtxs, allMids, spotMeta, activeAssetData, userFillsByTime, the cancel and
updateLeverage replies), and one payload per case Warden must survive (a position TP/SL set in
the UI, "Invalid TP/SL price", a stop that fired and rests unfilled) naming the docs page.

A small local HTTP server replays them to the REAL ccxt client inside the REAL
HyperliquidExchange (signing, request building, ccxt's own parsing and error mapping), and the
tests check the models that come out. The requests the adapter sent are checked against the
shapes ccxt recorded (``ts/src/test/static/request/hyperliquid.json``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from trading.adapters.hyperliquid import HyperliquidExchange
from trading.adapters.hyperliquid_parse import latest_by_oid, parse_fill, to_cloid
from trading.errors import NotSent, StopWouldTrigger
from trading.models import (
    LeverageSetting,
    OrderSide,
    OrderStatus,
    PositionSide,
    StopState,
)

PAYLOADS = Path(__file__).parent / "venue_payloads" / "hyperliquid"
WALLET = "0x5e9ee1089755c3435139848e47e6635505d5a13a"
PRIVATE_KEY = "0x" + "0123456789abcdef" * 4  # a throwaway key; nothing verifies signatures
SOURCES = ("ccxt/ccxt ts/src/test/static/", "https://hyperliquid.gitbook.io/hyperliquid-docs/")


def payload(name: str) -> Any:
    return json.loads((PAYLOADS / f"{name}.json").read_text())["payload"]


def perp(symbol: str) -> str:
    return f"{symbol}/USDC:USDC"


def universe(marks: dict[str, tuple[int, float]]) -> list[Any]:
    """metaAndAssetCtxs for the coins the recorded account payloads name (ccxt recorded none):
    the documented shape, each context the docs' example's first one with its mark and mid
    set to ``marks[coin] = (szDecimals, price)``."""
    template = payload("meta_and_asset_ctxs")[1][0]
    meta = {
        "universe": [{"name": c, "szDecimals": d, "maxLeverage": 20} for c, (d, _) in marks.items()]
    }
    ctxs = [template | {"markPx": str(px), "midPx": str(px)} for _, px in marks.values()]
    return [meta, ctxs]


class Replay:
    """POST /info and /exchange answering from payloads by request type; every request body
    is kept. An info type with no payload is answered as the venue answers an unknown one."""

    def __init__(self, info: dict[str, Any], exchange: dict[str, Any] | None = None) -> None:
        self.info = {"spotMeta": payload("spot_meta")} | info
        self.exchange = exchange or {}
        self.requests: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/info", self._on_info)
        app.router.add_post("/exchange", self._on_exchange)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def types(self) -> list[str]:
        return [str(r.get("type")) for r in self.requests]

    async def _on_info(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        answer = self.info.get(str(body.get("type")))
        if answer is None:
            return web.Response(status=422, text="Failed to deserialize the JSON body")
        return web.json_response(answer)

    async def _on_exchange(self, request: web.Request) -> web.Response:
        body = await request.json()
        action = body["action"]
        self.actions.append(action)
        return web.json_response(self.exchange[action["type"]])


Connect = Callable[..., Any]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    started: list[tuple[Replay, HyperliquidExchange]] = []

    async def _connect(replay: Replay, **settings: Any) -> HyperliquidExchange:
        url = await replay.start()
        ex = HyperliquidExchange(
            "hyperliquid",
            "main",
            WALLET,
            PRIVATE_KEY,
            api_url=url,
            enable_rate_limit=False,
            **settings,
        )
        ex.client.timeout_on_exit = 0
        started.append((replay, ex))
        return ex

    yield _connect
    for replay, ex in started:
        await ex.close()
        await replay.stop()
        # nothing granted to a third party, whatever the payloads said
        assert not {"approveBuilderFee", "setReferrer"} & {a["type"] for a in replay.actions}
        assert all("builder" not in a for a in replay.actions)


def test_every_payload_names_its_source_outside_this_team() -> None:
    files = sorted(PAYLOADS.glob("*.json"))
    assert len(files) >= 19
    for f in files:
        data = json.loads(f.read_text())
        assert {"source", "recorded", "request", "payload"} <= data.keys(), f.name
        assert any(s in data["source"] for s in SOURCES), f.name
        if data["recorded"]:
            assert "ts/src/test/static/response/hyperliquid.json, methods." in data["source"]


# -- market data -----------------------------------------------------------------------------


async def test_markets_and_the_mark_price_from_the_documented_payloads(connect: Connect) -> None:
    replay = Replay(
        {
            "metaAndAssetCtxs": payload("meta_and_asset_ctxs"),
            "candleSnapshot": payload("candle_snapshot"),
        }
    )
    ex = await connect(replay)
    markets = await ex.markets()
    assert {perp("BTC"), perp("ETH"), perp("HPOS")} <= set(markets)
    assert markets[perp("BTC")].size_step == pytest.approx(1e-5)
    assert markets[perp("HPOS")].size_step == 1.0
    # the mark (markPx 14.3161), not the mid (midPx 14.314): what stops trigger on
    assert (await ex.ticker(perp("BTC"))).last == 14.3161
    assert (await ex.ticker(perp("ETH"))).last == 6.0436
    candles = await ex.candles(perp("BTC"), "1m", limit=2)
    assert [(c.ts, c.open, c.high, c.low, c.close, c.volume) for c in candles] == [
        (1710552360.0, 69584.0, 69610.0, 69474.0, 69483.0, 6.83271),
        (1710552420.0, 69471.0, 69497.0, 69465.0, 69497.0, 0.88301),
    ]
    candle_req = next(r for r in replay.requests if r["type"] == "candleSnapshot")
    assert candle_req["req"]["coin"] == "BTC" and candle_req["req"]["interval"] == "1m"


# -- account ---------------------------------------------------------------------------------


async def test_positions_balance_and_leverage_from_recorded_clearinghouse_states(
    connect: Connect,
) -> None:
    marks = {"SOL": (2, 138.0), "ETH": (4, 3800.0), "HYPE": (2, 48.0)}
    replay = Replay(
        {"metaAndAssetCtxs": universe(marks), "clearinghouseState": payload("clearinghouse_state")}
    )
    ex = await connect(replay)
    [hype] = await ex.positions()
    assert (hype.symbol, hype.side, hype.size, hype.entry_price) == (
        perp("HYPE"),
        PositionSide.SHORT,
        4.0,
        47.9932,
    )
    assert (hype.unrealized_pnl, hype.leverage) == (-0.6071, 10.0)
    assert hype.liquidation_price == 50.2724802381  # shown on the position chart
    assert await ex.leverage_setting(perp("HYPE")) == LeverageSetting(
        perp("HYPE"), 10.0, "isolated"
    )
    assert "activeAssetData" not in replay.types()  # the position says it
    balance = await ex.balance()
    assert (balance.currency, balance.total) == ("USDC", 76.206517)
    assert await ex.server_time() == 1761803589.961

    replay.info["clearinghouseState"] = payload("clearinghouse_state_cross")
    held = {p.symbol: p for p in await ex.positions()}
    assert held[perp("SOL")].side is PositionSide.LONG and held[perp("SOL")].size == 3.34
    assert held[perp("ETH")].size == 3.6 and held[perp("ETH")].leverage == 20.0
    assert {p.liquidation_price for p in held.values()} == {None}  # null: none reported
    assert await ex.leverage_setting(perp("SOL")) == LeverageSetting(perp("SOL"), 20.0, "cross")


async def test_leverage_of_a_coin_without_a_position_is_read_from_active_asset_data(
    connect: Connect,
) -> None:
    marks = {"BTC": (5, 116925.0), "HYPE": (2, 48.0)}
    replay = Replay(
        {
            "metaAndAssetCtxs": universe(marks),
            "clearinghouseState": payload("clearinghouse_state"),  # HYPE only
            "activeAssetData": payload("active_asset_data"),
        }
    )
    ex = await connect(replay)
    assert await ex.leverage_setting(perp("BTC")) == LeverageSetting(perp("BTC"), 20.0, "cross")
    asked = next(r for r in replay.requests if r["type"] == "activeAssetData")
    assert asked == {"type": "activeAssetData", "user": WALLET, "coin": "BTC"}
    assert replay.actions == []  # read only


async def test_a_recorded_trigger_order_and_order_status(connect: Connect) -> None:
    marks = {"ADA": (0, 0.45), "ETH": (4, 1100.0)}
    replay = Replay(
        {
            "metaAndAssetCtxs": universe(marks),
            "frontendOpenOrders": payload("frontend_open_orders"),
            "orderStatus": payload("order_status"),
            "userFills": payload("user_fills"),
        }
    )
    ex = await connect(replay)
    [stop] = await ex.open_stops()
    assert (stop.symbol, stop.id, stop.side, stop.size, stop.trigger_price) == (
        perp("ADA"),
        "8670685324",
        OrderSide.BUY,
        40.0,
        0.6,
    )
    assert stop.state is StopState.LIVE and not stop.reduce_only and not stop.whole_position
    assert stop.client_id is None and not stop.placed_by_warden  # no cloid: set elsewhere
    assert await ex.open_orders() == []  # a trigger order is a stop, not a resting order
    order = await ex.get_order(perp("ETH"), order_id="6463065738")
    assert order is not None
    assert (order.id, order.side, order.size, order.filled, order.status) == (
        "6463065738",
        OrderSide.BUY,
        0.2,
        0.2,
        OrderStatus.FILLED,
    )
    status_req = next(r for r in replay.requests if r["type"] == "orderStatus")
    # the recorded request: {"type":"orderStatus","oid":3998833804,"user":...} (an integer oid)
    assert status_req == {"type": "orderStatus", "user": WALLET, "oid": 6463065738}


def test_recorded_history_entries_of_one_order_keep_the_latest() -> None:
    """The venue lists one order twice (open, then canceled) with ids and times once as
    strings, once as numbers: one order, canceled."""
    [entry] = latest_by_oid(payload("historical_orders"))
    assert entry["status"] == "canceled"


async def test_recorded_fills_with_builder_fees_and_other_dexes(connect: Connect) -> None:
    marks = {"HYPE": (2, 25.6), "SOL": (2, 132.0)}
    replay = Replay(
        {
            "metaAndAssetCtxs": universe(marks),
            "userFills": payload("user_fills"),
            "userFillsByTime": payload("user_fills_by_time"),
            "historicalOrders": payload("historical_orders"),
        }
    )
    ex = await connect(replay)
    fills = await ex.fills()
    # the two flx:CRCL fills belong to a builder-deployed dex: not Warden's USDC perps
    assert [(f.symbol, f.order_id, f.side, f.size, f.price) for f in fills] == [
        (perp("HYPE"), "296683658818", OrderSide.SELL, 1.0, 25.585),
        (perp("HYPE"), "298509207410", OrderSide.SELL, 5.2, 21.147),
        (perp("HYPE"), "314848230306", OrderSide.BUY, 0.73, 33.209),
    ]
    assert fills[0].fee == pytest.approx(0.01361 + 0.002558)  # exchange fee + builder fee
    assert fills[0].reduce_only and not fills[2].reduce_only
    [sol] = await ex.fills(since=1709643346.0)
    assert (sol.symbol, sol.size, sol.price, sol.fee) == (perp("SOL"), 0.5, 132.31, 0.023154)
    by_time = next(r for r in replay.requests if r["type"] == "userFillsByTime")
    assert by_time["startTime"] == 1709643346000 and by_time["user"] == WALLET


# -- writes ----------------------------------------------------------------------------------


async def test_an_entry_sets_leverage_then_reads_the_recorded_fill(connect: Connect) -> None:
    marks = {"APE": (1, 4.33), "ARB": (1, 1.22), "HYPE": (2, 25.6)}
    replay = Replay(
        {
            "metaAndAssetCtxs": universe(marks),
            "allMids": payload("all_mids"),  # the docs' example: APE and ARB, no HYPE
            "userFills": payload("user_fills"),
        },
        {
            "updateLeverage": payload("exchange_update_leverage"),
            "order": payload("exchange_order_filled"),
        },
    )
    ex = await connect(replay, leverage=3, margin_mode="cross")
    with pytest.raises(NotSent, match="not sent: cannot read the HYPE/USDC:USDC mid price"):
        await ex.place_market_order(perp("HYPE"), OrderSide.SELL, 1.0, "wd0a1b2ce1")
    assert [a["type"] for a in replay.actions] == ["updateLeverage"]

    replay.info["allMids"] = payload("all_mids") | {"HYPE": "25.6"}
    order = await ex.place_market_order(perp("HYPE"), OrderSide.SELL, 1.0, "wd0a1b2ce1")
    assert (order.id, order.filled, order.average_price, order.status) == (
        "296683658818",
        1.0,
        25.585,
        OrderStatus.FILLED,
    )
    assert order.fee == pytest.approx(0.01361 + 0.002558)
    lever, sent = replay.actions
    # the recorded setMarginMode request: one action carrying isCross and leverage
    recorded = json.loads((PAYLOADS / "exchange_update_leverage.json").read_text())
    assert lever.keys() == recorded["request_recorded"].keys()
    assert lever == {"type": "updateLeverage", "asset": 2, "isCross": True, "leverage": 3}
    [wire] = sent["orders"]
    assert wire["c"] == to_cloid("wd0a1b2ce1") and wire["t"] == {"limit": {"tif": "Ioc"}}


async def test_a_stop_answered_with_the_bare_waiting_for_trigger(connect: Connect) -> None:
    """ccxt recorded "waitingForTrigger" as the whole status of each trigger order of a
    grouped placement; a lone stop's reply carries that status alone."""
    recorded = payload("exchange_order_waiting_for_trigger")
    bare = recorded["response"]["data"]["statuses"][1]
    assert bare == "waitingForTrigger"
    reply = {"status": "ok", "response": {"type": "order", "data": {"statuses": [bare]}}}
    replay = Replay({"metaAndAssetCtxs": universe({"HYPE": (2, 25.6)})}, {"order": reply})
    ex = await connect(replay)
    ack = await ex.place_stop(perp("HYPE"), OrderSide.SELL, 1.0, 20.0, "wd0a1b2cs2")
    assert (ack.client_id, ack.id) == ("wd0a1b2cs2", None)  # no id: read back by cloid
    [wire] = replay.actions[0]["orders"]
    # the shape ccxt recorded for a stop ("stopLossprice order on longPosition"), with the
    # limit 10% (stop_slippage_percent) below the trigger, reduce-only and Warden's cloid
    assert wire["t"] == {"trigger": {"isMarket": True, "triggerPx": "20", "tpsl": "sl"}}
    assert (wire["b"], wire["p"], wire["r"], wire["c"]) == (
        False,
        "18",
        True,
        to_cloid("wd0a1b2cs2"),
    )


async def test_a_cancel_answered_as_documented(connect: Connect) -> None:
    replay = Replay(
        {"metaAndAssetCtxs": universe({"ADA": (0, 0.45)})}, {"cancel": payload("exchange_cancel")}
    )
    ex = await connect(replay)
    await ex.cancel_stop(perp("ADA"), "8670685324")
    # the recorded cancel request: {"type":"cancel","cancels":[{"a":5,"o":6466108935}]}
    assert replay.actions == [{"type": "cancel", "cancels": [{"a": 0, "o": 8670685324}]}]


# -- the cases Warden must survive -----------------------------------------------------------


async def test_a_position_tpsl_and_a_sized_stop_set_in_the_ui(connect: Connect) -> None:
    replay = Replay(
        {
            "metaAndAssetCtxs": universe({"BTC": (5, 69000.0), "ETH": (4, 1950.0)}),
            "frontendOpenOrders": payload("case_position_tpsl"),
        }
    )
    ex = await connect(replay)
    whole, sized = await ex.open_stops()
    assert (whole.symbol, whole.side, whole.trigger_price, whole.state) == (
        perp("BTC"),
        OrderSide.SELL,
        65000.0,
        StopState.LIVE,
    )
    assert (whole.whole_position, whole.size, whole.reduce_only, whole.client_id) == (
        True,
        0.0,
        True,
        None,
    )
    assert not whole.placed_by_warden
    assert (sized.symbol, sized.size, sized.whole_position, sized.placed_by_warden) == (
        perp("ETH"),
        0.1,
        False,
        False,
    )


async def test_invalid_tpsl_price_is_a_stop_that_would_trigger(connect: Connect) -> None:
    replay = Replay(
        {"metaAndAssetCtxs": universe({"BTC": (5, 69000.0)})},
        {"order": payload("case_invalid_tpsl_price")},
    )
    ex = await connect(replay)
    with pytest.raises(StopWouldTrigger, match=r"Invalid TP/SL price\. asset=0"):
        await ex.place_stop(perp("BTC"), OrderSide.SELL, 0.001, 65000.0, "wd0a1b2cs2")
    [wire] = replay.actions[0]["orders"]
    assert float(wire["p"]) < float(wire["t"]["trigger"]["triggerPx"])  # not the limit's fault


async def test_a_stop_that_fired_and_rests_unfilled_is_never_live(connect: Connect) -> None:
    case = payload("case_triggered_resting_stop")
    replay = Replay(
        {
            "metaAndAssetCtxs": universe({"BTC": (5, 58000.0)}),
            "historicalOrders": case["historicalOrders"],
            "frontendOpenOrders": case["frontendOpenOrders"],
            "orderStatus": case["orderStatus"],
        }
    )
    ex = await connect(replay)
    assert await ex.open_stops() == []
    stop = await ex.get_stop(perp("BTC"), client_id="wd0a1b2cs2")
    assert stop is not None and stop.state is StopState.TRIGGERED
    assert stop.client_id == "wd0a1b2cs2"
    [ended] = await ex.stop_history(perp("BTC"))
    assert (ended.id, ended.state, ended.client_id) == (
        "48811214540",
        StopState.TRIGGERED,
        "wd0a1b2cs2",
    )
    [resting] = await ex.open_orders()
    assert (resting.id, resting.reduce_only, resting.status) == (
        "48811214540",
        True,
        OrderStatus.OPEN,
    )


def test_a_fill_of_a_fired_stops_limit_is_the_stops_fill() -> None:
    """When the resting limit of a fired stop fills, its order record no longer says
    ``isTrigger``; the fill is still the stop's."""
    [record] = payload("case_triggered_resting_stop")["frontendOpenOrders"]
    fill = payload("user_fills")[0] | {"oid": record["oid"], "coin": "BTC", "dir": "Close Long"}
    parsed = parse_fill(fill, perp("BTC"), {str(record["oid"]): record})
    assert parsed.stop_id == "48811214540" and parsed.client_id == "wd0a1b2cs2"
