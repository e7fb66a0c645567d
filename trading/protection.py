"""What counts as a position's protection: one rule for the guardian, the audit and status.

A stop protects a position when the exchange lists it live, on the closing side, reduce-only (or
closing the whole position), covering the position's full size (a whole-position stop always
does) and, when the price is known, on the protective side of it.

Stops the trader set in the venue's own UI (their client id is not one of Warden's) follow one
documented policy (README, "Stops you set yourself"):

- Warden never cancels them, for any reason: it did not place them, so it does not remove them.
- One that fits the rule above counts as the position's protection: Warden places no second stop.
  The trader chose that level; Warden shows it as the trader's own in `status` and `audit`.
- One that does not fit (partial size, wrong side, paused) is left in place and does not count:
  Warden protects the position with its own full-size stop and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trading.models import Market, Position, StopOrder, StopState


def misfit(stop: StopOrder, p: Position, market: Market, last: float | None = None) -> str | None:
    """Why ``stop`` does not protect ``p`` (None when it does)."""
    if stop.state is not StopState.LIVE:
        return f"it is {stop.state.value}, not in effect"
    if stop.side is not p.side.exit_side:
        return f"a {stop.side.value} stop cannot close a {p.side.value}"
    if not (stop.reduce_only or stop.whole_position):
        return "it is not reduce-only"
    if not stop.covers(p, market):
        return f"it covers {stop.size}, the position is {p.size}"
    if last is not None and not p.side.stop_is_protective(stop.trigger_price, last):
        return f"its trigger {stop.trigger_price} is already passed (last {last})"
    return None


@dataclass
class Protection:
    """A position's live stops, sorted by who placed them and whether they protect it."""

    ours_fit: list[StopOrder] = field(default_factory=list)
    ours_unfit: list[StopOrder] = field(default_factory=list)
    theirs_fit: list[StopOrder] = field(default_factory=list)
    theirs_unfit: list[tuple[StopOrder, str]] = field(default_factory=list)

    @property
    def protected(self) -> bool:
        return bool(self.ours_fit or self.theirs_fit)


def classify(
    p: Position, stops: list[StopOrder], market: Market, last: float | None = None
) -> Protection:
    out = Protection()
    for s in stops:
        if s.symbol != p.symbol:
            continue
        why = misfit(s, p, market, last)
        if s.placed_by_warden:
            (out.ours_unfit if why else out.ours_fit).append(s)
        elif why:
            out.theirs_unfit.append((s, why))
        else:
            out.theirs_fit.append(s)
    return out


def describe(stop: StopOrder) -> str:
    """A stop in a few words, e.g. 'whole position at 60000' or '0.01 at 60000'."""
    size = "whole position" if stop.whole_position else f"{stop.size:g}"
    return f"{stop.side.value} {size} at {stop.trigger_price:g}"


def shown_stop(p: Position, stops: list[StopOrder]) -> StopOrder | None:
    """The stop `status` shows for a position: a live one first, Warden's own before the
    trader's (a whole-position one first), else None."""
    closing = [s for s in stops if s.symbol == p.symbol and s.side is p.side.exit_side]
    closing.sort(
        key=lambda s: (s.state is not StopState.LIVE, not s.placed_by_warden, not s.whole_position)
    )
    return closing[0] if closing else None


def placed_by(stop: StopOrder) -> str:
    """``warden`` or ``trader`` (set in the venue's UI or by another program)."""
    return "warden" if stop.placed_by_warden else "trader"
