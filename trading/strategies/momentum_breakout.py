"""``momentum_breakout``: N-bar channel breakout (the post-mortem's Hyperliquid BTC/ETH system).

Enter long when the last close is above the highest high of the N candles before it, short when
it is below their lowest low. The stop is k x ATR(period) or a fixed percent from that close.
With ``exit_channel`` = M > 0, a long exits when a close falls below the lowest low of the M
candles before it (a short: above their highest high); with 0 only the stop ends a trade.
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
from trading.strategies.indicators import atr, channel

KIND = "momentum_breakout"


@dataclass(frozen=True)
class MomentumBreakoutParams:
    KIND: ClassVar[str] = KIND

    channel: int = field(default=20, metadata=bounds(2, 500))
    stop: Literal["atr", "percent"] = "atr"
    atr_period: int = field(default=14, metadata=bounds(1, 500))
    atr_multiplier: float = field(default=2.0, metadata=bounds(0.1, 20))
    stop_percent: float = field(default=5.0, metadata=bounds(0.1, 50))
    exit_channel: int = field(default=10, metadata=bounds(0, 500))  # 0: no channel exit

    def __post_init__(self) -> None:
        check_params(self)


class MomentumBreakout(Strategy):
    kind: ClassVar[str] = KIND

    def __init__(self, params: MomentumBreakoutParams | None = None) -> None:
        self.params = params or MomentumBreakoutParams()

    @property
    def lookback(self) -> int:
        p = self.params
        need = max(p.channel, p.exit_channel) + 1
        return max(need, p.atr_period + 1) if p.stop == "atr" else need

    def describe(self) -> str:
        p = self.params
        stop = (
            f"{p.atr_multiplier:g}xATR({p.atr_period})"
            if p.stop == "atr"
            else f"{p.stop_percent:g}%"
        )
        exit_ = f"{p.exit_channel}-bar opposite channel" if p.exit_channel else "stop only"
        return f"{KIND}(channel={p.channel}, stop={stop}, exit={exit_})"

    def _stop(
        self, window: Sequence[Candle], side: PositionSide, close: float
    ) -> tuple[float, str]:
        p = self.params
        sign = -1.0 if side is PositionSide.LONG else 1.0
        if p.stop == "atr":
            value = atr(window, p.atr_period)
            stop = close + sign * p.atr_multiplier * value
            return stop, (
                f"stop {p.atr_multiplier:g}xATR({p.atr_period}) "
                f"= {fmt(close)} {'-' if sign < 0 else '+'} {p.atr_multiplier:g}x{fmt(value)} "
                f"= {fmt(stop)}"
            )
        stop = close * (1 + sign * p.stop_percent / 100)
        return stop, f"stop {p.stop_percent:g}% = {fmt(stop)}"

    def entry_signal(self, window: Sequence[Candle]) -> Decision:
        n = self.params.channel
        close = window[-1].close
        ch = channel(window[:-1], n)
        if close > ch.high:
            side, why = PositionSide.LONG, f"broke the {n}-bar high {fmt(ch.high)}"
        elif close < ch.low:
            side, why = PositionSide.SHORT, f"broke the {n}-bar low {fmt(ch.low)}"
        else:
            return Decision.hold(
                f"close {fmt(close)} inside the {n}-bar channel {fmt(ch.low)}..{fmt(ch.high)}",
                close,
            )
        stop, stop_why = self._stop(window, side, close)
        return entry_or_hold(side, stop, close, f"close {fmt(close)} {why}; {stop_why}")

    def exit_signal(self, window: Sequence[Candle], position: Position) -> Decision:
        m = self.params.exit_channel
        close = window[-1].close
        side = position.side.value
        if m == 0:
            return Decision.hold(f"holding {side}: no channel exit, the stop ends the trade", close)
        ch = channel(window[:-1], m)
        if position.side is PositionSide.LONG and close < ch.low:
            return Decision.exit(
                f"close {fmt(close)} fell below the {m}-bar low {fmt(ch.low)}", close
            )
        if position.side is PositionSide.SHORT and close > ch.high:
            return Decision.exit(
                f"close {fmt(close)} rose above the {m}-bar high {fmt(ch.high)}", close
            )
        level = ch.low if position.side is PositionSide.LONG else ch.high
        where = "above" if position.side is PositionSide.LONG else "below"
        return Decision.hold(
            f"holding {side}: close {fmt(close)} {where} the {m}-bar exit level {fmt(level)}", close
        )
