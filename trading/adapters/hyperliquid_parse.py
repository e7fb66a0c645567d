"""Hyperliquid payloads -> Warden models, and Warden client ids <-> Hyperliquid ``cloid``s.

Pure functions, no I/O and no ccxt: the adapter hands in the raw JSON the info endpoint answered
(Hyperliquid's own field names), and gets typed models back. A payload that lacks a field the
model needs raises ``Malformed``; the adapter turns that into a clear port error.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from trading.models import (
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

Raw = Mapping[str, Any]
SymbolOf = Callable[[object], str | None]  # coin name -> unified symbol, None when not wanted
SETTLE = "USDC"


class Malformed(ValueError):
    """The exchange answered, but not in the shape its API documents."""


# -- client ids ------------------------------------------------------------------------------
# Warden's ids are ``wd<6 hex instance><kind letter><decimal n>``. They are packed into the 16
# bytes of a cloid reversibly, with a 4-byte checksum, so an order read back from the exchange
# names the Warden id that placed it and a cloid from anywhere else is never mistaken for one:
#   b"wd" | instance (3 bytes) | letter (1 byte) | n (6 bytes, big endian) | sha256(id)[:4]
_WARDEN_ID = re.compile(r"^wd([0-9a-f]{6})([a-z])(0|[1-9][0-9]{0,14})$")
_MAGIC = b"wd"
_CLOID = re.compile(r"^0x[0-9a-f]{32}$")


def _check(client_id: str) -> bytes:
    return hashlib.sha256(client_id.encode()).digest()[:4]


def to_cloid(client_id: str) -> str:
    """The deterministic cloid (``0x`` + 32 lowercase hex) for a client id."""
    m = _WARDEN_ID.match(client_id)
    if m is not None and int(m[3]) < 2**48:
        raw = (
            _MAGIC
            + bytes.fromhex(m[1])
            + m[2].encode()
            + int(m[3]).to_bytes(6, "big")
            + _check(client_id)
        )
    else:
        # not a Warden id: still deterministic, but only the caller can map it back
        raw = hashlib.sha256(client_id.encode()).digest()[:16]
    return "0x" + raw.hex()


def from_cloid(cloid: object) -> str | None:
    """The Warden client id packed in ``cloid``, or None when it is not one of Warden's."""
    if not isinstance(cloid, str) or not _CLOID.match(cloid.lower()):
        return None
    raw = bytes.fromhex(cloid[2:])
    if raw[:2] != _MAGIC or not (0x61 <= raw[5] <= 0x7A):
        return None
    client_id = f"wd{raw[2:5].hex()}{chr(raw[5])}{int.from_bytes(raw[6:12], 'big')}"
    return client_id if raw[12:] == _check(client_id) else None


# -- statuses --------------------------------------------------------------------------------
_LIVE = frozenset({"open", "accepted"})
_TRIGGERED = frozenset({"triggered", "filled"})


def _canceled(status: str) -> bool:
    # canceled, marginCanceled, reduceOnlyCanceled, siblingFilledCanceled, selfTradeCanceled,
    # openInterestCapCanceled, vaultWithdrawalCanceled, delistedCanceled, liquidatedCanceled...
    return status == "canceled" or status.endswith("Canceled") or status == "scheduledCancel"


def _rejected(status: str) -> bool:
    # rejected, tickRejected, perpMarginRejected, reduceOnlyRejected, badTriggerPxRejected...
    return status == "rejected" or status.endswith("Rejected")


def stop_state(status: str) -> tuple[StopState, str | None]:
    """A trigger order's status as a StopState, with the fail code for a failed one.

    An unknown status is never taken for live: it is FAILED, naming the status."""
    if status in _LIVE:
        return StopState.LIVE, None
    if status in _TRIGGERED:
        return StopState.TRIGGERED, None
    if _canceled(status):
        return StopState.CANCELED, None
    if _rejected(status):
        return StopState.FAILED, status
    return StopState.FAILED, f"unknown status {status}"


def order_status(status: str, filled: float) -> OrderStatus:
    if status == "filled":
        return OrderStatus.FILLED
    if filled > 0:
        return OrderStatus.PARTIALLY_FILLED
    if _rejected(status):
        return OrderStatus.REJECTED
    if _canceled(status):
        return OrderStatus.CANCELED
    # open, triggered, or a status this code does not know: not settled
    return OrderStatus.OPEN


# -- field helpers ---------------------------------------------------------------------------
def _field(raw: Raw, key: str) -> Any:
    if not isinstance(raw, Mapping) or key not in raw or raw[key] is None:
        raise Malformed(f"field {key!r} missing in {_short(raw)}")
    return raw[key]


def num(raw: Raw, key: str) -> float:
    value = _field(raw, key)
    if isinstance(value, bool):
        raise Malformed(f"field {key!r} is not a number: {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise Malformed(f"field {key!r} is not a number: {value!r}") from None
    if not math.isfinite(x):
        raise Malformed(f"field {key!r} is not finite: {value!r}")
    return x


def positive(raw: Raw, key: str) -> float:
    """A size or a price: a number above zero (a zero or negative one is a broken answer)."""
    x = num(raw, key)
    if x <= 0:
        raise Malformed(f"field {key!r} is not above zero: {x!r}")
    return x


def non_negative(raw: Raw, key: str) -> float:
    x = num(raw, key)
    if x < 0:
        raise Malformed(f"field {key!r} is negative: {x!r}")
    return x


def text(raw: Raw, key: str) -> str:
    value = _field(raw, key)
    if not isinstance(value, str | int):
        raise Malformed(f"field {key!r} is not a string: {value!r}")
    return str(value)


def _short(raw: object) -> str:
    s = repr(raw)
    return s if len(s) <= 200 else s[:200] + "..."


def _side(raw: Raw) -> OrderSide:
    side = text(raw, "side")
    if side not in ("A", "B"):
        raise Malformed(f"unknown side {side!r}")
    return OrderSide.SELL if side == "A" else OrderSide.BUY


def _seconds(ms: object) -> float:
    """A millisecond timestamp in seconds; 0.0 when the payload has none."""
    return num({"ms": ms}, "ms") / 1000 if ms is not None else 0.0


def as_list(payload: object, what: str) -> list[Any]:
    if not isinstance(payload, list):
        raise Malformed(f"{what}: expected a list, got {_short(payload)}")
    return payload


def as_dict(payload: object, what: str) -> Raw:
    if not isinstance(payload, Mapping):
        raise Malformed(f"{what}: expected an object, got {_short(payload)}")
    return payload


# -- orders and stops ------------------------------------------------------------------------
def is_stop(order: Raw) -> bool:
    """A stop-loss record (``tpsl: 'sl'``), not a take-profit: a pending trigger order, or one
    that already triggered and now rests on the book as a limit (whose record may no longer
    say ``isTrigger``, but keeps its ``orderType`` "Stop Market"/"Stop Limit")."""
    kind = str(order.get("orderType") or "").lower()
    if "take profit" in kind:
        return False
    return bool(order.get("isTrigger")) or kind.startswith("stop") or already_triggered(order)


def already_triggered(order: Raw) -> bool:
    """The record says its trigger has fired (``triggerCondition: "Triggered"``), whatever its
    status: what rests now is the stop's limit order, which protects nothing after a gap."""
    return str(order.get("triggerCondition") or "").strip().lower() == "triggered"


def _stop_client_id(cloid: object) -> str | None:
    """Warden's client id when the cloid packs one; else the cloid itself (an order placed by
    another program), or None (an order set in Hyperliquid's UI carries no cloid)."""
    mine = from_cloid(cloid)
    if mine is not None:
        return mine
    return cloid if isinstance(cloid, str) and cloid else None


def parse_stop(
    order: Raw, status: str, status_ts: object, symbol: str, *, triggered: bool = False
) -> StopOrder:
    """One stop record. ``triggered``: the caller knows the trigger already fired (the order's
    history has a ``triggered`` entry); a live-looking status is then TRIGGERED, never LIVE.

    A position TP/SL (set from the position in Hyperliquid's UI) has ``isPositionTpsl: true``
    and size "0.0": it closes the whole position whatever its size when it fires
    (https://hyperliquid.gitbook.io/hyperliquid-docs/trading/take-profit-and-stop-loss-orders-tp-sl,
    "TP/SL associated with a position")."""
    state, fail_code = stop_state(status)
    if state is StopState.LIVE and (triggered or already_triggered(order)):
        state = StopState.TRIGGERED
    size_key = "origSz" if order.get("origSz") is not None else "sz"
    # only a position TP/SL of size zero closes the whole position; one given a size in the UI
    # is fixed-size (the TP/SL page above), and a junk flag never claims to cover everything
    whole = order.get("isPositionTpsl") is True and num(order, size_key) == 0
    size = 0.0 if whole else positive(order, size_key)
    created = _seconds(order.get("timestamp"))
    updated = _seconds(status_ts) or created
    return StopOrder(
        symbol=symbol,
        id=text(order, "oid"),
        client_id=_stop_client_id(order.get("cloid")),
        side=_side(order),
        size=size,
        trigger_price=positive(order, "triggerPx"),
        state=state,
        # a position TP/SL can only close: the venue makes it reduce-only whatever it reports
        reduce_only=whole or bool(order.get("reduceOnly", False)),
        fail_code=fail_code,
        created_at=created,
        updated_at=updated,
        whole_position=whole,
    )


def fill_summary(fills: Iterable[Raw], oid: str) -> tuple[float, float | None, float]:
    """(filled size, average price, fees) of the fills of one order id."""
    size = cost = fee = 0.0
    for f in fills:
        if str(f.get("oid")) != oid:
            continue
        sz = positive(f, "sz")
        size += sz
        cost += sz * positive(f, "px")
        fee += _fee(f)
    return size, (cost / size if size > 0 else None), fee


def parse_order(
    order: Raw, status: str, symbol: str, fills: Iterable[Raw], client_id: str | None
) -> Order:
    """An order record (``orderStatus``/``frontendOpenOrders`` shape) with its own fills."""
    oid = text(order, "oid")
    size = positive(order, "origSz")
    filled = max(0.0, size - non_negative(order, "sz"))
    fill_size, average, fee = fill_summary(fills, oid)
    if status == "filled":
        filled = size
    return Order(
        symbol=symbol,
        id=oid,
        client_id=from_cloid(order.get("cloid")) or client_id,
        side=_side(order),
        size=size,
        filled=max(filled, fill_size),
        average_price=average,
        status=order_status(status, max(filled, fill_size)),
        reduce_only=bool(order.get("reduceOnly", False)),
        fee=fee,
        ts=_seconds(order.get("timestamp")),
    )


def _fee(fill: Raw) -> float:
    """The exchange fee plus any builder fee (a fill can carry both)."""
    return sum(num(fill, k) for k in ("fee", "builderFee") if fill.get(k) is not None)


def parse_fill(fill: Raw, symbol: str, orders: Mapping[str, Raw]) -> Fill:
    """One ``userFills`` entry; ``orders`` (oid -> order record) names the client id and
    whether the fill came from a trigger order (a stop's fill) when the fill itself does not."""
    oid = text(fill, "oid")
    order = orders.get(oid, {})
    return Fill(
        symbol=symbol,
        order_id=oid,
        side=_side(fill),
        size=positive(fill, "sz"),
        price=positive(fill, "px"),
        fee=_fee(fill),
        ts=num(fill, "time") / 1000,
        reduce_only=str(fill.get("dir") or "").startswith("Close"),
        client_id=from_cloid(fill.get("cloid") or order.get("cloid")),
        # a trigger order, or a stop whose record now shows the limit it became when it fired
        stop_id=oid if order.get("isTrigger") or (order and is_stop(order)) else None,
    )


def latest_by_oid(entries: Iterable[object]) -> list[Raw]:
    """historicalOrders lists every status an order went through; keep each order's latest.

    Ties on the timestamp go to the terminal status (an order is never open after it ended)."""
    best: dict[str, tuple[tuple[float, int], Raw]] = {}
    for entry in entries:
        e = as_dict(entry, "historicalOrders entry")
        oid = text(as_dict(e.get("order"), "historicalOrders order"), "oid")
        status = text(e, "status")
        ts = num(e, "statusTimestamp") if e.get("statusTimestamp") is not None else 0.0
        key = (ts, 0 if status in _LIVE else 1)
        if oid not in best or key >= best[oid][0]:
            best[oid] = (key, e)
    return [e for _, e in best.values()]


# -- account ---------------------------------------------------------------------------------
def _liquidation(p: Raw) -> float | None:
    """``liquidationPx``: a price, or null (ccxt's recorded clearinghouseState responses,
    ts/src/test/static/response/hyperliquid.json, fetchPositions: "50.2724802381" for an
    isolated short, null for cross positions). Display only: a value that is not a positive
    number is no liquidation price, never a reason to refuse the positions."""
    value = p.get("liquidationPx")
    try:
        x = float(value) if isinstance(value, str | int | float) else math.nan
    except ValueError:
        return None
    return x if math.isfinite(x) and x > 0 else None


def parse_positions(state: Raw, symbol_of: SymbolOf) -> list[Position]:
    out: list[Position] = []
    for item in as_list(state.get("assetPositions"), "clearinghouseState.assetPositions"):
        p = as_dict(as_dict(item, "assetPosition").get("position"), "assetPosition.position")
        symbol = symbol_of(text(p, "coin"))
        szi = num(p, "szi")
        if symbol is None or szi == 0:
            continue
        leverage = p.get("leverage")
        lev = num(leverage, "value") if isinstance(leverage, Mapping) else None
        out.append(
            Position(
                symbol=symbol,
                side=PositionSide.LONG if szi > 0 else PositionSide.SHORT,
                size=abs(szi),
                entry_price=positive(p, "entryPx"),
                unrealized_pnl=num(p, "unrealizedPnl") if p.get("unrealizedPnl") else 0.0,
                leverage=lev,
                liquidation_price=_liquidation(p),
            )
        )
    return out


_MARGIN_MODES = ("cross", "isolated")


def parse_leverage(raw: object, symbol: str) -> LeverageSetting:
    """A ``leverage`` object, ``{"type": "cross"|"isolated", "value": n}`` (``rawUsd`` too when
    isolated), as clearinghouseState's positions and activeAssetData both carry it
    (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint/perpetuals)."""
    lev = as_dict(raw, "leverage")
    mode = text(lev, "type")
    if mode not in _MARGIN_MODES:
        raise Malformed(f"leverage type {mode!r} is neither cross nor isolated")
    return LeverageSetting(symbol, positive(lev, "value"), mode)


def position_leverage(state: Raw, coin: str, symbol: str) -> LeverageSetting | None:
    """The leverage of the open position in ``coin`` (clearinghouseState), None without one."""
    for item in as_list(state.get("assetPositions"), "clearinghouseState.assetPositions"):
        p = as_dict(as_dict(item, "assetPosition").get("position"), "assetPosition.position")
        if text(p, "coin") == coin and num(p, "szi") != 0:
            return parse_leverage(p.get("leverage"), symbol)
    return None


def active_leverage(payload: object, coin: str, symbol: str) -> LeverageSetting:
    """activeAssetData: the leverage in force for ``coin``, with or without a position."""
    data = as_dict(payload, "activeAssetData")
    if data.get("coin") is not None and text(data, "coin") != coin:
        raise Malformed(f"activeAssetData answered for {data.get('coin')!r}, not {coin!r}")
    return parse_leverage(data.get("leverage"), symbol)


def mark_prices(meta_and_ctxs: object) -> dict[str, float]:
    """coin -> mark price from ``metaAndAssetCtxs`` (``[meta, [assetCtx, ...]]``)."""
    pair = as_list(meta_and_ctxs, "metaAndAssetCtxs")
    if len(pair) != 2:
        raise Malformed(f"metaAndAssetCtxs: expected [meta, ctxs], got {_short(pair)}")
    universe = as_list(as_dict(pair[0], "meta").get("universe"), "meta.universe")
    ctxs = as_list(pair[1], "assetCtxs")
    if len(ctxs) != len(universe):
        raise Malformed("metaAndAssetCtxs: universe and contexts differ in length")
    return {
        text(as_dict(u, "universe entry"), "name"): positive(as_dict(c, "assetCtx"), "markPx")
        for u, c in zip(universe, ctxs, strict=True)
    }


def exchange_reason(message: str) -> str:
    """The exchange's own reason inside a ccxt error text (``hyperliquid {json body}``)."""
    _, _, body = message.partition(" ")
    try:
        payload = json.loads(body)
    except ValueError:
        return message
    if isinstance(payload, Mapping):
        if payload.get("status") == "err" and isinstance(payload.get("response"), str):
            return str(payload["response"])
        response = payload.get("response")
        data = response.get("data") if isinstance(response, Mapping) else None
        statuses = data.get("statuses") if isinstance(data, Mapping) else None
        for s in statuses if isinstance(statuses, list) else []:
            if isinstance(s, Mapping) and isinstance(s.get("error"), str):
                return str(s["error"])
    return message


# -- whole payloads --------------------------------------------------------------------------
@dataclass(frozen=True)
class Found:
    """One order's record as ``orderStatus`` answered it."""

    order: Raw
    status: str
    status_ts: object


def parse_order_status(payload: object) -> Found:
    """``{"status": "order", "order": {"order": {...}, "status": ..., "statusTimestamp": ...}}``
    (an unknown id, ``{"status": "unknownOid"}``, is raised by ccxt as OrderNotFound)."""
    entry = as_dict(as_dict(payload, "orderStatus").get("order"), "orderStatus.order")
    order = as_dict(entry.get("order"), "orderStatus.order.order")
    return Found(order, text(entry, "status"), entry.get("statusTimestamp"))


def parse_markets(loaded: Mapping[str, Any]) -> dict[str, tuple[str, Market]]:
    """symbol -> (coin, Market) for the USDC perpetuals in ccxt's loaded markets."""
    out: dict[str, tuple[str, Market]] = {}
    for symbol, entry in loaded.items():
        m = as_dict(entry, f"market {symbol}")
        if not (m.get("swap") and m.get("settle") == SETTLE and m.get("active", True)):
            continue
        info = m.get("info")
        if isinstance(info, Mapping) and info.get("hip3"):
            continue  # builder-deployed perp dexes: other collateral and rules
        precision = as_dict(m.get("precision"), f"market {symbol} precision")
        step = positive(precision, "amount")
        market = Market(
            symbol=str(symbol),
            base=text(m, "base"),
            quote=text(m, "quote"),
            contract_size=1.0,
            min_size=step,  # Hyperliquid's minimum is a value ($10), checked on the order
            size_step=step,
            price_step=positive(precision, "price"),
        )
        out[str(symbol)] = (text(m, "baseName"), market)
    return out


def parse_candle(row: object) -> Candle:
    """One of ccxt's OHLCV rows (ms, open, high, low, close, volume)."""
    values = as_list(row, "candle")
    if len(values) < 6:
        raise Malformed(f"candle {_short(row)} is incomplete")
    ts, o, h, low, c, v = (num({"v": x}, "v") for x in values[:6])
    if min(o, h, low, c) <= 0 or v < 0:
        raise Malformed(f"candle {_short(row)}: prices must be above zero, volume not negative")
    return Candle(ts / 1000, o, h, low, c, v)


def open_orders(payload: object) -> list[Raw]:
    """``frontendOpenOrders``: resting orders and untriggered trigger orders."""
    return [as_dict(o, "open order") for o in as_list(payload, "frontendOpenOrders")]


def triggered_oids(history: object) -> set[str]:
    """The order ids whose trigger fired, from every status ``historicalOrders`` lists."""
    out: set[str] = set()
    for entry in as_list(history, "historicalOrders"):
        e = as_dict(entry, "historicalOrders entry")
        order = as_dict(e.get("order"), "historicalOrders order")
        if text(e, "status") == "triggered" or already_triggered(order):
            out.add(text(order, "oid"))
    return out


def live_stops(payload: object, wanted: SymbolOf) -> list[StopOrder]:
    """The stops in ``frontendOpenOrders`` still waiting for their trigger. A stop that fired
    and whose limit rests unfilled (a gap through its limit) is listed there too, but it no
    longer protects anything: it is left out, so the position reads as unprotected."""
    return [
        parse_stop(o, "open", None, sym)
        for o in open_orders(payload)
        if is_stop(o)
        and o.get("isTrigger")
        and not already_triggered(o)
        and (sym := wanted(o.get("coin")))
    ]


def ended_stops(payload: object, wanted: SymbolOf) -> list[StopOrder]:
    """The stops in ``historicalOrders`` that are no longer live, oldest first: ended
    (triggered, canceled, rejected) or triggered and resting as a limit (TRIGGERED: a later
    ``open`` entry for the same order is its limit on the book, not a live stop)."""
    fired = triggered_oids(payload)
    found = [
        parse_stop(order, text(e, "status"), e.get("statusTimestamp"), sym, triggered=oid in fired)
        for e in latest_by_oid(as_list(payload, "historicalOrders"))
        if is_stop(order := as_dict(e["order"], "order"))
        and (sym := wanted(order.get("coin")))
        and ((oid := text(order, "oid")) in fired or not _live_status(text(e, "status")))
    ]
    return sorted(found, key=lambda s: s.updated_at)


def _live_status(status: str) -> bool:
    return stop_state(status)[0] is StopState.LIVE


def parse_fills(fills: object, history: object, wanted: SymbolOf) -> list[Fill]:
    """``userFills`` entries, oldest first. Their orders, from ``historicalOrders`` (the latest
    2,000), name the client id and the stop a fill came from."""
    orders = {
        text(order, "oid"): order
        for e in as_list(history, "historicalOrders")
        if (order := as_dict(as_dict(e, "entry").get("order"), "order"))
    }
    found = [
        parse_fill(f, sym, orders)
        for f in as_list(fills, "userFills")
        if (sym := wanted(as_dict(f, "fill").get("coin")))
    ]
    return sorted(found, key=lambda f: (f.ts, f.order_id))
