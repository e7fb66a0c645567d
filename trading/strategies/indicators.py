"""Indicators in plain Python, each a function of the last values it is given.

Every indicator reads a fixed number of trailing values (no recursive smoothing over the whole
history), so its value on a candle is the same whether the caller passed 30 candles or 30,000.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from trading.models import Candle


def _tail_check(have: int, period: int, what: str) -> None:
    if period < 1:
        raise ValueError(f"{what}: period must be at least 1, got {period}")
    if have < period:
        raise ValueError(f"{what}: need {period} values, have {have}")


def sma(values: Sequence[float], period: int) -> float:
    """Mean of the last ``period`` values."""
    _tail_check(len(values), period, "sma")
    return math.fsum(values[len(values) - period :]) / period


def stddev(values: Sequence[float], period: int) -> float:
    """Population standard deviation of the last ``period`` values (as Bollinger Bands use)."""
    _tail_check(len(values), period, "stddev")
    tail = values[len(values) - period :]
    mean = math.fsum(tail) / period
    return math.sqrt(math.fsum((v - mean) ** 2 for v in tail) / period)


def true_range(candle: Candle, prev_close: float) -> float:
    """The candle's range, widened to include a gap from the previous close."""
    return max(candle.high, prev_close) - min(candle.low, prev_close)


def atr(candles: Sequence[Candle], period: int) -> float:
    """Average true range: the simple mean of the last ``period`` true ranges.

    Needs ``period + 1`` candles (each true range uses the previous close). A simple mean, not
    Wilder's recursive smoothing, so the value depends on a fixed window only.
    """
    _tail_check(len(candles), period + 1, "atr")
    n = len(candles)
    ranges = (true_range(candles[i], candles[i - 1].close) for i in range(n - period, n))
    return math.fsum(ranges) / period


@dataclass(frozen=True)
class Channel:
    high: float  # highest high
    low: float  # lowest low


def channel(candles: Sequence[Candle], period: int) -> Channel:
    """Donchian channel of the last ``period`` candles given."""
    _tail_check(len(candles), period, "channel")
    tail = candles[len(candles) - period :]
    return Channel(high=max(c.high for c in tail), low=min(c.low for c in tail))


@dataclass(frozen=True)
class Bands:
    lower: float
    middle: float
    upper: float
    sigma: float  # the standard deviation the bands were built from


def bollinger_bands(closes: Sequence[float], period: int, width: float) -> Bands:
    """Middle = SMA(period) of closes; upper/lower = middle +/- width x population stddev."""
    middle = sma(closes, period)
    sigma = stddev(closes, period)
    return Bands(middle - width * sigma, middle, middle + width * sigma, sigma)
