"""Typed domain models. Raw exchange payloads never leave the adapters; these do."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from enum import StrEnum


class PositionSide(StrEnum):
    LONG = "long"
    SHORT = "short"

    @property
    def entry_side(self) -> OrderSide:
        return OrderSide.BUY if self is PositionSide.LONG else OrderSide.SELL

    @property
    def exit_side(self) -> OrderSide:
        return OrderSide.SELL if self is PositionSide.LONG else OrderSide.BUY

    def stop_is_protective(self, trigger: float, last: float) -> bool:
        """A long's stop sits below the market, a short's above; otherwise it fires at once."""
        return trigger < last if self is PositionSide.LONG else trigger > last

    def loss_at(self, entry: float, exit_: float, size: float) -> float:
        """Signed P&L of a move from entry to exit for this side (negative is a loss)."""
        sign = 1.0 if self is PositionSide.LONG else -1.0
        return sign * (exit_ - entry) * size


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderStatus(StrEnum):
    OPEN = "open"
    FILLED = "filled"
    PARTIALLY_FILLED = "partially_filled"
    CANCELED = "canceled"
    REJECTED = "rejected"


class StopState(StrEnum):
    """The exchange's own state of a stop order, not the placement answer.

    OKX algo states map: live/partially_effective -> LIVE, pause -> PAUSED, effective -> TRIGGERED,
    canceled -> CANCELED, order_failed -> FAILED (with failCode). Hyperliquid: open -> LIVE,
    triggered/filled -> TRIGGERED, canceled/marginCanceled/reduceOnlyCanceled/
    siblingFilledCanceled -> CANCELED, rejected -> FAILED.
    """

    LIVE = "live"
    FAILED = "failed"
    TRIGGERED = "triggered"
    CANCELED = "canceled"
    # exists on the exchange but is not in effect (OKX algo state ``pause``): never protection
    PAUSED = "paused"

    @property
    def terminal(self) -> bool:
        return self not in (StopState.LIVE, StopState.PAUSED)


# Every client id Warden issues starts with this (``wd<instance><kind><n>``); a stop whose client
# id does not is one the trader set elsewhere (the venue's own UI, another program).
WARDEN_CLIENT_PREFIX = "wd"


def is_warden_client_id(client_id: str | None) -> bool:
    return bool(client_id) and str(client_id).startswith(WARDEN_CLIENT_PREFIX)


def _dec(x: float) -> Decimal:
    return Decimal(repr(x))


@dataclass(frozen=True)
class Market:
    symbol: str
    base: str
    quote: str
    contract_size: float  # base units per contract
    min_size: float  # in base units
    size_step: float  # in base units
    price_step: float

    def round_size(self, size: float) -> float:
        """Round down to the size step: never trade more than asked."""
        step = _dec(self.size_step)
        return float((_dec(size) / step).to_integral_value(ROUND_DOWN) * step)

    def round_price(self, price: float) -> float:
        step = _dec(self.price_step)
        return float((_dec(price) / step).to_integral_value(ROUND_HALF_UP) * step)

    def size_ok(self, size: float) -> bool:
        return math.isfinite(size) and size >= self.min_size - 1e-12


@dataclass(frozen=True)
class Candle:
    ts: float  # open time, epoch seconds
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True)
class Ticker:
    symbol: str
    last: float
    ts: float


@dataclass(frozen=True)
class Balance:
    currency: str
    total: float  # equity incl. unrealised P&L
    free: float
    used: float


@dataclass(frozen=True)
class Position:
    symbol: str
    side: PositionSide
    size: float  # base units, > 0
    entry_price: float
    unrealized_pnl: float = 0.0
    leverage: float | None = None
    # the exchange's estimate, shown on charts only; None where it reports none (Hyperliquid:
    # null for a cross position its account margin keeps safe; OKX: "")
    liquidation_price: float | None = None


@dataclass(frozen=True)
class Order:
    symbol: str
    id: str
    client_id: str | None
    side: OrderSide
    size: float  # base units asked
    filled: float  # base units filled
    average_price: float | None
    status: OrderStatus
    reduce_only: bool
    fee: float = 0.0
    ts: float = 0.0


@dataclass(frozen=True)
class Fill:
    """One execution on the exchange: the material accounting is built from."""

    symbol: str
    order_id: str
    side: OrderSide
    size: float  # base units
    price: float
    fee: float  # in quote currency, positive = paid
    ts: float
    reduce_only: bool = False
    client_id: str | None = None
    stop_id: str | None = None  # set when the fill came from a stop's trigger
    funding: float = 0.0  # funding paid (+) or received (-) attributed to this fill, if reported


@dataclass(frozen=True)
class LeverageSetting:
    """A symbol's leverage and margin mode as the exchange has them now (None: not reported)."""

    symbol: str
    leverage: float | None
    margin_mode: str | None  # "cross" | "isolated"


@dataclass(frozen=True)
class StopAck:
    """What the placement call answered. Proves nothing about the stop being live (I4)."""

    client_id: str
    id: str | None  # Hyperliquid may answer "waitingForTrigger" with no id


@dataclass(frozen=True)
class StopOrder:
    symbol: str
    id: str
    client_id: str | None
    side: OrderSide  # the closing side
    size: float  # base units
    trigger_price: float
    state: StopState
    reduce_only: bool
    fail_code: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    # closes the whole position whatever its size (OKX ``closeFraction: "1"`` with an empty
    # ``sz``; a Hyperliquid position TP/SL, ``isPositionTpsl: true`` with size "0.0"); ``size``
    # is then 0.0 and means nothing
    whole_position: bool = False

    @property
    def placed_by_warden(self) -> bool:
        """False for a stop the trader set in the venue's UI (or another program did)."""
        return is_warden_client_id(self.client_id)

    def covers(self, position: Position, market: Market) -> bool:
        if self.whole_position:
            return True
        return abs(self.size - position.size) < market.size_step / 2
