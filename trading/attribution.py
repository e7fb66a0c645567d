"""Whose fills a trade is made of, why it ended, and who pays for its loss.

The exchange's fills are the truth about what happened. The journal says which of them were
Warden's (by client id, or by the id of a stop Warden placed), why Warden sent them (the
intent's purpose, the exit reason) and what an emergency close cost beyond its stop level.
Every loss is split into strategy (a stop hit as designed) and execution (money lost to a
fault: extra size, an emergency close past the stop level, slippage beyond the bound).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from trading.journal import (
    Attribution,
    Exit,
    ExitReason,
    Incident,
    Intent,
    IntentKind,
    Purpose,
    PurposeKind,
    StopRecord,
    exit_reason_text,
    is_emergency_reason,
)
from trading.models import Fill, OrderSide, PositionSide, StopOrder
from trading.stops import emergency_cost

EPS = 1e-9  # base units: below this a position is flat
MATCH_WINDOW = 120.0  # seconds from an intent's fill to the exit / incident rows written after it
DEFAULT_SLIPPAGE_BOUND_BPS = 10.0
T = TypeVar("T")


class FaultKind(StrEnum):
    EXTRA_SIZE = "extra_size"  # size beyond what Warden's own entries add up to
    EMERGENCY_CLOSE = "emergency_close"  # closed at market beyond the stop level
    STOP_SLIPPAGE = "stop_slippage"  # a stop's fill beyond the bound from its trigger
    ENTRY_SLIPPAGE = "entry_slippage"  # an entry's fill beyond the bound from the decision price


class Label(StrEnum):
    NONE = "none"  # not a loss
    STRATEGY = "strategy"
    EXECUTION = "execution"
    MIXED = "mixed"  # part strategy, part execution
    EXTERNAL = "external"  # a trade Warden did not enter


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    cost: float  # money, quote currency
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "cost": round(self.cost, 8), "detail": self.detail}


@dataclass(frozen=True)
class Part:
    """The share of one fill that belongs to one trade (a flip splits a fill in two)."""

    fill: Fill
    size: float

    @property
    def share(self) -> float:
        return self.size / self.fill.size if self.fill.size > 0 else 0.0

    @property
    def fee(self) -> float:
        return self.fill.fee * self.share

    @property
    def funding(self) -> float:
        return self.fill.funding * self.share


@dataclass(frozen=True)
class ExitNote:  # a row of the journal's exit table: why Warden closed a position
    symbol: str
    reason: str
    at: float

    @property
    def is_emergency(self) -> bool:
        return is_emergency_reason(self.reason)


@dataclass(frozen=True)
class JournalView:
    """What the journal says about an account, indexed for matching fills."""

    intents: Mapping[str, Intent]  # by client id
    stop_triggers: Mapping[str, float]  # exchange id of every stop Warden placed -> trigger
    exits: tuple[ExitNote, ...] = ()
    incidents: tuple[Incident, ...] = ()
    # entry intent client id -> the price the decision to enter was taken at, where known
    decision_prices: Mapping[str, float] = field(default_factory=dict)

    def intent_of(self, fill: Fill) -> Intent | None:
        return self.intents.get(fill.client_id) if fill.client_id else None

    def exit_note(self, intent: Intent) -> ExitNote | None:
        """The exit row Warden wrote for this close (emergency rows for emergency closes;
        stop-loss rows, written when a stop's firing is noticed, never match a close)."""
        emergency = intent.kind is IntentKind.EMERGENCY_CLOSE
        near = [
            (e.at, e)
            for e in self.exits
            if e.symbol == intent.symbol
            and e.is_emergency == emergency
            and e.reason != ExitReason.STOP_LOSS
        ]
        return _nearest(near, intent.updated_at)

    def emergency_incident(self, intent: Intent) -> Incident | None:
        near = [
            (i.opened_at, i)
            for i in self.incidents
            if i.kind == "emergency_close" and i.symbol == intent.symbol
        ]
        return _nearest(near, intent.updated_at)


def _nearest(rows: list[tuple[float, T]], at: float) -> T | None:
    """The row written closest to ``at``, from just before it to MATCH_WINDOW after."""
    near = [(abs(t - at), i) for i, (t, _) in enumerate(rows) if at - 1 <= t <= at + MATCH_WINDOW]
    return rows[min(near)[1]][1] if near else None


class AccountingJournal(Protocol):
    """The journal reads accounting needs (storage.journal_store.JournalStore has them)."""

    async def intents(self, scope: str | None = None, limit: int = 100) -> list[Intent]: ...
    async def stops_for(self, scope: str, symbol: str, limit: int = 20) -> list[StopRecord]: ...
    async def exits(self, scope: str | None = None) -> list[Exit]: ...
    async def incidents(self, scope: str | None = None, limit: int = 100) -> list[Incident]: ...


async def read_journal(
    journal: AccountingJournal,
    scope: str,
    symbols: Iterable[str],
    history: Sequence[StopOrder],
    decision_prices: Mapping[str, float] | None = None,
) -> JournalView:
    """Everything the journal knows about ``scope``; ``history`` (the exchange's ended stops)
    maps Warden's stop client ids to exchange ids when a record never learned its id."""
    intents = {i.client_id: i for i in await journal.intents(scope, limit=1_000_000)}
    records: list[StopRecord] = []
    for symbol in sorted(set(symbols)):
        records += await journal.stops_for(scope, symbol, limit=1_000_000)
    triggers = {r.exchange_id: r.trigger_price for r in records if r.exchange_id}
    mine = {r.client_id for r in records}
    triggers.update({s.id: s.trigger_price for s in history if s.client_id in mine})
    exits = tuple(ExitNote(e.symbol, e.reason, e.at) for e in await journal.exits(scope))
    incidents = tuple(await journal.incidents(scope, limit=1_000_000))
    return JournalView(intents, triggers, exits, incidents, dict(decision_prices or {}))


def strategy_of(purpose: str) -> str:
    """The strategy a purpose names: 'cycle NAME' -> NAME; any other (cli, telegram): manual."""
    return Purpose.parse(purpose).owner


def exit_reason(fill: Fill, view: JournalView) -> str:
    """stop_loss (Warden's stop), emergency(<why>), signal/manual (Warden's close), external."""
    if fill.stop_id is not None and fill.stop_id in view.stop_triggers:
        return "stop_loss"
    intent = view.intent_of(fill)
    if intent is None or intent.kind is IntentKind.ENTRY:
        return "external"
    note = view.exit_note(intent)
    if note is not None:
        return note.reason
    if intent.kind is IntentKind.EMERGENCY_CLOSE:
        return exit_reason_text(ExitReason.EMERGENCY, _emergency_why(intent))
    cycle = intent.typed_purpose.kind is PurposeKind.CYCLE
    return (ExitReason.SIGNAL if cycle else ExitReason.MANUAL).value


def _emergency_why(intent: Intent) -> str:
    """An emergency close's reason; its whole purpose when it was not stored as one."""
    purpose = intent.typed_purpose
    return purpose.why if purpose.kind is PurposeKind.EMERGENCY else purpose.text


@dataclass(frozen=True)
class Attributed:
    faults: tuple[Fault, ...]
    execution_cost: float
    strategy_loss: float
    external_loss: float
    label: Label


def _slippage(
    kind: FaultKind, what: str, reference: float, p: Part, bound_bps: float, scale: float
) -> list[Fault]:
    """The part of a fill's slippage from ``reference`` beyond the bound, in money."""
    price = p.fill.price
    adverse = price - reference if p.fill.side is OrderSide.BUY else reference - price
    excess = (adverse - reference * bound_bps / 1e4) * p.size
    if excess <= 0:
        return []
    detail = f"{what} filled at {price:g}, beyond the {bound_bps:g} bps bound"
    return [Fault(kind, excess * scale, detail)]


def attribute(
    side: PositionSide,
    entries: Sequence[Part],
    exits: Sequence[Part],
    net: float,
    view: JournalView,
    bound_bps: float,
) -> Attributed:
    """The rules, in order:

    (a) extra size: the entry size beyond what Warden's own entry fills add up to (only for a
        trade Warden entered, and only when it lost): that share of the loss is execution.
    (b) emergency close: each fill of Warden's emergency close costs the incident's recorded
        cost (fill beyond the stop level x size) when the incident is an execution fault;
        without an incident, the same figure from the trade's stop level.
    (c) slippage: a fill of Warden's stop beyond ``bound_bps`` from its trigger, and a Warden
        entry beyond ``bound_bps`` from its decision price: the excess is execution.
    Costs of (b) and (c) on fills shared with extra size count only Warden's share of it,
    since (a) already charged the extra size's whole loss.
    """
    loss = max(0.0, -net)
    total = sum(p.size for p in entries)
    warden = warden_size(entries, view)
    faults: list[Fault] = []
    scale = 1.0
    extra = total - warden
    if warden > EPS and extra > EPS and loss > 0:
        scale = warden / total
        faults.append(
            Fault(
                FaultKind.EXTRA_SIZE,
                loss * extra / total,
                f"size {total:g}, Warden's own entries {warden:g}: {extra:g} came from "
                "elsewhere (a duplicate entry)",
            )
        )
    levels = [i.stop_price for p in entries if (i := view.intent_of(p.fill)) and i.stop_price]
    for p in exits:
        intent = view.intent_of(p.fill)
        if intent is not None and intent.kind is IntentKind.EMERGENCY_CLOSE:
            faults += _emergency(side, p, intent, view, levels[-1] if levels else None, scale)
        trigger = view.stop_triggers.get(p.fill.stop_id or "")
        if trigger is not None:
            what = f"stop {p.fill.stop_id} triggered at {trigger:g}"
            faults += _slippage(FaultKind.STOP_SLIPPAGE, what, trigger, p, bound_bps, scale)
    for p in entries:
        decided = view.decision_prices.get(p.fill.client_id or "")
        if decided is not None:
            what = f"entry decided at {decided:g}"
            faults += _slippage(FaultKind.ENTRY_SLIPPAGE, what, decided, p, bound_bps, 1.0)
    cost = sum((f.cost for f in faults), 0.0)
    rest = max(0.0, loss - cost)
    entered = warden > EPS
    return Attributed(
        tuple(faults),
        cost,
        rest if entered else 0.0,
        0.0 if entered else rest,
        _label(loss, cost, entered),
    )


def warden_entries(entries: Sequence[Part], view: JournalView) -> list[Intent]:
    """Warden's entry intents among a trade's entry fills, in fill order."""
    found = [view.intent_of(p.fill) for p in entries]
    return [i for i in found if i is not None and i.kind is IntentKind.ENTRY]


def warden_size(entries: Sequence[Part], view: JournalView) -> float:
    """How much of a trade's entry size Warden's own entry fills add up to."""
    total = sum((p.size for p in entries), 0.0)
    mine = {i.client_id for i in warden_entries(entries, view)}
    return min(total, sum((p.size for p in entries if p.fill.client_id in mine), 0.0))


def _emergency(
    side: PositionSide, p: Part, intent: Intent, view: JournalView, level: float | None, k: float
) -> list[Fault]:
    """The incident's recorded cost (an execution fault's), else the same from the level."""
    incident = view.emergency_incident(intent)
    why = f"beyond the stop level ({_emergency_why(intent)})"
    if incident is not None:
        if incident.attribution is not Attribution.EXECUTION:
            return []
        cost, source = incident.cost * p.share, f"incident {incident.id}"
    elif level is not None:
        cost, source = emergency_cost(side, level, p.fill.price, p.size), f"level {level:g}"
    else:
        return []
    detail = f"emergency close at {p.fill.price:g} {why}; {source}"
    return [Fault(FaultKind.EMERGENCY_CLOSE, cost * k, detail)] if cost > 0 else []


def _label(loss: float, cost: float, entered: bool) -> Label:
    if loss <= 0:
        return Label.NONE
    if cost <= 0:
        return Label.STRATEGY if entered else Label.EXTERNAL
    if cost >= loss - 0.005:
        return Label.EXECUTION
    return Label.MIXED if entered else Label.EXTERNAL
