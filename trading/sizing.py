"""Position sizing: how much to buy or sell for an entry, or a refusal that says why.

1. Base size: ``fixed`` (a size in base units) or ``risk``: the size that loses
   ``equity x risk_per_trade`` if the stop fills at its price: ``equity x risk / |entry - stop|``.
2. Caps: leverage (notional <= equity x max_leverage), max notional per position, max open
   positions (a refusal when already reached).
3. Rounded DOWN to the market's size step; below the market minimum is a refusal, never a zero.

Fees and slippage are not in the risk figure: the stop's price is where the loss is counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from trading.models import Market, PositionSide
from trading.settings import RiskLimits


class SizingMode(StrEnum):
    FIXED = "fixed"
    RISK = "risk"


@dataclass(frozen=True)
class SizingRules:
    mode: SizingMode = SizingMode.RISK
    size: float | None = None  # base units; the fixed mode's size
    risk_per_trade: float = 0.01  # fraction of equity lost at the stop
    max_leverage: float = 5.0
    max_notional: float | None = None  # quote currency, per position
    max_open_positions: int = 2

    def __post_init__(self) -> None:
        if self.mode is SizingMode.FIXED and not _positive(self.size):
            raise ValueError(f"fixed sizing needs a size > 0, got {self.size}")
        if not (_positive(self.risk_per_trade) and self.risk_per_trade <= 1):
            raise ValueError(f"risk_per_trade must be in (0, 1], got {self.risk_per_trade}")
        if not _positive(self.max_leverage):
            raise ValueError(f"max_leverage must be > 0, got {self.max_leverage}")
        if self.max_notional is not None and not _positive(self.max_notional):
            raise ValueError(f"max_notional must be > 0, got {self.max_notional}")
        if self.max_open_positions < 1:
            raise ValueError(f"max_open_positions must be >= 1, got {self.max_open_positions}")

    @classmethod
    def from_limits(
        cls,
        limits: RiskLimits,
        *,
        mode: SizingMode = SizingMode.RISK,
        size: float | None = None,
        risk_per_trade: float = 0.01,
    ) -> SizingRules:
        return cls(
            mode=mode,
            size=size,
            risk_per_trade=risk_per_trade,
            max_leverage=limits.max_leverage,
            max_notional=limits.max_notional,
            max_open_positions=limits.max_open_positions,
        )


@dataclass(frozen=True)
class Sized:
    size: float  # base units, a multiple of the size step, >= the market minimum
    notional: float  # size x entry
    risk: float  # quote lost if the stop fills at its price
    notes: tuple[str, ...]  # how the size was reached, step by step

    @property
    def reason(self) -> str:
        return "; ".join(self.notes)


@dataclass(frozen=True)
class Refused:
    reason: str


SizeResult = Sized | Refused


def _positive(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def _g(x: float) -> str:
    return f"{x:.8g}"


def size_position(
    rules: SizingRules,
    market: Market,
    *,
    side: PositionSide,
    equity: float,
    entry: float,
    stop: float,
    open_positions: int = 0,
) -> SizeResult:
    """The entry size for ``side`` at about ``entry`` with ``stop``, or why there is none."""
    if open_positions >= rules.max_open_positions:
        return Refused(f"{open_positions} positions open, the limit is {rules.max_open_positions}")
    if not _positive(equity):
        return Refused(f"equity {equity} is not positive")
    if not (_positive(entry) and _positive(stop)):
        return Refused(f"entry {entry} and stop {stop} must be positive prices")
    if not side.stop_is_protective(stop, entry):
        where = "below" if side is PositionSide.LONG else "above"
        return Refused(f"a {side.value} stop must be {where} the entry {_g(entry)}, got {_g(stop)}")
    distance = abs(entry - stop)
    base = market.base
    if rules.mode is SizingMode.FIXED:
        assert rules.size is not None  # checked in SizingRules
        size = rules.size
        notes = [f"fixed size {_g(size)} {base}"]
    else:
        budget = equity * rules.risk_per_trade
        size = budget / distance
        notes = [
            f"risk {rules.risk_per_trade:.4g} of equity {_g(equity)} = {budget:.2f} at "
            f"{_g(distance)} ({distance / entry * 100:.2f}%) from the stop -> {_g(size)} {base}"
        ]
    caps = [(equity * rules.max_leverage / entry, f"max_leverage {rules.max_leverage:g}")]
    if rules.max_notional is not None:
        caps.append((rules.max_notional / entry, f"max_notional {_g(rules.max_notional)}"))
    for cap, name in caps:
        if size > cap:
            notes.append(f"capped by {name} -> {_g(cap)} {base}")
            size = cap
    rounded = market.round_size(size)
    if rounded != size:
        notes.append(f"rounded down to the step {_g(market.size_step)} -> {_g(rounded)} {base}")
    if rounded <= 0 or not market.size_ok(rounded):
        notes.append(f"below the market minimum {_g(market.min_size)} {base}")
        return Refused("size refused: " + "; ".join(notes))
    return Sized(rounded, rounded * entry, rounded * distance, tuple(notes))
