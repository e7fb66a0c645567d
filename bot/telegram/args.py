"""Command arguments, validated before anything is done: a wrong symbol, a missing size or a
non-number gets one line saying what is wrong, plus the command's usage."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from bot import symbols as symbols_
from trading.models import PositionSide

USAGE = {
    "status": "/status",
    "close": "/close SYMBOL|all [@EXCHANGE]",
    "open": "/open SYMBOL long|short SIZE [STOP] [@EXCHANGE]",
    "audit": "/audit [DAYS]",
    "pnl": "/pnl [DAYS]",
    "chart": "/chart SYMBOL [HOURS] [@EXCHANGE]",
    "cycle": "/cycle [STRATEGY]",
    "pause": "/pause [EXCHANGE]",
    "resume": "/resume [EXCHANGE]",
    "help": "/help",
}
MAX_DAYS = 3650
AUDIT_DAYS = 30  # as `warden audit --since-days`


class UsageError(Exception):
    """What is wrong with the arguments; the reply adds the command's usage."""

    def __init__(self, command: str, problem: str) -> None:
        super().__init__(problem)
        self.command = command
        self.problem = problem

    @property
    def usage(self) -> str:
        return USAGE[self.command]


def take_exchange(
    command: str, args: Sequence[str], exchanges: Iterable[str]
) -> tuple[list[str], str | None]:
    """Split off an ``@EXCHANGE`` argument (optional wherever an exchange can be chosen)."""
    rest: list[str] = []
    chosen: str | None = None
    names = list(exchanges)
    for a in args:
        if a.startswith("@"):
            if chosen is not None:
                raise UsageError(command, "more than one @EXCHANGE given")
            chosen = a[1:]
            if chosen not in names:
                raise UsageError(
                    command, f"unknown exchange {chosen!r} (configured: {', '.join(names)})"
                )
        else:
            rest.append(a)
    return rest, chosen


def resolve_symbol(command: str, text: str, symbols: Iterable[str]) -> str:
    """A known symbol from what was typed: ``BTC/USDT:USDT``, ``btc`` or ``BTCUSDT`` (the same
    parser as the CLI's, ``bot.symbols``)."""
    try:
        return symbols_.resolve_symbol(text, symbols)
    except symbols_.SymbolError as exc:
        raise UsageError(command, str(exc)) from None


def positive_number(command: str, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(command, f"{what} {text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise UsageError(command, f"{what} must be a positive number (got {text})")
    return value


def side(command: str, text: str) -> PositionSide:
    try:
        return PositionSide(text.lower())
    except ValueError:
        raise UsageError(command, f"side must be long or short (got {text!r})") from None


def days(command: str, args: Sequence[str]) -> int | None:
    if not args:
        return None
    if len(args) > 1:
        raise UsageError(command, "too many arguments")
    try:
        value = int(args[0])
    except ValueError:
        raise UsageError(command, f"DAYS {args[0]!r} is not a whole number") from None
    if not 1 <= value <= MAX_DAYS:
        raise UsageError(command, f"DAYS must be between 1 and {MAX_DAYS} (got {value})")
    return value


def hours(command: str, text: str, most: float) -> float:
    value = positive_number(command, text, "HOURS")
    if value > most:
        raise UsageError(command, f"HOURS must be at most {most:g} (got {text})")
    return value


def no_args(command: str, args: Sequence[str]) -> None:
    if args:
        raise UsageError(command, f"{USAGE[command]} takes no arguments")
