"""OKX v5 answers -> Warden models and errors: the only place OKX's own field names are read.

Pure functions over the raw dicts ccxt hands back in ``info`` (ccxt's unified fields lose what
matters here: it maps an algo order's ``order_failed`` to ``canceled`` and drops ``failCode``),
and over the OKX answer ccxt quotes in its exceptions (``sCode``/``code``). OKX sizes are
contracts; ``Contract`` converts them to base units and back with exact decimals. Anything
missing or unreadable raises ``BadPayload``, never a silent default.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from trading.adapters.ccxt_errors import translate
from trading.errors import (
    DuplicateClientId,
    ExchangeError,
    NetworkError,
    RateLimited,
    Rejected,
    StopWouldTrigger,
    UnknownOutcome,
)
from trading.models import (
    Balance,
    Candle,
    Fill,
    LeverageSetting,
    Market,
    Order,
    OrderSide,
    OrderStatus,
    Position,
    PositionSide,
    StopOrder,
    StopState,
)

SETTLE = "USDT"
STOP_WOULD_TRIGGER = frozenset({"51278", "51280"})  # SL trigger on the wrong side of last
# 51016: a reused clOrdId (trade/order); 51065 and 51068: a reused algoClOrdId
# (trade/order-algo). OKX v5 docs, "Error Code" > "REST API" > "Trade"
# (https://www.okx.com/docs-v5/en/#error-code-rest-api-trade). All mean "already placed".
DUPLICATE_CLIENT_ID = frozenset({"51016", "51065", "51068"})
# 51149 "Order timed out" and 51054 "Request timed out" come with HTTP 500 and OKX documents
# the outcome as unknown (same table): the order may exist, so ask by client id, never resend.
OUTCOME_UNKNOWN = frozenset({"51149", "51054"})
RATE_LIMIT = frozenset({"50011", "50040", "50061"})
NOT_FOUND = frozenset({"51603"})
ERROR_TEXT_MAX = 240

# the algo order's own state (GET trade/order-algo, orders-algo-pending, orders-algo-history);
# ``pause`` exists but is not in effect (OKX v5 docs, "Get algo order list", field ``state``)
ALGO_STATES = {
    "live": StopState.LIVE,
    "pause": StopState.PAUSED,
    "partially_effective": StopState.LIVE,
    "effective": StopState.TRIGGERED,
    "canceled": StopState.CANCELED,
    "order_failed": StopState.FAILED,
}

ORDER_STATES = {
    "live": OrderStatus.OPEN,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "mmp_canceled": OrderStatus.CANCELED,
}

# GET account/config acctLv: swaps need at least the "futures" (single-currency margin) mode
ACCOUNT_LEVEL_EQUITY = frozenset({"3", "4"})  # equity is account-level, in USD (adjEq/availEq)
ACCOUNT_LEVELS = {
    "1": "spot mode",
    "2": "futures mode (single-currency margin)",
    "3": "multi-currency margin",
    "4": "portfolio margin",
}


class BadPayload(ValueError):
    """An OKX answer without a field Warden needs, or with a value it cannot read."""


def text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if value is None or value == "":
        raise BadPayload(f"field {key!r} is missing")
    return str(value)


def opt_text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return None if value is None or value == "" else str(value)


def dec(raw: Mapping[str, Any], key: str) -> Decimal:
    value = text(raw, key)
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise BadPayload(f"field {key!r} is not a number: {value!r}") from None
    # finite as a float too: "1e999" is a finite Decimal, and an infinite float downstream
    if not number.is_finite() or not math.isfinite(float(number)):
        raise BadPayload(f"field {key!r} is not a finite number: {value!r}")
    return number


def opt_dec(raw: Mapping[str, Any], key: str) -> Decimal | None:
    return None if opt_text(raw, key) is None else dec(raw, key)


def positive(raw: Mapping[str, Any], key: str) -> Decimal:
    """A size or a price: a number above zero (a zero or negative one is a broken answer)."""
    number = dec(raw, key)
    if number <= 0 or float(number) <= 0:  # "1e-400" is above zero, its float is not
        raise BadPayload(f"field {key!r} is not above zero: {number}")
    return number


def non_negative(raw: Mapping[str, Any], key: str) -> Decimal | None:
    number = opt_dec(raw, key)
    if number is not None and number < 0:
        raise BadPayload(f"field {key!r} is negative: {number}")
    return number


def seconds(raw: Mapping[str, Any], key: str) -> float:
    """An OKX millisecond timestamp field in epoch seconds (0.0 when absent)."""
    ms = opt_dec(raw, key)
    return float(ms) / 1000.0 if ms is not None else 0.0


def _side(raw: Mapping[str, Any]) -> OrderSide:
    side = text(raw, "side")
    try:
        return OrderSide(side)
    except ValueError:
        raise BadPayload(f"unknown side {side!r}") from None


@dataclass(frozen=True)
class Contract:
    """One USDT-margined swap as OKX describes it: sizes in contracts of ``ct_val`` base units."""

    symbol: str
    inst_id: str
    base: str
    quote: str
    ct_val: Decimal
    lot: Decimal  # contracts
    min_sz: Decimal  # contracts
    tick: Decimal

    @property
    def market(self) -> Market:
        return Market(
            symbol=self.symbol,
            base=self.base,
            quote=self.quote,
            contract_size=float(self.ct_val),
            min_size=float(self.min_sz * self.ct_val),
            size_step=float(self.lot * self.ct_val),
            price_step=float(self.tick),
        )

    def to_contracts(self, size: float) -> Decimal:
        """Base units -> contracts; ValueError unless it is a whole number of lots >= minimum."""
        try:
            raw = Decimal(repr(size)) / self.ct_val
        except InvalidOperation:
            raise ValueError(f"size {size!r} is not a number") from None
        if not raw.is_finite() or raw <= 0:
            raise ValueError(f"size {size!r} is not a positive number")
        lots = (raw / self.lot).to_integral_value(ROUND_HALF_EVEN)
        contracts = lots * self.lot
        if abs(contracts - raw) > self.lot * Decimal("1e-6"):
            step = self.lot * self.ct_val
            raise ValueError(f"size {size} {self.base} is not a multiple of the size step {step}")
        if contracts < self.min_sz:
            minimum = self.min_sz * self.ct_val
            raise ValueError(f"size {size} {self.base} is below the minimum {minimum}")
        return contracts.normalize()

    def to_base(self, contracts: Decimal) -> float:
        base = float(contracts * self.ct_val)
        if not math.isfinite(base) or (contracts and not base):
            raise BadPayload(f"size {contracts} contracts is out of range")
        return base

    def price(self, price: float) -> Decimal:
        """A price rounded to the tick size, as it goes on the wire."""
        try:
            ticks = (Decimal(repr(price)) / self.tick).to_integral_value(ROUND_HALF_EVEN)
        except InvalidOperation:
            raise ValueError(f"price {price!r} is not a number") from None
        if ticks <= 0:
            raise ValueError(f"price {price} is not a positive price")
        return (ticks * self.tick).normalize()


def contract_from(market: Mapping[str, Any]) -> Contract | None:
    """A ccxt market entry -> Contract; None unless it is a live linear USDT swap."""
    info = market.get("info")
    if not isinstance(info, Mapping):
        return None
    if (
        market.get("swap") is not True
        or market.get("linear") is not True
        or market.get("settle") != SETTLE
        or info.get("state") != "live"
    ):
        return None
    return Contract(
        symbol=text(market, "symbol"),
        inst_id=text(info, "instId"),
        base=text(market, "base"),
        quote=text(market, "quote"),
        ct_val=positive(info, "ctVal"),
        lot=positive(info, "lotSz"),
        min_sz=positive(info, "minSz"),
        tick=positive(info, "tickSz"),
    )


def order_from(raw: Mapping[str, Any], contract: Contract) -> Order:
    """A regular order record (GET trade/order, orders-pending)."""
    state = text(raw, "state")
    fee = opt_dec(raw, "fee")
    filled = non_negative(raw, "accFillSz") or Decimal(0)
    avg = opt_dec(raw, "avgPx")
    if avg is not None and (avg < 0 or (avg > 0 and float(avg) <= 0)):
        raise BadPayload(f"field 'avgPx' is not a price: {avg}")
    return Order(
        symbol=contract.symbol,
        id=text(raw, "ordId"),
        client_id=opt_text(raw, "clOrdId"),
        side=_side(raw),
        size=contract.to_base(positive(raw, "sz")),
        filled=contract.to_base(filled),
        average_price=float(avg) if avg else None,  # OKX sends "" or "0" before a fill
        # a state OKX adds later is not taken as final: the caller resolves it by client id
        status=ORDER_STATES.get(state, OrderStatus.OPEN),
        reduce_only=str(raw.get("reduceOnly", "")).lower() == "true",
        fee=float(-fee) if fee is not None else 0.0,  # OKX reports a cost as a negative fee
        ts=seconds(raw, "uTime") or seconds(raw, "cTime"),
    )


def stop_state(raw: Mapping[str, Any]) -> tuple[StopState, str | None]:
    """The algo record's own state and fail code. A state Warden does not know is never live."""
    state = text(raw, "state")
    fail_code = opt_text(raw, "failCode")
    known = ALGO_STATES.get(state)
    if known is None:
        return StopState.FAILED, fail_code or f"state {state}"
    if known is StopState.FAILED:
        return known, fail_code or "unknown"
    if known is StopState.TRIGGERED and raw.get("actualSide") == "tp":
        # a conditional/oco with both legs ended through its take-profit: the stop-loss leg
        # never fired, it ended with its sibling (OKX v5 docs, algo order ``actualSide``)
        return StopState.CANCELED, None
    return known, None


def stop_size(raw: Mapping[str, Any], contract: Contract) -> tuple[float, bool]:
    """(base units, whole position). An algo set to close the whole position carries
    ``closeFraction: "1"`` and an empty ``sz`` (OKX v5 docs, "Place algo order":
    ``closeFraction``, only 1 is supported, then ``sz`` is not passed)."""
    fraction = opt_text(raw, "closeFraction")
    if fraction is not None:
        if not _is_number(fraction) or Decimal(fraction) != 1:
            raise BadPayload(f"closeFraction {fraction!r}: only 1 (the whole position) is known")
        return 0.0, True
    return contract.to_base(positive(raw, "sz")), False


def _is_number(value: str) -> bool:
    try:
        return Decimal(value).is_finite()
    except InvalidOperation:
        return False


def stop_from(raw: Mapping[str, Any], contract: Contract) -> StopOrder | None:
    """A ``conditional`` or ``oco`` algo record -> StopOrder; None when it has no stop-loss leg
    (a take-profit alone). The stop-loss leg of an oco is a stop, its take-profit leg is not.
    A whole-position stop (``closeFraction: "1"``) only ever reduces, whatever reduceOnly says."""
    if opt_text(raw, "slTriggerPx") is None:
        return None
    trigger = positive(raw, "slTriggerPx")
    state, fail_code = stop_state(raw)
    created = seconds(raw, "cTime")
    size, whole = stop_size(raw, contract)
    return StopOrder(
        symbol=contract.symbol,
        id=text(raw, "algoId"),
        client_id=opt_text(raw, "algoClOrdId") or opt_text(raw, "clOrdId"),
        side=_side(raw),
        size=size,
        trigger_price=float(trigger),
        state=state,
        reduce_only=whole or str(raw.get("reduceOnly", "")).lower() == "true",
        fail_code=fail_code,
        created_at=created,
        updated_at=seconds(raw, "uTime") or created,
        whole_position=whole,
    )


def _liquidation(raw: Mapping[str, Any]) -> float | None:
    """``liqPx``, "Estimated liquidation price" (OKX API docs, GET /api/v5/account/positions);
    "" when there is none (ccxt's recorded okx.json, fetchPositions). Display only: a value
    that is not a positive number is no liquidation price, never a refused position."""
    try:
        value = opt_dec(raw, "liqPx")
    except BadPayload:
        return None
    return float(value) if value is not None and value > 0 else None


def position_from(raw: Mapping[str, Any], contract: Contract) -> Position | None:
    """A net-mode position (signed ``pos`` in contracts); None when it is flat."""
    pos = opt_dec(raw, "pos")
    if pos is None or pos == 0:
        return None
    pos_side = raw.get("posSide") or "net"
    if pos_side != "net":
        raise BadPayload(f"position side {pos_side!r}: the account is not in net position mode")
    lever = opt_dec(raw, "lever")
    return Position(
        symbol=contract.symbol,
        side=PositionSide.LONG if pos > 0 else PositionSide.SHORT,
        size=contract.to_base(abs(pos)),
        entry_price=float(positive(raw, "avgPx")),
        unrealized_pnl=float(opt_dec(raw, "upl") or 0),
        leverage=float(lever) if lever is not None else None,
        liquidation_price=_liquidation(raw),
    )


def balance_from(
    response: Mapping[str, Any], currency: str = SETTLE, acct_lv: str = "2"
) -> Balance:
    """GET account/balance -> the equity Warden sizes from.

    Single-currency margin (acctLv 2): the settle currency's line, ``eq`` (incl. unrealised
    P&L) and ``availEq``. Multi-currency (3) and portfolio margin (4): every collateral
    currency backs the swaps, so the figure is account level, in USD: ``adjEq`` (equity after
    OKX's collateral discounts, what margin is computed on) and ``availEq``. ``totalEq`` is not
    used: it counts currencies that are not collateral (ccxt's recorded fetchBalance shows
    totalEq 43.7M USD on an account whose adjEq is 152.5k and whose USDT line is 0.0003).
    """
    data = response.get("data")
    if not isinstance(data, list) or not data or not isinstance(data[0], Mapping):
        raise BadPayload("balance without data")
    if acct_lv in ACCOUNT_LEVEL_EQUITY:
        account = data[0]
        equity = dec(account, "adjEq")
        available = dec(account, "availEq")
        if equity < 0 or available < 0:
            raise BadPayload(f"account equity adjEq {equity} / availEq {available} is negative")
        in_use = max(equity - available, Decimal(0))
        return Balance("USD", float(equity), float(available), float(in_use))
    details = data[0].get("details")
    if not isinstance(details, list):
        raise BadPayload("balance without details")
    for d in details:
        if isinstance(d, Mapping) and d.get("ccy") == currency:
            total = dec(d, "eq")
            free = opt_dec(d, "availEq")
            if free is None:
                free = dec(d, "availBal")
            used = opt_dec(d, "frozenBal")
            return Balance(
                currency, float(total), float(free), float(used if used is not None else 0)
            )
    return Balance(currency, 0.0, 0.0, 0.0)


def leverage_from(
    response: Mapping[str, Any], contract: Contract, margin_mode: str
) -> LeverageSetting:
    """GET account/leverage-info: the instrument's leverage in ``margin_mode`` (net mode has
    one record; hedge mode one per side, the first is taken: such accounts are refused)."""
    data = response.get("data")
    if not isinstance(data, list):
        raise BadPayload("leverage without data")
    for item in data:
        if isinstance(item, Mapping) and item.get("instId") == contract.inst_id:
            lever = opt_dec(item, "lever")
            if lever is not None and lever <= 0:
                raise BadPayload(f"field 'lever' is not above zero: {lever}")
            return LeverageSetting(
                contract.symbol,
                float(lever) if lever is not None else None,
                opt_text(item, "mgnMode") or margin_mode,
            )
    return LeverageSetting(contract.symbol, None, margin_mode)


def position_leverage(raw: Mapping[str, Any], contract: Contract) -> LeverageSetting | None:
    """The leverage and margin mode an open position actually runs with; None when flat."""
    pos = opt_dec(raw, "pos")
    if pos is None or pos == 0:
        return None
    lever = opt_dec(raw, "lever")
    return LeverageSetting(
        contract.symbol, float(lever) if lever is not None else None, opt_text(raw, "mgnMode")
    )


def candle_from(row: Any) -> Candle:
    """One of ccxt's OHLCV rows (ms, open, high, low, close, base volume)."""
    if not isinstance(row, list | tuple) or len(row) < 6 or any(v is None for v in row[:6]):
        raise BadPayload(f"candle {row!r} is incomplete")
    try:
        ts, o, h, low, c, v = (float(x) for x in row[:6])
    except (TypeError, ValueError):
        raise BadPayload(f"candle {row!r} holds a value that is not a number") from None
    if not all(math.isfinite(x) for x in (ts, o, h, low, c, v)) or min(o, h, low, c) <= 0 or v < 0:
        raise BadPayload(f"candle {row!r}: prices must be above zero, volume not negative")
    return Candle(ts / 1000.0, o, h, low, c, v)


def oldest_id(records: Iterable[Mapping[str, Any]], key: str, time_key: str) -> str:
    """The id of the oldest record of a page: OKX's ``after`` cursor for the next one."""
    oldest = min(records, key=lambda r: (opt_dec(r, time_key) or 0, str(r.get(key))))
    return text(oldest, key)


def triggered_orders(algos: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Order id -> the algo id of the triggered stop that placed the order."""
    found = {}
    for algo in algos:
        algo_id = opt_text(algo, "algoId")
        if algo_id is None:
            continue
        ids = [opt_text(algo, "ordId"), *[str(i) for i in algo.get("ordIdList") or []]]
        found.update({i: algo_id for i in ids if i})
    return found


def fill_from(raw: Mapping[str, Any], contract: Contract, stop_id: str | None) -> Fill:
    """One execution (GET trade/fills-history); ``stop_id`` when a triggered stop made it."""
    fee = opt_dec(raw, "fee")
    return Fill(
        symbol=contract.symbol,
        order_id=text(raw, "ordId"),
        side=_side(raw),
        size=contract.to_base(positive(raw, "fillSz")),
        price=float(positive(raw, "fillPx")),
        fee=float(-fee) if fee is not None else 0.0,
        ts=seconds(raw, "ts") or seconds(raw, "fillTime"),
        reduce_only=stop_id is not None,
        client_id=opt_text(raw, "clOrdId"),
        stop_id=stop_id,
    )


@dataclass(frozen=True)
class AccountConfig:
    """GET account/config, what Warden checks before trading."""

    pos_mode: str  # net_mode | long_short_mode
    acct_lv: str  # 1 spot, 2 futures, 3 multi-currency, 4 portfolio
    perm: str  # the API key's permissions, e.g. "read_only,trade"

    @property
    def net_mode(self) -> bool:
        return self.pos_mode == "net_mode"

    @property
    def can_trade_swaps(self) -> bool:
        return self.acct_lv in ("2", "3", "4")

    @property
    def account_mode(self) -> str:
        return ACCOUNT_LEVELS.get(self.acct_lv, f"account level {self.acct_lv}")

    def problems(self) -> list[str]:
        found = []
        if not self.net_mode:
            found.append(
                f"position mode is {self.pos_mode}; Warden trades only in net mode (OKX: "
                "Settings > Position mode > One-way)"
            )
        if not self.can_trade_swaps:
            found.append(f"the account is in {self.account_mode}, which cannot trade swaps")
        if self.perm and "trade" not in self.perm.split(","):
            found.append(f"the API key has no trade permission ({self.perm})")
        return found


def account_config_from(response: Mapping[str, Any]) -> AccountConfig:
    data = response.get("data")
    if not isinstance(data, list) or not data or not isinstance(data[0], Mapping):
        raise BadPayload("account configuration without data")
    first = data[0]
    return AccountConfig(
        pos_mode=text(first, "posMode"),
        acct_lv=text(first, "acctLv"),
        perm=opt_text(first, "perm") or "",
    )


def error_payload(message: str) -> tuple[str | None, str | None]:
    """(code, message) from the OKX answer ccxt puts in an exception's text ("okx {json}").

    A per-item ``sCode`` (order endpoints answer ``code: 1`` with the reason per item) wins over
    the top-level ``code``. (None, None) when the text carries no OKX answer.
    """
    start = message.find("{")
    if start < 0:
        return None, None
    try:
        payload, _ = json.JSONDecoder().raw_decode(message, start)
    except ValueError:
        return None, None
    if not isinstance(payload, dict):
        return None, None
    for item in payload.get("data") or []:
        if isinstance(item, dict) and item.get("sCode") not in (None, "", "0"):
            return str(item["sCode"]), str(item.get("sMsg") or "").strip() or None
    code = payload.get("code")
    if code in (None, "", "0"):
        return None, None
    return str(code), str(payload.get("msg") or "").strip() or None


def exception_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def short_text(value: str) -> str:
    """One line of an error's text, without the answer's body (JSON or HTML) it may quote."""
    first = value.strip().splitlines()[0] if value.strip() else ""
    first = re.split(r"\s[{<\[]", first, maxsplit=1)[0]
    return first if len(first) <= ERROR_TEXT_MAX else first[:ERROR_TEXT_MAX] + "..."


def translate_okx(exc: BaseException, *, write: bool, client_id: str | None) -> ExchangeError:
    """A ccxt exception from the okx client -> the port's taxonomy, OKX codes read from the
    answer in the exception text. Messages are short and carry no raw payload.

    On a write, whatever leaves the outcome open is an UnknownOutcome (resolved by client id,
    I2): a timeout, a cut-off answer, any 5xx (the client raises ExchangeNotAvailable for those,
    see okx.py), and 51149/51054 whatever the HTTP status."""
    names = exception_names(exc)
    code, msg = error_payload(str(exc))
    reason = f"okx: {msg or 'request failed'}"
    if "BadResponse" in names:
        what = f"unreadable answer from okx: {short_text(str(exc))}"
        return UnknownOutcome(what, client_id) if write else NetworkError(what)
    if code in RATE_LIMIT:
        return RateLimited(f"rate limited by okx: {msg or 'too many requests'} (code {code})")
    if code in OUTCOME_UNKNOWN:
        what = f"{reason} (code {code}): outcome unknown"
        return UnknownOutcome(what, client_id) if write else NetworkError(what)
    throttled = "RateLimitExceeded" in names or "DDoSProtection" in names
    if write and "NetworkError" in names and not throttled:
        shown = f"{reason} (code {code})" if code else short_text(str(exc))
        return UnknownOutcome(f"no answer to a write ({type(exc).__name__}): {shown}", client_id)
    if code in STOP_WOULD_TRIGGER:
        return StopWouldTrigger(reason, code)
    if code in DUPLICATE_CLIENT_ID:
        return DuplicateClientId(reason, code)
    shown_exc = type(exc)(reason if code else short_text(str(exc)))
    err = translate(shown_exc, write=write, client_id=client_id, code=code)
    if isinstance(err, Rejected):
        return type(err)(err.reason, code)
    return err


def is_not_found(exc: BaseException) -> bool:
    code, _ = error_payload(str(exc))
    return "OrderNotFound" in exception_names(exc) or code in NOT_FOUND
