"""The guardian's plan (trading/guard_plan.py) as plain tables: each row a situation of one
position and its live stops, and the actions the plan must return, in order.

The plan is a pure function, so nothing here touches an exchange or a database; the guardian
that carries the actions out is tested against the real paper exchange in test_guardian.py and
test_trader_stops_and_refusals.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from trading.guard_plan import (
    LEVEL_PASSED,
    Action,
    CancelStop,
    EmergencyClose,
    Facts,
    IgnoreStaleLevel,
    Keep,
    KeepTraderStop,
    NoteTraderStop,
    PlaceStop,
    RaiseUnprotected,
    needs_diagnosis,
    plan,
    plan_orphans,
)
from trading.journal import Attribution
from trading.models import Market, OrderSide, Position, PositionSide, StopOrder, StopState

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
MARKET = Market(BTC, "BTC", "USDT", 1.0, 0.0001, 0.0001, 0.1)
LONG = Position(BTC, PositionSide.LONG, 0.01, 69_000.0)
SHORT = Position(BTC, PositionSide.SHORT, 0.01, 69_000.0)
LAST = 69_060.0
SINCE = 1_000.0
EXE, EXT = Attribution.EXECUTION, Attribution.EXTERNAL
BUY, SELL = OrderSide.BUY, OrderSide.SELL


def stop(
    name: str,
    side: OrderSide = SELL,
    size: float = 0.01,
    trigger: float = 65_600.0,
    state: StopState = StopState.LIVE,
    *,
    warden: bool = True,
    whole: bool = False,
    symbol: str = BTC,
) -> StopOrder:
    client_id = f"wd0a1b2cs{name}" if warden else f"myui{name}"
    return StopOrder(
        symbol, name, client_id, side, size, trigger, state, True, whole_position=whole
    )


# Warden's own stops
OK = stop("ok")  # live, closing side, full size, below the price: protects LONG
OK2 = stop("ok2", trigger=66_000.0)
SMALL = stop("small", size=0.005)
WRONG_SIDE = stop("wrongside", BUY, trigger=72_000.0)
PAUSED = stop("paused", state=StopState.PAUSED)
SHORT_OK = stop("shortok", BUY, trigger=72_000.0)
# stops the trader set in the venue's UI
THEIRS = stop("1", trigger=64_000.0, warden=False)
THEIRS_WHOLE = stop("2", size=0.0, trigger=63_000.0, warden=False, whole=True)
THEIRS_PARTIAL = stop("3", size=0.004, trigger=64_000.0, warden=False)

NO_STOP_AT_ALL = "no stop at all for a position Warden did not open"
DEFAULT_LEVEL = 62_100.0  # 10% under the entry of 69,000


def facts(why: str | None = None, attribution: Attribution = EXE) -> Facts:
    return Facts(10.0, why, attribution, SINCE if why else None)


@dataclass(frozen=True)
class Row:
    situation: str
    position: Position
    live: tuple[StopOrder, ...]
    desired: float | None
    facts: Facts
    expected: tuple[Action, ...]
    last: float = LAST


def unprotected(
    why: str, level: float, attribution: Attribution = EXE, last: float = LAST
) -> RaiseUnprotected:
    return RaiseUnprotected(why, attribution, level, last, SINCE)


def place(
    why: str,
    level: float,
    attribution: Attribution = EXE,
    replaces: tuple[StopOrder, ...] = (),
    left: tuple[tuple[StopOrder, str], ...] = (),
) -> PlaceStop:
    return PlaceStop(level, 0.01, why, attribution, SINCE, replaces, left)


PARTIAL_WHY = "it covers 0.004, the position is 0.01"

ROWS = [
    Row("protected by one Warden stop", LONG, (OK,), 65_600.0, facts(), (Keep(OK),)),
    Row(
        "extra Warden stops: the one nearest the desired level stays",
        LONG,
        (OK, OK2),
        66_000.0,
        facts(),
        (CancelStop(OK, "extra"), Keep(OK2)),
    ),
    Row(
        "missing stop, a level on record",
        LONG,
        (),
        65_600.0,
        facts("entry wd1 filled but no stop was placed for it"),
        (
            unprotected("entry wd1 filled but no stop was placed for it", 65_600.0),
            place("entry wd1 filled but no stop was placed for it", 65_600.0),
        ),
    ),
    Row(
        "missing stop, a position Warden did not open: the default distance",
        LONG,
        (),
        None,
        facts(NO_STOP_AT_ALL, EXT),
        (
            unprotected(NO_STOP_AT_ALL, DEFAULT_LEVEL, EXT),
            place(NO_STOP_AT_ALL, DEFAULT_LEVEL, EXT),
        ),
    ),
    Row(
        "mis-sized Warden stop: its level is kept, a full-size stop replaces it",
        LONG,
        (SMALL,),
        None,
        facts("stop size 0.005 does not cover position 0.01"),
        (
            unprotected("stop size 0.005 does not cover position 0.01", 65_600.0),
            place("stop size 0.005 does not cover position 0.01", 65_600.0, replaces=(SMALL,)),
        ),
    ),
    Row(
        "Warden stop on the wrong side",
        LONG,
        (WRONG_SIDE,),
        65_600.0,
        facts("stop on the wrong side or not reduce-only"),
        (
            unprotected("stop on the wrong side or not reduce-only", 65_600.0),
            place("stop on the wrong side or not reduce-only", 65_600.0, replaces=(WRONG_SIDE,)),
        ),
    ),
    Row(
        "paused Warden stop: not in effect, replaced",
        LONG,
        (PAUSED,),
        65_600.0,
        facts("stop wd0a1b2cspaused is paused on the exchange (not in effect)", EXT),
        (
            unprotected(
                "stop wd0a1b2cspaused is paused on the exchange (not in effect)", 65_600.0, EXT
            ),
            place(
                "stop wd0a1b2cspaused is paused on the exchange (not in effect)",
                65_600.0,
                EXT,
                replaces=(PAUSED,),
            ),
        ),
    ),
    Row(
        "triggered but the position remains: a new stop",
        LONG,
        (),
        65_600.0,
        facts("stop wd9 triggered but the position remains (its order did not close it)", EXT),
        (
            unprotected(
                "stop wd9 triggered but the position remains (its order did not close it)",
                65_600.0,
                EXT,
            ),
            place(
                "stop wd9 triggered but the position remains (its order did not close it)",
                65_600.0,
                EXT,
            ),
        ),
    ),
    Row(
        "level passed: the price is under the level, Warden's stop (not fired) canceled first",
        LONG,
        (OK,),
        65_600.0,
        facts("stop on the wrong side or not reduce-only"),
        (
            unprotected("stop on the wrong side or not reduce-only", 65_600.0, last=65_000.0),
            CancelStop(OK, "before emergency close"),
            EmergencyClose(65_600.0, "stop on the wrong side or not reduce-only", EXE, SINCE),
        ),
        last=65_000.0,
    ),
    Row(
        "trader's covering stop: the protection; Warden's unfit one goes, theirs stays",
        LONG,
        (THEIRS, SMALL),
        65_600.0,
        facts(),
        (CancelStop(SMALL, "unfit"), KeepTraderStop(THEIRS)),
    ),
    Row(
        "trader's whole-position stop covers any size",
        LONG,
        (THEIRS_WHOLE,),
        None,
        facts(),
        (KeepTraderStop(THEIRS_WHOLE),),
    ),
    Row(
        "trader's partial stop: left in place, Warden adds its own full-size stop",
        LONG,
        (THEIRS_PARTIAL,),
        65_600.0,
        facts(NO_STOP_AT_ALL, EXT),
        (
            NoteTraderStop(
                THEIRS_PARTIAL, f"does not protect the position ({PARTIAL_WHY}); left in place"
            ),
            unprotected(NO_STOP_AT_ALL, 65_600.0, EXT),
            place(NO_STOP_AT_ALL, 65_600.0, EXT, left=((THEIRS_PARTIAL, PARTIAL_WHY),)),
        ),
    ),
    Row(
        "a level on the wrong side of the entry belongs to another trade: ignored",
        LONG,
        (OK,),
        70_000.0,
        facts(),
        (IgnoreStaleLevel(70_000.0), Keep(OK)),
    ),
    Row(
        "a short protected by a buy stop above",
        SHORT,
        (SHORT_OK,),
        72_000.0,
        facts(),
        (Keep(SHORT_OK),),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.situation for r in ROWS])
def test_the_plan_for_each_situation(row: Row) -> None:
    actions = plan(row.position, list(row.live), row.desired, MARKET, row.last, row.facts)
    assert tuple(actions) == row.expected
    # the trader's stops are never canceled, whatever the situation
    assert all(a.stop.placed_by_warden for a in actions if isinstance(a, CancelStop))
    # needs_diagnosis says exactly when the plan needs the why
    assert needs_diagnosis(row.position, list(row.live), MARKET, row.last) == any(
        isinstance(a, RaiseUnprotected) for a in actions
    )


def test_an_emergency_close_says_the_level_is_passed() -> None:
    [*_, close] = plan(LONG, [], 65_600.0, MARKET, 65_000.0, facts("why"))
    assert isinstance(close, EmergencyClose) and close.reason == LEVEL_PASSED


def test_an_unprotected_position_without_its_diagnosis_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="BTC/USDT:USDT: an unprotected position needs"):
        plan(LONG, [], 65_600.0, MARKET, LAST, facts())


ORPHAN_ROWS = [
    ("no stops", (), set(), ()),
    ("Warden's stop without a position: canceled", (OK,), set(), (CancelStop(OK, "orphan"),)),
    (
        "the trader's stop without a position: left",
        (THEIRS,),
        set(),
        (NoteTraderStop(THEIRS, "no position; left in place (Warden never cancels it)"),),
    ),
    ("a stop of a held symbol is not an orphan", (OK, THEIRS), {BTC}, ()),
    (
        "only the symbols without a position",
        (OK, stop("eth", symbol=ETH)),
        {BTC},
        (CancelStop(stop("eth", symbol=ETH), "orphan"),),
    ),
]


@pytest.mark.parametrize(("situation", "live", "held", "expected"), ORPHAN_ROWS)
def test_the_plan_for_stops_without_a_position(
    situation: str, live: tuple[StopOrder, ...], held: set[str], expected: tuple[Action, ...]
) -> None:
    assert tuple(plan_orphans(list(live), held)) == expected, situation
