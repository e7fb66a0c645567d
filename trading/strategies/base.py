"""What a strategy returns, the base every strategy extends, and typed parameter checks.

A strategy is a pure function of closed candles (and the current position) to a ``Decision``:
no I/O, no clock, no randomness, no state between calls. It sees only the candles it is given and,
of those, only the last ``lookback`` (see ``Strategy.decide``), so a live cycle that fetched a
short window and a backtest walking the whole history reach the same decision on the same candle.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any, ClassVar, Literal

from trading.models import Candle, Position, PositionSide


class Action(StrEnum):
    ENTER = "enter"
    EXIT = "exit"
    HOLD = "hold"


@dataclass(frozen=True)
class Decision:
    """One strategy answer. ``enter`` carries the side, the stop and the close it was taken on."""

    action: Action
    reason: str
    side: PositionSide | None = None
    stop: float | None = None
    price: float | None = None  # the last close seen: the entry reference for sizing

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise ValueError("a decision always carries a human-readable reason")
        if self.action is not Action.ENTER:
            if self.side is not None or self.stop is not None:
                raise ValueError(f"a {self.action.value} decision carries no side or stop")
            return
        if self.side is None or self.stop is None or self.price is None:
            raise ValueError("an enter decision needs a side, a stop and a price")
        if not (_positive(self.stop) and _positive(self.price)):
            raise ValueError(f"stop {self.stop} and price {self.price} must be finite and > 0")
        if not self.side.stop_is_protective(self.stop, self.price):
            where = "below" if self.side is PositionSide.LONG else "above"
            raise ValueError(f"a {self.side.value} stop must be {where} the price {self.price}")

    @classmethod
    def enter(cls, side: PositionSide, stop: float, price: float, reason: str) -> Decision:
        return cls(Action.ENTER, reason, side=side, stop=stop, price=price)

    @classmethod
    def exit(cls, reason: str, price: float | None = None) -> Decision:
        return cls(Action.EXIT, reason, price=price)

    @classmethod
    def hold(cls, reason: str, price: float | None = None) -> Decision:
        return cls(Action.HOLD, reason, price=price)


def _positive(x: float) -> bool:
    return math.isfinite(x) and x > 0


def fmt(x: float) -> str:
    """A price or indicator value for a reason: short, but enough digits to check by hand."""
    return f"{x:.8g}"


def entry_or_hold(side: PositionSide, stop: float, price: float, reason: str) -> Decision:
    """An entry, unless the stop is unusable (zero volatility, past zero): then hold, saying why."""
    if _positive(stop) and side.stop_is_protective(stop, price):
        return Decision.enter(side, stop, price, reason)
    where = "below" if side is PositionSide.LONG else "above"
    return Decision.hold(
        f"{reason}; not entering: the stop {fmt(stop)} is not a positive price {where} the "
        f"close {fmt(price)}",
        price,
    )


class Strategy(ABC):
    """Extend with ``entry_signal`` and ``exit_signal``; callers use ``decide`` only."""

    kind: ClassVar[str]

    @property
    @abstractmethod
    def lookback(self) -> int:
        """How many closed candles a decision needs (and the most it ever looks at)."""

    @abstractmethod
    def describe(self) -> str:
        """The kind and its parameters, for logs and reports."""

    @abstractmethod
    def entry_signal(self, window: Sequence[Candle]) -> Decision:
        """Enter or hold, on exactly ``lookback`` candles, with no position open."""

    @abstractmethod
    def exit_signal(self, window: Sequence[Candle], position: Position) -> Decision:
        """Exit or hold, on exactly ``lookback`` candles, with ``position`` open."""

    def decide(self, candles: Sequence[Candle], position: Position | None = None) -> Decision:
        """The decision on the last candle of ``candles`` (oldest first, all closed).

        With a position open the answer is never ``enter``: an exit rule firing, or an entry signal
        for the opposite side, gives ``exit``; anything else ``hold``.
        """
        need, have = self.lookback, len(candles)
        if have < need:
            return Decision.hold(f"warming up: need {need} candles, have {have}")
        window = candles[have - need :]
        if position is None:
            return self.entry_signal(window)
        decided = self.exit_signal(window, position)
        if decided.action is Action.EXIT:
            return decided
        signal = self.entry_signal(window)
        if signal.action is Action.ENTER and signal.side is not position.side:
            return Decision.exit(
                f"opposite signal while {position.side.value}: {signal.reason}", signal.price
            )
        return Decision.hold(decided.reason, decided.price)


# --- parameters -------------------------------------------------------------------------------


class ParamError(ValueError):
    """A strategy parameter is unknown, of the wrong type or out of range; names the parameter."""

    def __init__(self, kind: str, param: str, detail: str) -> None:
        self.kind = kind
        self.param = param
        self.detail = detail
        super().__init__(f"{kind} parameter '{param}' {detail}")


def bounds(lo: float, hi: float) -> dict[str, float]:
    """Field metadata: the inclusive range of a numeric parameter."""
    return {"min": lo, "max": hi}


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: type  # int, float, str or bool
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None

    def describe(self) -> str:
        if self.choices:
            return " | ".join(self.choices)
        if self.min is not None:
            return f"{self.min:g}..{self.max:g}"
        return self.type.__name__


@cache
def param_specs(params_type: type) -> tuple[ParamSpec, ...]:
    """The parameters of a frozen params dataclass, from its annotations and field metadata."""
    hints = typing.get_type_hints(params_type)
    specs = []
    for f in dataclasses.fields(params_type):
        hint = hints[f.name]
        choices = None
        if typing.get_origin(hint) is Literal:
            choices = tuple(str(a) for a in typing.get_args(hint))
            hint = str
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        specs.append(ParamSpec(f.name, hint, f.default, lo, hi, choices))
    return tuple(specs)


def check_params(params: Any) -> None:
    """Validate a params dataclass in place (from ``__post_init__``); ints become floats."""
    cls: type = type(params)
    kind: str = getattr(cls, "KIND", cls.__name__)
    for spec in param_specs(cls):
        value = getattr(params, spec.name)
        got = f"got {type(value).__name__} {value!r}"
        if spec.type is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ParamError(kind, spec.name, f"must be a number, {got}")
            if not math.isfinite(value):
                raise ParamError(kind, spec.name, f"must be a finite number, {got}")
            value = float(value)
            object.__setattr__(params, spec.name, value)
        elif spec.type is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ParamError(kind, spec.name, f"must be an integer, {got}")
        elif spec.type is str and not isinstance(value, str):
            raise ParamError(kind, spec.name, f"must be a string, {got}")
        if spec.choices is not None and value not in spec.choices:
            allowed = ", ".join(repr(c) for c in spec.choices)
            raise ParamError(kind, spec.name, f"must be one of {allowed}, got {value!r}")
        if spec.min is not None and spec.max is not None and not spec.min <= value <= spec.max:
            raise ParamError(
                kind, spec.name, f"must be between {spec.min:g} and {spec.max:g}, got {value!r}"
            )
