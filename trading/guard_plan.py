"""The guardian's decisions as a pure function: what a position and its live stops need (I5).

``plan(position, live_stops, desired_level, market, last_price, facts)`` reads nothing and
writes nothing; it returns the actions, in order, that ``trading.guardian.Guardian`` carries out.
The one rule for what protects a position, and the policy for stops the trader set in the
venue's UI (never canceled; a covering one is the protection), is ``trading.protection``'s.

- protected by a Warden stop: ``Keep`` the one nearest the desired level, ``CancelStop`` the
  other Warden stops ("extra");
- protected by the trader's own stop: ``KeepTraderStop``, ``CancelStop`` Warden's ("unfit");
- unprotected: ``RaiseUnprotected`` (the incident), then ``PlaceStop`` when the level is still
  ahead of the price, or ``EmergencyClose`` when the price is already beyond it.

``PlaceStop`` carries its own follow-up, which depends on what the exchange then shows (I4): a
stop read back live replaces the Warden stops in ``replaces``; none to be had means those are
canceled and the position closed at market.

Stops of a symbol with no position: ``plan_orphans``.
"""

from __future__ import annotations

from dataclasses import dataclass

from trading.journal import Attribution
from trading.models import Market, Position, PositionSide, StopOrder
from trading.protection import classify

LEVEL_PASSED = "stop level already passed"


@dataclass(frozen=True)
class Facts:
    """What the plan needs beyond the exchange's view. ``why``/``attribution``/``since`` are
    the diagnosis of an unprotected position (read from the journal and the stop's own record
    by the guardian, only when ``needs_diagnosis`` says so)."""

    default_stop_percent: float
    why: str | None = None
    attribution: Attribution = Attribution.EXECUTION
    unprotected_since: float | None = None


@dataclass(frozen=True)
class IgnoreStaleLevel:
    """The journal's level is on the wrong side of this position's entry: it belongs to another
    trade (an earlier one, the other side) and would 'pass' at once and close this one."""

    level: float


@dataclass(frozen=True)
class NoteTraderStop:
    """Say what Warden makes of a stop the trader set; it is left in place."""

    stop: StopOrder
    verdict: str


@dataclass(frozen=True)
class Keep:
    """This Warden stop is the position's protection: mark it seen live, resolve incidents."""

    stop: StopOrder


@dataclass(frozen=True)
class KeepTraderStop:
    """The trader's own stop protects the position: Warden places none and resolves."""

    stop: StopOrder


@dataclass(frozen=True)
class CancelStop:
    """Cancel a Warden stop. ``why``: "extra" (another Warden stop protects), "unfit" (it does
    not protect; something else does), "orphan" (no position)."""

    stop: StopOrder
    why: str


@dataclass(frozen=True)
class RaiseUnprotected:
    """The "unprotected_position" incident (critical alert) before the repair."""

    why: str
    attribution: Attribution
    level: float
    last_price: float
    since: float | None


@dataclass(frozen=True)
class PlaceStop:
    """Place a full-size stop and read it back. Live: cancel ``replaces`` (Warden's unfit
    stops) and report the trader's unfit ones ``left_in_place``. No live stop to be had:
    cancel ``replaces`` and close at market (``EmergencyClose`` with the same why)."""

    level: float
    size: float
    why: str
    attribution: Attribution
    since: float | None
    replaces: tuple[StopOrder, ...] = ()
    left_in_place: tuple[tuple[StopOrder, str], ...] = ()


@dataclass(frozen=True)
class EmergencyClose:
    """Close at market, reduce-only: the price is beyond the level, no stop can protect."""

    level: float
    why: str
    attribution: Attribution
    since: float | None
    reason: str = LEVEL_PASSED


Action = (
    IgnoreStaleLevel
    | NoteTraderStop
    | Keep
    | KeepTraderStop
    | CancelStop
    | RaiseUnprotected
    | PlaceStop
    | EmergencyClose
)


def default_level(p: Position, percent: float, market: Market) -> float:
    """A stop ``percent`` away from the entry, for a position Warden knows no level for."""
    factor = 1 - percent / 100 if p.side is PositionSide.LONG else 1 + percent / 100
    return market.round_price(p.entry_price * factor)


def needs_diagnosis(p: Position, live_stops: list[StopOrder], market: Market, last: float) -> bool:
    """True when no live stop protects ``p``: the plan then needs ``Facts.why``."""
    return not classify(p, live_stops, market, last).protected


def plan(
    position: Position,
    live_stops: list[StopOrder],
    desired_level: float | None,
    market: Market,
    last_price: float,
    facts: Facts,
) -> list[Action]:
    p = position
    actions: list[Action] = []
    desired = desired_level
    if desired is not None and not p.side.stop_is_protective(desired, p.entry_price):
        actions.append(IgnoreStaleLevel(desired))
        desired = None
    prot = classify(p, live_stops, market, last_price)
    ours = [s for s in live_stops if s.symbol == p.symbol and s.placed_by_warden]
    for s, unfit in prot.theirs_unfit:
        actions.append(NoteTraderStop(s, f"does not protect the position ({unfit}); left in place"))
    if prot.ours_fit:
        target = desired
        keep = min(
            prot.ours_fit,
            key=lambda s: abs(s.trigger_price - (target or s.trigger_price)),
        )
        actions += [CancelStop(s, "extra") for s in ours if s is not keep]
        actions.append(Keep(keep))
        return actions
    if prot.theirs_fit:
        actions += [CancelStop(s, "unfit") for s in ours]
        actions.append(KeepTraderStop(prot.theirs_fit[0]))
        return actions

    if facts.why is None:
        raise ValueError(f"{p.symbol}: an unprotected position needs its diagnosis (Facts.why)")
    if desired is None:
        sized = [s for s in live_stops if s.symbol == p.symbol and s.side is p.side.exit_side]
        desired = (
            sized[0].trigger_price
            if sized
            else default_level(p, facts.default_stop_percent, market)
        )
    since = facts.unprotected_since
    actions.append(RaiseUnprotected(facts.why, facts.attribution, desired, last_price, since))
    if not p.side.stop_is_protective(desired, last_price):
        actions += [CancelStop(s, "before emergency close") for s in ours]
        actions.append(EmergencyClose(desired, facts.why, facts.attribution, since))
        return actions
    actions.append(
        PlaceStop(
            desired,
            p.size,
            facts.why,
            facts.attribution,
            since,
            replaces=tuple(ours),
            left_in_place=tuple(prot.theirs_unfit),
        )
    )
    return actions


def plan_orphans(stops: list[StopOrder], held: set[str]) -> list[Action]:
    """Live stops whose symbol has no position: Warden's are canceled, the trader's left."""
    actions: list[Action] = []
    for s in stops:
        if s.symbol in held:
            continue
        if s.placed_by_warden:
            actions.append(CancelStop(s, "orphan"))
        else:
            actions.append(
                NoteTraderStop(s, "no position; left in place (Warden never cancels it)")
            )
    return actions
