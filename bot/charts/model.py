"""What a chart shows, as typed values built from the domain; no drawing and no I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from trading.models import Candle, PositionSide, StopState

Point = tuple[float, float]  # (epoch seconds, value)


class MarkKind(StrEnum):
    ENTRY = "entry"
    EXIT = "exit"


@dataclass(frozen=True)
class PositionMark:
    side: PositionSide
    size: float  # base units
    entry: float
    unrealized_pnl: float
    liquidation: float | None = None  # only where the exchange reports one


@dataclass(frozen=True)
class StopMark:
    level: float
    state: StopState  # the exchange's own state, as last read
    verified_at: float | None  # last read back live (the journal); None: never by Warden
    placed_by_warden: bool = True


@dataclass(frozen=True)
class TradeMark:
    """An entry or an exit fill from the journal, placed at its time and price."""

    ts: float
    price: float
    kind: MarkKind
    side: PositionSide  # the position's side (a long's exit is a sell)
    size: float


@dataclass(frozen=True)
class PositionChartData:
    exchange: str
    symbol: str
    timeframe: str | None  # None: the exchange served no candles
    candles: tuple[Candle, ...]  # oldest first
    last_price: float | None
    now: float
    position: PositionMark | None = None
    stop: StopMark | None = None
    trades: tuple[TradeMark, ...] = ()
    notes: tuple[str, ...] = ()  # said under the title (e.g. what could not be read)


@dataclass(frozen=True)
class EquitySeries:
    label: str  # the exchange's name
    points: tuple[Point, ...]  # (time, equity), in time order
    currency: str = ""


@dataclass(frozen=True)
class EquityChartData:
    title: str
    series: tuple[EquitySeries, ...]


@dataclass(frozen=True)
class BacktestTrade:
    entry_at: float
    exit_at: float
    pnl: float


@dataclass(frozen=True)
class BacktestChartData:
    strategies: tuple[str, ...]  # "name: kind params" each
    data: tuple[str, ...]  # "exchange symbol timeframe (N candles)" each
    synthetic: bool
    curve: tuple[Point, ...]  # (time, equity)
    trades: tuple[BacktestTrade, ...] = ()
