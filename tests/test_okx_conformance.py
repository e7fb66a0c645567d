"""The OKX adapter against answers nobody on this team wrote.

Every file under tests/venue_payloads/okx/ holds one answer and names where it comes from: a
live answer recorded by ccxt (ccxt/ccxt ts/src/test/static/response/okx.json, the method key
and its index), or, where ccxt recorded none, OKX's v5 documentation section it follows
(instruments, leverage, 51149/51054/51065/51068, closeFraction, oco, pause, acctLv 3/4 config).
A small local HTTP server replays them verbatim, with their HTTP status, to the REAL ccxt
client inside the REAL OkxExchange; the tests check the port's models and errors.

Endpoints Warden uses that ccxt's okx.json does not record: public/instruments,
trade/order-algo (GET), trade/orders-algo-history, trade/cancel-order, account/set-leverage,
account/leverage-info. The recorded ticker, candles, GET trade/order and fills are spot
answers (the only ones recorded): their fields are the swap ones.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt.async_support  # noqa: F401  imported once for the session, as the adapter does
import pytest
from aiohttp import web

from trading.adapters.okx import AccountModeError, OkxExchange
from trading.adapters.okx_parse import Contract, fill_from
from trading.errors import DuplicateClientId, NetworkError, Rejected, UnknownOutcome
from trading.models import OrderSide, OrderStatus, StopState

PAYLOADS = Path(__file__).parent / "venue_payloads" / "okx"
LTC, BTC, ADA = "LTC/USDT:USDT", "BTC/USDT:USDT", "ADA/USDT:USDT"

# (method, path under /api/v5/) -> payload file, for a healthy single-currency account
ROUTES = {
    ("GET", "public/instruments"): "public_instruments",
    ("GET", "public/time"): "public_time",
    ("GET", "market/ticker"): "market_ticker",
    ("GET", "market/candles"): "market_candles",
    ("GET", "account/config"): "account_config_acctlv2",
    ("GET", "account/balance"): "account_balance_multi_currency",
    ("GET", "account/positions"): "empty_list",
    ("GET", "account/leverage-info"): "account_leverage_info",
    ("POST", "account/set-leverage"): "account_set_leverage",
    ("POST", "trade/order"): "trade_order_post",
    ("GET", "trade/order"): "trade_orders_history_swap",
    ("GET", "trade/orders-pending"): "trade_orders_pending",
    ("POST", "trade/order-algo"): "trade_order_algo_post",
    ("GET", "trade/order-algo"): "trade_orders_algo_pending",
    ("GET", "trade/orders-algo-pending"): "trade_orders_algo_pending",
    ("GET", "trade/orders-algo-history"): "empty_list",
    ("POST", "trade/cancel-algos"): "trade_cancel_algos",
    ("GET", "trade/fills-history"): "trade_fills_history",
}


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return doc


@dataclass
class Replay:
    """Serves the stored answers verbatim; a path with no answer is a 404 the test sees."""

    routes: dict[tuple[str, str], str] = field(default_factory=lambda: dict(ROUTES))
    seen: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> Replay:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.text()
        path = request.path.removeprefix("/api/v5/")
        self.seen.append((request.method, path, dict(request.query), json.loads(raw or "null")))
        name = self.routes.get((request.method, path))
        if name is None:
            self.unknown.append(f"{request.method} {path}")
            return web.json_response({"code": "50000", "msg": "no payload", "data": []}, status=404)
        doc = load(name)
        return web.json_response(doc["payload"], status=doc["http_status"])

    def calls(self, method: str, path: str) -> list[tuple[dict[str, str], Any]]:
        return [(q, b) for m, p, q, b in self.seen if (m, p) == (method, path)]


@pytest.fixture
async def replay() -> AsyncIterator[Replay]:
    server = await Replay().start()
    try:
        yield server
    finally:
        await server.stop()
    assert server.unknown == [], f"paths with no stored answer: {server.unknown}"


@pytest.fixture
async def okx(replay: Replay) -> AsyncIterator[OkxExchange]:
    ex = OkxExchange(
        "okx", "main", "key", "secret", "passphrase", api_url=replay.url, rate_limit_ms=1
    )
    ex._ex.timeout_on_exit = 0
    try:
        yield ex
    finally:
        await ex.close()


def test_every_payload_names_its_source() -> None:
    files = sorted(PAYLOADS.glob("*.json"))
    assert len(files) >= 28
    for f in files:
        doc = json.loads(f.read_text())
        assert {"source", "endpoint", "http_status", "payload"} <= set(doc), f.name
        src = doc["source"]
        assert "ccxt/ccxt ts/src/test/static/response/okx.json" in src or "OKX v5 docs" in src
        if "OKX v5 docs" not in src:
            assert "method" in doc and doc["method"] in src, f.name  # the recorded method key


# -- public data ---------------------------------------------------------------------------------


async def test_markets_sizes_in_base_units_through_ct_val(okx: OkxExchange) -> None:
    markets = await okx.markets()
    assert sorted(markets) == [ADA, BTC, LTC]
    btc, ada = markets[BTC], markets[ADA]
    assert (btc.contract_size, btc.min_size, btc.size_step, btc.price_step) == (
        0.01,
        0.0001,
        0.0001,
        0.1,
    )
    assert (ada.contract_size, ada.min_size, ada.size_step) == (100, 100, 100)


async def test_time_ticker_and_candles_recorded_by_ccxt(okx: OkxExchange) -> None:
    assert await okx.server_time() == 1_712_250_348.676
    ticker = await okx.ticker(BTC)
    assert (ticker.last, ticker.ts) == (73_384.8, 1_710_328_243.709)
    candles = await okx.candles(BTC, "1h")
    # oldest first; for a swap ccxt takes the volume from column 6, volCcy, which OKX gives in
    # the base currency for contracts ("Get candlesticks"); in this spot recording that column
    # holds the quote volume, hence the large figures
    assert [(c.ts, c.open, c.high, c.low, c.close, c.volume) for c in candles] == [
        (1_706_630_400.0, 43_377.1, 43_500.0, 43_220.9, 43_495.9, 309_343_235.363089398),
        (1_706_634_000.0, 43_495.9, 43_591.7, 43_300.0, 43_398.6, 195_072_853.268772597),
        (1_706_637_600.0, 43_398.6, 43_493.9, 43_279.9, 43_373.9, 220_057_933.233687634),
    ]


# -- account ---------------------------------------------------------------------------------------


async def test_a_spot_mode_account_is_refused_before_any_private_read(
    replay: Replay, okx: OkxExchange
) -> None:
    replay.routes[("GET", "account/config")] = "account_config"  # ccxt's recorded: acctLv 1
    config = await okx.account_config()
    assert (config.pos_mode, config.acct_lv, config.perm) == (
        "net_mode",
        "1",
        "read_only,withdraw,trade",
    )
    with pytest.raises(AccountModeError, match="spot mode, which cannot trade swaps"):
        await okx.balance()
    assert replay.calls("GET", "account/balance") == []


@pytest.mark.parametrize("acct_lv", ["3", "4"])
async def test_multi_currency_account_sizes_from_adjusted_equity_not_the_usdt_line(
    replay: Replay, okx: OkxExchange, acct_lv: str
) -> None:
    """ccxt's recorded multi-currency account: USDT line 0.000258796, totalEq 43.7M USD (a
    TUSD line that is not collateral counts 43.5M), adjEq 152,550.8 USD. Warden's equity is
    adjEq, its free part availEq."""
    replay.routes[("GET", "account/config")] = f"account_config_acctlv{acct_lv}"
    bal = await okx.balance()
    assert (bal.currency, bal.total, bal.free) == ("USD", 152_550.80919105993, 151_083.76008402856)
    assert bal.used == pytest.approx(152_550.80919105993 - 151_083.76008402856)
    [(query, _)] = replay.calls("GET", "account/balance")
    assert "ccy" not in query


async def test_a_single_currency_account_reads_its_usdt_line(okx: OkxExchange) -> None:
    # the same recorded answer read as acctLv 2 would: the USDT line, here dust
    bal = await okx.balance()
    assert (bal.currency, bal.total, bal.free, bal.used) == ("USDT", 0.000258796, 0.0, 441.02)


async def test_a_hedge_mode_position_is_refused_not_misread(
    replay: Replay, okx: OkxExchange
) -> None:
    replay.routes[("GET", "account/positions")] = "account_positions"  # posSide long
    with pytest.raises(NetworkError, match="not in net position mode"):
        await okx.positions()


async def test_leverage_read_and_set_per_instrument_with_the_margin_mode(
    replay: Replay, okx: OkxExchange
) -> None:
    setting = await okx.leverage_setting(LTC)
    assert (setting.symbol, setting.leverage, setting.margin_mode) == (LTC, 3.0, "cross")
    await okx.prepare(LTC, 3)
    [(_, body)] = replay.calls("POST", "account/set-leverage")
    assert body == {"lever": 3, "mgnMode": "cross", "instId": "LTC-USDT-SWAP"}


# -- orders ----------------------------------------------------------------------------------------


async def test_a_market_order_goes_out_in_contracts_and_its_fill_is_read_back(
    replay: Replay, okx: OkxExchange
) -> None:
    order = await okx.place_market_order(LTC, OrderSide.BUY, 1.0, "wdconf1e1")

    [(_, body)] = replay.calls("POST", "trade/order")
    assert (body["sz"], body["clOrdId"], body["tdMode"], body["ordType"]) == (
        "1",
        "wdconf1e1",
        "cross",
        "market",
    )
    # the recorded filled swap order: 1 contract of 1 LTC at 68.24, fee 0.00003412 USDT
    assert (order.id, order.status, order.size, order.filled) == (
        "672515387010932736",
        OrderStatus.FILLED,
        1.0,
        1.0,
    )
    assert (order.average_price, order.fee, order.reduce_only) == (68.24, 0.00003412, False)
    assert order.client_id == "e847386590ce4dBC2f7dbb9924c2b77c"


async def test_orders_that_are_not_warden_swaps_are_left_out(
    replay: Replay, okx: OkxExchange
) -> None:
    [pending] = await okx.open_orders()  # the recorded ADA swap post-only order
    assert (pending.symbol, pending.size, pending.filled, pending.status) == (
        ADA,
        5_000.0,  # 50 contracts of 100 ADA
        0.0,
        OrderStatus.OPEN,
    )
    assert pending.average_price is None  # OKX sends "" before a fill
    replay.routes[("GET", "trade/order")] = "trade_order_get"  # a spot order, fee in LTC
    spot = await okx.get_order(LTC, client_id="e847386590ce4dBC6f7ae74854f6a617")
    assert spot is not None and spot.status is OrderStatus.FILLED and spot.average_price == 101.58


async def test_fills_recorded_are_spot_and_left_out_a_swap_fill_reads_in_base_units(
    okx: OkxExchange,
) -> None:
    assert await okx.fills() == []  # LTC-USDT spot: not a swap Warden trades
    info = load("trade_fills_history")["payload"]["data"][0]
    one = Decimal(1)
    ltc = Contract(LTC, "LTC-USDT-SWAP", "LTC", "USDT", one, one, one, Decimal("0.01"))
    fill = fill_from(info, ltc, None)
    assert (fill.size, fill.price, fill.fee, fill.ts) == (0.1, 67.84, 0.0001, 1_698_835_093.028)
    assert (fill.order_id, fill.client_id) == ("639895991331667968", info["clOrdId"])


# -- stops -----------------------------------------------------------------------------------------


async def test_a_recorded_conditional_stop_is_live_in_base_units(
    replay: Replay, okx: OkxExchange
) -> None:
    [stop] = await okx.open_stops(LTC)
    [(query, _)] = replay.calls("GET", "trade/orders-algo-pending")
    assert query["ordType"] == "conditional,oco"
    assert (stop.id, stop.state, stop.fail_code) == ("2017146754403004416", StopState.LIVE, None)
    assert (stop.side, stop.size, stop.trigger_price) == (OrderSide.BUY, 1.0, 100.0)
    assert (stop.reduce_only, stop.whole_position, stop.placed_by_warden) == (False, False, False)
    assert (stop.created_at, stop.updated_at) == (1_732_618_057.878, 1_732_618_057.878)
    assert await okx.get_stop(LTC, stop_id=stop.id) == stop


async def test_a_stop_placement_answer_and_a_cancel(replay: Replay, okx: OkxExchange) -> None:
    ack = await okx.place_stop(LTC, OrderSide.SELL, 2.0, 85.0, "wdconf1s1")
    [(_, body)] = replay.calls("POST", "trade/order-algo")
    assert (body["ordType"], body["sz"], body["slTriggerPx"], body["algoClOrdId"]) == (
        "conditional",
        "2",
        "85",
        "wdconf1s1",
    )
    assert (ack.client_id, ack.id) == ("wdconf1s1", "2896574163517353984")
    await okx.cancel_stop(LTC, "2903938004064555008")
    [(_, cancel)] = replay.calls("POST", "trade/cancel-algos")
    assert cancel == [{"algoId": "2903938004064555008", "instId": "LTC-USDT-SWAP"}]


@pytest.mark.parametrize(
    ("payload", "whole", "size", "trigger", "reduce_only"),
    [
        ("algo_close_fraction", True, 0.0, 85.0, True),  # closeFraction "1", sz ""
        ("algo_oco", False, 1.0, 85.0, False),  # the stop-loss leg of an oco
    ],
)
async def test_stops_set_in_okx_app_are_read(
    replay: Replay,
    okx: OkxExchange,
    payload: str,
    whole: bool,
    size: float,
    trigger: float,
    reduce_only: bool,
) -> None:
    replay.routes[("GET", "trade/orders-algo-pending")] = payload
    replay.routes[("GET", "trade/order-algo")] = payload
    [stop] = await okx.open_stops()
    assert (stop.whole_position, stop.size, stop.trigger_price, stop.state) == (
        whole,
        size,
        trigger,
        StopState.LIVE,
    )
    assert (stop.reduce_only, stop.side, stop.client_id, stop.placed_by_warden) == (
        reduce_only,
        OrderSide.SELL,
        None,
        False,
    )
    assert await okx.get_stop(LTC, stop_id=stop.id) == stop


async def test_a_paused_stop_is_not_protection(replay: Replay, okx: OkxExchange) -> None:
    replay.routes[("GET", "trade/orders-algo-pending")] = "algo_pause"
    replay.routes[("GET", "trade/order-algo")] = "algo_pause"
    assert await okx.open_stops() == []
    paused = await okx.get_stop(LTC, stop_id="2017146754403004419")
    assert (
        paused is not None and paused.state is StopState.PAUSED and paused.state.terminal is False
    )


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "path", "code"),
    [
        ("error_51149_order_timed_out", "trade/order", "51149"),
        ("error_51054_request_timed_out", "trade/order", "51054"),
        ("error_51149_order_timed_out", "trade/order-algo", "51149"),
        ("error_51054_request_timed_out", "trade/order-algo", "51054"),
    ],
)
async def test_timed_out_placements_are_unknown_outcomes_never_refusals(
    replay: Replay, okx: OkxExchange, payload: str, path: str, code: str
) -> None:
    replay.routes[("POST", path)] = payload
    with pytest.raises(UnknownOutcome) as exc:
        if path == "trade/order":
            await okx.place_market_order(LTC, OrderSide.BUY, 1.0, "wdconf1e1")
        else:
            await okx.place_stop(LTC, OrderSide.SELL, 1.0, 85.0, "wdconf1s1")
    assert not isinstance(exc.value, Rejected) and code in str(exc.value)
    assert exc.value.client_id in ("wdconf1e1", "wdconf1s1")
    assert len(replay.calls("POST", path)) == 1  # nothing sent again


@pytest.mark.parametrize(
    "payload", ["error_51065_algo_client_id_exists", "error_51068_algo_client_id_exists"]
)
async def test_a_reused_algo_client_id_is_already_placed(
    replay: Replay, okx: OkxExchange, payload: str
) -> None:
    replay.routes[("POST", "trade/order-algo")] = payload
    with pytest.raises(DuplicateClientId) as exc:
        await okx.place_stop(LTC, OrderSide.SELL, 1.0, 85.0, "wdconf1s1")
    assert exc.value.code == load(payload)["payload"]["data"][0]["sCode"]
