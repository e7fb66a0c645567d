"""Bad input (issue 8), Hyperliquid payloads: the Hyperliquid parse functions and adapter fed
missing fields, wrong types, NaN/huge/negative numbers and wrong JSON: the parse error
(``Malformed``) or the port's taxonomy (``ExchangeError``), never a position, order, stop or fill
with a NaN, infinite or negative size or price. Property-based (hypothesis, derandomized; shared
settings and generators in tests/rig_bad_input.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import ccxt.async_support  # noqa: F401  imported once for the session, as the adapters do
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests import rig_bad_input
from tests.rig_bad_input import (
    TRIED,
    fuzz,
    junk_json,
    junk_scalar,
    mutated,
    only_port_errors,
    parses_or_bad_payload,
    record,
    returning,
)
from trading.adapters import hyperliquid_parse as hp
from trading.adapters.hyperliquid import HyperliquidExchange

pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
_report_examples = rig_bad_input._report_examples  # the fixture, from tests/rig_bad_input.py

# --- exchange payloads: Hyperliquid ---------------------------------------------------------------

HL_ORDER = {
    "coin": "BTC",
    "side": "B",
    "limitPx": "69100.0",
    "sz": "0.0",
    "origSz": "0.01",
    "oid": 123,
    "timestamp": 1767225600000,
    "cloid": hp.to_cloid("wdabc123e1"),
    "reduceOnly": False,
    "isTrigger": False,
    "orderType": "Market",
}
HL_STOP = {
    **HL_ORDER,
    "side": "A",
    "oid": 124,
    "sz": "0.01",
    "isTrigger": True,
    "triggerPx": "65600.0",
    "orderType": "Stop Market",
    "reduceOnly": True,
}
HL_FILL = {
    "coin": "BTC",
    "px": "69060.1",
    "sz": "0.01",
    "side": "B",
    "time": 1767225600100,
    "oid": 123,
    "fee": "0.03",
    "dir": "Open Long",
}
HL_POSITION = {
    "coin": "BTC",
    "szi": "0.01",
    "entryPx": "69060.1",
    "unrealizedPnl": "1.5",
    "leverage": {"type": "cross", "value": 5},
}
HL_MARKET: dict[str, Any] = {
    "swap": True,
    "settle": "USDC",
    "active": True,
    "base": "BTC",
    "quote": "USDC",
    "baseName": "BTC",
    "precision": {"amount": 0.00001, "price": 0.1},
    "info": {},
}


def symbol_of(coin: object) -> str | None:
    return "BTC/USDC:USDC" if coin == "BTC" else None


@fuzz(200)
@given(
    order=mutated(HL_ORDER),
    stop=mutated(HL_STOP),
    status=st.sampled_from(["open", "filled", "triggered", "canceled", "rejected", "x"])
    | junk_scalar,
    fill=mutated(HL_FILL),
    position=mutated(HL_POSITION),
    state=junk_json,
    market=st.one_of(
        mutated(HL_MARKET),
        st.builds(lambda p: {**HL_MARKET, "precision": p}, record(HL_MARKET["precision"])),
    ),
    payload=junk_json,
    text=st.text(max_size=40) | st.builds(lambda j: "hyperliquid " + json.dumps(j), junk_json),
)
def test_hyperliquid_payloads_parse_or_raise_malformed(
    order: Any,
    stop: Any,
    status: Any,
    fill: Any,
    position: Any,
    state: Any,
    market: Any,
    payload: Any,
    text: str,
) -> None:
    TRIED["hyperliquid payloads"] += 1
    bad = hp.Malformed
    status_text = status if isinstance(status, str) else "open"
    parses_or_bad_payload(
        lambda: hp.parse_order(order, status_text, "BTC/USDC:USDC", [fill], None), bad
    )
    parses_or_bad_payload(lambda: hp.parse_stop(stop, status_text, status, "BTC/USDC:USDC"), bad)
    parses_or_bad_payload(lambda: hp.parse_fill(fill, "BTC/USDC:USDC", {"123": order}), bad)
    parses_or_bad_payload(lambda: hp.fill_summary([fill], "123"), bad)
    parses_or_bad_payload(
        lambda: hp.parse_positions({"assetPositions": [{"position": position}]}, symbol_of), bad
    )
    parses_or_bad_payload(lambda: hp.parse_positions({"assetPositions": state}, symbol_of), bad)
    parses_or_bad_payload(lambda: hp.mark_prices(payload), bad)
    parses_or_bad_payload(lambda: hp.parse_order_status(payload), bad)
    parses_or_bad_payload(lambda: hp.open_orders(payload), bad)
    parses_or_bad_payload(lambda: hp.latest_by_oid([{"order": stop, "status": status}]), bad)
    parses_or_bad_payload(
        lambda: hp.ended_stops(
            [{"order": stop, "status": status, "statusTimestamp": 1}], symbol_of
        ),
        bad,
    )
    parses_or_bad_payload(lambda: hp.ended_stops(payload, symbol_of), bad)
    parses_or_bad_payload(lambda: hp.parse_fills([fill], [{"order": order}], symbol_of), bad)
    parses_or_bad_payload(lambda: hp.parse_fills(payload, state, symbol_of), bad)
    parses_or_bad_payload(lambda: hp.parse_markets({"BTC/USDC:USDC": market}), bad)
    if isinstance(status, str):
        assert hp.stop_state(status)[0] is not None
    assert hp.from_cloid(payload) is None or isinstance(hp.from_cloid(payload), str)
    assert isinstance(hp.exchange_reason(text), str)


# --- the Hyperliquid adapter fed any answer -------------------------------------------------------


@pytest.fixture
async def hl_junk() -> AsyncIterator[HyperliquidExchange]:
    from tests.rig_hyperliquid import PRIVATE_KEY, WALLET

    hl = HyperliquidExchange("hl", "main", WALLET, PRIVATE_KEY, sandbox=True)
    hl.client.load_markets = returning({"BTC/USDC:USDC": HL_MARKET})
    try:
        yield hl
    finally:
        await hl.client.close()


@fuzz(100)
@given(
    order=mutated(HL_ORDER),
    stop=mutated(HL_STOP),
    fill=mutated(HL_FILL),
    position=mutated(HL_POSITION),
    status=st.sampled_from(["open", "filled", "canceled", "rejected"]) | junk_scalar,
    wrapper=junk_json,
    row=st.lists(junk_scalar, max_size=7),
)
async def test_the_hyperliquid_adapter_turns_any_answer_into_models_or_port_errors(
    hl_junk: HyperliquidExchange,
    order: Any,
    stop: Any,
    fill: Any,
    position: Any,
    status: Any,
    wrapper: Any,
    row: list[Any],
) -> None:
    TRIED["hyperliquid adapter answers"] += 1
    answers: dict[str, Any] = {
        "clearinghouseState": {"assetPositions": [{"position": position}], "time": wrapper},
        "metaAndAssetCtxs": [{"universe": [{"name": "BTC"}]}, [{"markPx": wrapper}]],
        "allMids": {"BTC": wrapper},
        "userFills": [fill, wrapper],
        "orderStatus": {"status": "order", "order": {"order": order, "status": status}},
        "frontendOpenOrders": [order, stop, wrapper],
        "historicalOrders": [{"order": stop, "status": status, "statusTimestamp": wrapper}],
    }

    async def info(request: dict[str, Any], *_: Any, **__: Any) -> Any:
        return answers.get(request.get("type", ""), wrapper)

    hl_junk.client.publicPostInfo = info
    hl_junk.client.fetch_balance = returning({"USDC": {"total": wrapper, "used": 0, "free": 1}})
    hl_junk.client.fetch_ohlcv = returning([row])
    sym = "BTC/USDC:USDC"
    calls: list[Callable[[], Awaitable[object]]] = [
        hl_junk.positions,
        hl_junk.balance,
        lambda: hl_junk.candles(sym, "30m"),
        lambda: hl_junk.ticker(sym),
        lambda: hl_junk.get_order(sym, client_id="wdabc123e1"),
        lambda: hl_junk.get_stop(sym, client_id="wdabc123s2"),
        hl_junk.open_orders,
        hl_junk.open_stops,
        hl_junk.stop_history,
        hl_junk.fills,
        hl_junk.server_time,
    ]
    for call in calls:
        await only_port_errors(call)
