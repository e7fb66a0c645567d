"""Bad input (issue 8), OKX payloads: the OKX parse functions and the OKX adapter fed missing
fields, wrong types, NaN/huge/negative numbers and wrong JSON: the parse error (``BadPayload``)
or the port's taxonomy (``ExchangeError``), never a position, order, stop or fill with a NaN,
infinite or negative size or price. Property-based (hypothesis, derandomized; shared settings
and generators in tests/rig_bad_input.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
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
    sane,
)
from trading.adapters import okx_parse as op
from trading.adapters.okx import OkxExchange

pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
_report_examples = rig_bad_input._report_examples  # the fixture, from tests/rig_bad_input.py

# --- exchange payloads: OKX -----------------------------------------------------------------------

CONTRACT = op.Contract(
    symbol="BTC/USDT:USDT",
    inst_id="BTC-USDT-SWAP",
    base="BTC",
    quote="USDT",
    ct_val=Decimal("0.01"),
    lot=Decimal("0.01"),
    min_sz=Decimal("0.01"),
    tick=Decimal("0.1"),
)
OKX_ORDER = {
    "instId": "BTC-USDT-SWAP",
    "ordId": "7001",
    "clOrdId": "wdabc123e1",
    "side": "buy",
    "sz": "1",
    "accFillSz": "1",
    "avgPx": "69060.1",
    "state": "filled",
    "reduceOnly": "false",
    "fee": "-0.03",
    "cTime": "1767225600000",
    "uTime": "1767225600100",
}
OKX_ALGO = {
    "instId": "BTC-USDT-SWAP",
    "algoId": "8001",
    "algoClOrdId": "wdabc123s2",
    "side": "sell",
    "sz": "1",
    "slTriggerPx": "65600",
    "state": "live",
    "failCode": "",
    "reduceOnly": "true",
    "ordType": "conditional",
    "cTime": "1767225600000",
    "uTime": "1767225600100",
}
OKX_POSITION = {
    "instId": "BTC-USDT-SWAP",
    "pos": "1",
    "posSide": "net",
    "avgPx": "69060.1",
    "upl": "1.5",
    "lever": "5",
}
OKX_FILL = {
    "instId": "BTC-USDT-SWAP",
    "ordId": "7001",
    "clOrdId": "wdabc123e1",
    "billId": "9001",
    "side": "buy",
    "fillSz": "1",
    "fillPx": "69060.1",
    "fee": "-0.03",
    "ts": "1767225600100",
}
OKX_BALANCE = {"ccy": "USDT", "eq": "10000", "availEq": "9000", "frozenBal": "1000"}
OKX_MARKET: dict[str, Any] = {
    "symbol": "BTC/USDT:USDT",
    "base": "BTC",
    "quote": "USDT",
    "settle": "USDT",
    "swap": True,
    "linear": True,
    "info": {
        "instId": "BTC-USDT-SWAP",
        "ctVal": "0.01",
        "lotSz": "0.01",
        "minSz": "0.01",
        "tickSz": "0.1",
        "state": "live",
    },
}
OKX_CONFIG = {"posMode": "net_mode", "acctLv": "2", "perm": "read_only,trade"}


# Functions typed to take a record (a Mapping) get records with any field missing or wrong;
# those that take a whole answer get any JSON at all.
@fuzz(200)
@given(
    order=mutated(OKX_ORDER),
    algo=mutated(OKX_ALGO),
    position=mutated(OKX_POSITION),
    fill=mutated(OKX_FILL),
    balance=record(OKX_BALANCE),
    market=st.one_of(
        mutated(OKX_MARKET),
        st.builds(lambda i: {**OKX_MARKET, "info": i}, record(OKX_MARKET["info"])),
    ),
    account=record(OKX_CONFIG),
    data=junk_json,
    row=st.lists(junk_scalar, max_size=7) | junk_json,
    text=st.text(max_size=40) | st.builds(lambda j: "okx " + json.dumps(j), junk_json),
)
def test_okx_payloads_parse_or_raise_bad_payload(
    order: Any,
    algo: Any,
    position: Any,
    fill: Any,
    balance: Any,
    market: Any,
    account: Any,
    data: Any,
    row: Any,
    text: str,
) -> None:
    TRIED["okx payloads"] += 1
    bad = op.BadPayload
    parses_or_bad_payload(lambda: op.order_from(order, CONTRACT), bad)
    parses_or_bad_payload(lambda: op.stop_from(algo, CONTRACT), bad)
    parses_or_bad_payload(lambda: op.stop_state(algo), bad)
    parses_or_bad_payload(lambda: op.position_from(position, CONTRACT), bad)
    parses_or_bad_payload(lambda: op.fill_from(fill, CONTRACT, "8001"), bad)
    parses_or_bad_payload(lambda: op.balance_from({"data": [{"details": [balance]}]}), bad)
    parses_or_bad_payload(lambda: op.balance_from({"data": data}), bad)
    parses_or_bad_payload(lambda: op.account_config_from({"data": [account]}), bad)
    parses_or_bad_payload(lambda: op.account_config_from({"data": data}), bad)
    parses_or_bad_payload(lambda: op.candle_from(row), bad)
    parses_or_bad_payload(lambda: op.triggered_orders([algo, order]), bad)
    parses_or_bad_payload(lambda: op.oldest_id([order, fill], "ordId", "cTime"), bad)
    contract = parses_or_bad_payload(lambda: op.contract_from(market), bad)
    if isinstance(contract, op.Contract):
        assert sane(contract.market), contract
    code, msg = op.error_payload(text)
    assert code is None or isinstance(code, str)
    assert msg is None or isinstance(msg, str)
    assert isinstance(op.short_text(text), str)


# --- the OKX adapter fed any answer ---------------------------------------------------------------


@pytest.fixture
async def okx_junk() -> AsyncIterator[OkxExchange]:
    okx = OkxExchange("okx", "main", "key", "secret", "pass", sandbox=True)
    okx._ex.load_markets = returning({"BTC/USDT:USDT": OKX_MARKET})
    okx._ex.privateGetAccountConfig = returning({"code": "0", "data": [OKX_CONFIG]})
    try:
        yield okx
    finally:
        await okx.close()


@fuzz(100)
@given(
    order=mutated(OKX_ORDER),
    algo=mutated(OKX_ALGO),
    position=mutated(OKX_POSITION),
    fill=mutated(OKX_FILL),
    balance=record(OKX_BALANCE),
    row=st.lists(junk_scalar, max_size=7),
    wrapper=junk_json,
)
async def test_the_okx_adapter_turns_any_answer_into_models_or_port_errors(
    okx_junk: OkxExchange,
    order: Any,
    algo: Any,
    position: Any,
    fill: Any,
    balance: Any,
    row: list[Any],
    wrapper: Any,
) -> None:
    TRIED["okx adapter answers"] += 1
    ex, sym = okx_junk._ex, "BTC/USDT:USDT"
    ex.fetch_positions = returning([{"info": position}, wrapper])
    ex.fetch_balance = returning({"info": {"data": [{"details": [balance]}]}})
    ex.fetch_ohlcv = returning([row, wrapper])
    ex.fetch_ticker = returning(wrapper if isinstance(wrapper, dict) else {"last": wrapper})
    ex.fetch_order = returning({"info": order})
    ex.fetch_open_orders = returning([{"info": order}, {"info": algo}, wrapper])
    ex.fetch_my_trades = returning([{"info": fill}])
    ex.fetch_closed_orders = returning([{"info": algo}])
    ex.fetch_canceled_orders = returning([{"info": algo}])
    ex.fetch_time = returning(wrapper)
    ex.create_order = returning(wrapper if isinstance(wrapper, dict) else {"id": wrapper})
    calls: list[Callable[[], Awaitable[object]]] = [
        okx_junk.positions,
        okx_junk.balance,
        lambda: okx_junk.candles(sym, "30m"),
        lambda: okx_junk.ticker(sym),
        lambda: okx_junk.get_order(sym, client_id="wdabc123e1"),
        lambda: okx_junk.get_stop(sym, client_id="wdabc123s2"),
        okx_junk.open_orders,
        okx_junk.open_stops,
        okx_junk.stop_history,
        okx_junk.fills,
        okx_junk.server_time,
    ]
    for call in calls:
        await only_port_errors(call)
