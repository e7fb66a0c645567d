"""``bollinger``: Bollinger Bands (the post-mortem's OKX ETH system).

Bands: middle = SMA(period) of closes, upper/lower = middle +/- width x stddev (population),
computed on the last ``period`` closes including the last one.

- ``mean_reversion``: a close below the lower band enters long, above the upper band short.
  Exit ``middle``: a long exits when a close reaches the middle band (``opposite_band``: the upper).
- ``breakout``: a close above the upper band enters long, below the lower band short.
  Exit ``middle``: a long exits when a close falls back to the middle band (``opposite_band``: to
  the lower band).
- ``exit = "none"``: only the stop (or an opposite signal) ends a trade.

Stops: ``percent`` from the close; ``atr``: k x ATR(period) from the close; ``band``: the band
``stop_sigma`` standard deviations from the middle on the losing side (0 = the middle band).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from trading.models import Candle, Position, PositionSide
from trading.strategies.base import (
    Decision,
    Strategy,
    bounds,
    check_params,
    entry_or_hold,
    fmt,
)
from trading.strategies.indicators import Bands, atr, bollinger_bands

KIND = "bollinger"


@dataclass(frozen=True)
class BollingerParams:
    KIND: ClassVar[str] = KIND

    period: int = field(default=20, metadata=bounds(2, 500))
    width: float = field(default=2.0, metadata=bounds(0.1, 10))
    mode: Literal["mean_reversion", "breakout"] = "mean_reversion"
    exit: Literal["middle", "opposite_band", "none"] = "middle"
    stop: Literal["atr", "percent", "band"] = "atr"
    stop_percent: float = field(default=5.0, metadata=bounds(0.1, 50))
    atr_period: int = field(default=14, metadata=bounds(1, 500))
    atr_multiplier: float = field(default=2.0, metadata=bounds(0.1, 20))
    stop_sigma: float = field(default=3.0, metadata=bounds(0, 20))

    def __post_init__(self) -> None:
        check_params(self)


class Bollinger(Strategy):
    kind: ClassVar[str] = KIND

    def __init__(self, params: BollingerParams | None = None) -> None:
        self.params = params or BollingerParams()

    @property
    def lookback(self) -> int:
        p = self.params
        return max(p.period, p.atr_period + 1) if p.stop == "atr" else p.period

    def describe(self) -> str:
        p = self.params
        stop = {
            "atr": f"{p.atr_multiplier:g}xATR({p.atr_period})",
            "percent": f"{p.stop_percent:g}%",
            "band": f"band {p.stop_sigma:g} sigma",
        }[p.stop]
        return (
            f"{KIND}(mode={p.mode}, period={p.period}, width={p.width:g}, exit={p.exit}, "
            f"stop={stop})"
        )

    def _bands(self, window: Sequence[Candle]) -> Bands:
        return bollinger_bands([c.close for c in window], self.params.period, self.params.width)

    def _stop(
        self, window: Sequence[Candle], bands: Bands, side: PositionSide, close: float
    ) -> tuple[float, str]:
        p = self.params
        sign = -1.0 if side is PositionSide.LONG else 1.0
        if p.stop == "atr":
            value = atr(window, p.atr_period)
            stop = close + sign * p.atr_multiplier * value
            return stop, f"stop {p.atr_multiplier:g}xATR({p.atr_period}) {fmt(value)} = {fmt(stop)}"
        if p.stop == "percent":
            stop = close * (1 + sign * p.stop_percent / 100)
            return stop, f"stop {p.stop_percent:g}% = {fmt(stop)}"
        stop = bands.middle + sign * p.stop_sigma * bands.sigma
        return stop, f"stop at the {p.stop_sigma:g}-sigma band = {fmt(stop)}"

    def entry_signal(self, window: Sequence[Candle]) -> Decision:
        p = self.params
        close = window[-1].close
        b = self._bands(window)
        if close < b.lower:
            side = PositionSide.LONG if p.mode == "mean_reversion" else PositionSide.SHORT
            why = f"close {fmt(close)} below the lower band {fmt(b.lower)}"
        elif close > b.upper:
            side = PositionSide.SHORT if p.mode == "mean_reversion" else PositionSide.LONG
            why = f"close {fmt(close)} above the upper band {fmt(b.upper)}"
        else:
            return Decision.hold(
                f"close {fmt(close)} inside the bands {fmt(b.lower)}..{fmt(b.upper)}", close
            )
        stop, stop_why = self._stop(window, b, side, close)
        return entry_or_hold(side, stop, close, f"{p.mode}: {why}; {stop_why}")

    def exit_signal(self, window: Sequence[Candle], position: Position) -> Decision:
        p = self.params
        close = window[-1].close
        held = position.side.value
        if p.exit == "none":
            return Decision.hold(f"holding {held}: no band exit, the stop ends the trade", close)
        b = self._bands(window)
        long = position.side is PositionSide.LONG
        if p.exit == "middle":
            level, name = b.middle, "middle band"
        elif (p.mode == "mean_reversion") == long:
            level, name = b.upper, "upper band"
        else:
            level, name = b.lower, "lower band"
        # mean reversion takes profit when price reaches the level; breakout gives up when price
        # comes back to it
        reverting = p.mode == "mean_reversion"
        upward = long if reverting else not long  # the exit fires at or above the level
        if close >= level if upward else close <= level:
            verb = "reached" if reverting else "came back to"
            return Decision.exit(f"close {fmt(close)} {verb} the {name} {fmt(level)}", close)
        where = "below" if upward else "above"
        return Decision.hold(
            f"holding {held}: close {fmt(close)} still {where} the {name} {fmt(level)}", close
        )
