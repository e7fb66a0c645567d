"""The journal port: everything the executor and guardian must remember, stored by ``storage``.

Records here are the agent's own account of what it did; the exchange stays the truth about
what exists. Writes that precede an exchange write are fenced by the lease token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from trading.lease import LeaseGuard
from trading.models import OrderSide, PositionSide, StopState


class IntentKind(StrEnum):
    ENTRY = "entry"
    CLOSE = "close"
    EMERGENCY_CLOSE = "emergency_close"


class IntentStatus(StrEnum):
    """The lifecycle of one intent; the moves allowed are ``INTENT_MOVES``."""

    PENDING = "pending"
    FILLED = "filled"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    NOT_FOUND = "not_found"


class StopStatus(StrEnum):
    """The agent's lifecycle of one stop placement; the moves allowed are ``STOP_MOVES``."""

    PLACING = "placing"
    ACKED = "acked"
    VERIFIED = "verified"
    FAILED = "failed"
    REJECTED = "rejected"
    WOULD_TRIGGER = "would_trigger"
    CANCELED = "canceled"
    TRIGGERED = "triggered"


class IllegalTransition(Exception):
    """A status move the lifecycle does not allow; nothing of it was written."""

    def __init__(self, record: str, old: StrEnum, new: StrEnum) -> None:
        super().__init__(f"{record}: illegal move {old.value} -> {new.value}")
        self.record = record
        self.old = old
        self.new = new


# Every move a caller makes, read from the call sites; a status may move to itself only where
# a caller really repeats it (a look-up still unanswered, a stop read back in the same state).
INTENT_MOVES: Mapping[IntentStatus, frozenset[IntentStatus]] = {
    # sent: its answer (filled, refused, order open or no answer), or, at start-up after a
    # crash, settled by client id: not known to the exchange while its sender is gone
    IntentStatus.PENDING: frozenset(
        {IntentStatus.FILLED, IntentStatus.REJECTED, IntentStatus.UNKNOWN, IntentStatus.NOT_FOUND}
    ),
    # looked up by client id again until the exchange says what became of it
    IntentStatus.UNKNOWN: frozenset(
        {IntentStatus.UNKNOWN, IntentStatus.FILLED, IntentStatus.REJECTED, IntentStatus.NOT_FOUND}
    ),
    IntentStatus.FILLED: frozenset(),
    IntentStatus.REJECTED: frozenset(),
    IntentStatus.NOT_FOUND: frozenset(),
}

_READ_BACK = frozenset({StopStatus.VERIFIED, StopStatus.FAILED, StopStatus.CANCELED})
STOP_MOVES: Mapping[StopStatus, frozenset[StopStatus]] = {
    # the placement's answer; or, when its process died before storing the answer, what the
    # guardian reads back by client id later (live, failed, canceled, fired)
    StopStatus.PLACING: frozenset(
        {StopStatus.ACKED, StopStatus.REJECTED, StopStatus.WOULD_TRIGGER, StopStatus.TRIGGERED}
    )
    | _READ_BACK,
    # the read-back after the placement, or a later one by the guardian; Warden's own cancel
    StopStatus.ACKED: _READ_BACK | {StopStatus.TRIGGERED},
    # seen live again (VERIFIED -> VERIFIED); gone: fired, canceled, or failed on the exchange
    StopStatus.VERIFIED: _READ_BACK | {StopStatus.TRIGGERED},
    # read back failed again; found live later by id; canceled; fired after all
    StopStatus.FAILED: _READ_BACK | {StopStatus.TRIGGERED},
    StopStatus.REJECTED: frozenset(),
    StopStatus.WOULD_TRIGGER: frozenset(),
    StopStatus.CANCELED: frozenset({StopStatus.CANCELED}),  # canceled by Warden, then read back
    StopStatus.TRIGGERED: frozenset({StopStatus.TRIGGERED}),  # read back fired again
}


def check_intent_move(intent_id: int, old: IntentStatus, new: IntentStatus) -> None:
    if new not in INTENT_MOVES[old]:
        raise IllegalTransition(f"intent {intent_id}", old, new)


def check_stop_move(stop_id: int, old: StopStatus, new: StopStatus) -> None:
    if new not in STOP_MOVES[old]:
        raise IllegalTransition(f"stop {stop_id}", old, new)


class Attribution(StrEnum):
    EXECUTION = "execution"
    STRATEGY = "strategy"
    EXTERNAL = "external"


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class PurposeKind(StrEnum):
    CYCLE = "cycle"  # a strategy's run: "cycle NAME"
    EMERGENCY = "emergency"  # the last-resort close: "emergency close: WHY"
    DRILL = "drill"  # a drill's own trade: "drill NAME"
    MANUAL = "manual"  # by hand: the CLI, Telegram, anything else


CYCLE_PREFIX = "cycle "
EMERGENCY_PREFIX = "emergency close: "
DRILL_PREFIX = "drill "


@dataclass(frozen=True)
class Purpose:
    """Why an intent was sent. ``text`` is what the journal stores (unchanged since the first
    schema); ``parse`` is the one place that reads it back."""

    kind: PurposeKind
    strategy: str | None  # the strategy of a cycle's intent
    text: str
    why: str = ""  # an emergency close's reason

    @classmethod
    def cycle(cls, strategy: str) -> Purpose:
        return cls(PurposeKind.CYCLE, strategy, f"{CYCLE_PREFIX}{strategy}")

    @classmethod
    def emergency(cls, why: str) -> Purpose:
        return cls(PurposeKind.EMERGENCY, None, f"{EMERGENCY_PREFIX}{why}", why)

    @classmethod
    def parse(cls, text: str) -> Purpose:
        if text.startswith(CYCLE_PREFIX) and text[len(CYCLE_PREFIX) :].strip():
            return cls(PurposeKind.CYCLE, text[len(CYCLE_PREFIX) :].strip(), text)
        if text.startswith(EMERGENCY_PREFIX):
            return cls(PurposeKind.EMERGENCY, None, text, text[len(EMERGENCY_PREFIX) :])
        if text.startswith(DRILL_PREFIX):
            return cls(PurposeKind.DRILL, None, text)
        return cls(PurposeKind.MANUAL, None, text)

    @property
    def owner(self) -> str:
        """Whose trade it is for the accounts: the strategy's name, else "manual"."""
        return self.strategy or "manual"

    def __str__(self) -> str:
        return self.text


class ExitReason(StrEnum):
    """The one vocabulary for exit reasons (``NewExit.reason_text`` is the stored text)."""

    STOP_LOSS = "stop_loss"
    SIGNAL = "signal"
    MANUAL = "manual"
    EMERGENCY = "emergency"
    EXTERNAL = "external"

    @classmethod
    def of_close(cls, purpose: Purpose) -> ExitReason:
        """Why Warden closed a position, from its close intent's purpose."""
        if purpose.kind is PurposeKind.EMERGENCY:
            return cls.EMERGENCY
        return cls.SIGNAL if purpose.kind is PurposeKind.CYCLE else cls.MANUAL


def exit_reason_text(reason: ExitReason, why: str = "") -> str:
    """The stored and printed text: "emergency(<why>)" for an emergency, else the value."""
    return f"emergency({why})" if reason is ExitReason.EMERGENCY else reason.value


def is_emergency_reason(text: str) -> bool:
    """Whether a stored reason text is an emergency close's ("emergency(<why>)")."""
    return text.startswith("emergency(") and text.endswith(")")


def parse_exit_reason(text: str) -> tuple[ExitReason, str]:
    """The reason and emergency "<why>" of a stored reason text; ValueError for any other."""
    if is_emergency_reason(text):
        return ExitReason.EMERGENCY, text[len("emergency(") : -1]
    try:
        reason = ExitReason(text)
    except ValueError:
        reason = ExitReason.EMERGENCY  # the bare word without its "(<why>)"
    if reason is ExitReason.EMERGENCY:
        known = ", ".join(r.value for r in ExitReason if r is not ExitReason.EMERGENCY)
        raise ValueError(f"exit reason {text!r} is none of {known}, emergency(<why>)")
    return reason, ""


def exit_pnl(
    side: PositionSide, size: float, entry_price: float, exit_price: float, fees: float
) -> float:
    """THE exit P&L: the move from entry to exit for the side, less the fees given. The exit
    row, the closing alerts and the accounts of fills (``accounting.trade_pnl``) all use it."""
    return side.loss_at(entry_price, exit_price, size) - fees


@dataclass(frozen=True)
class NewExit:
    symbol: str
    side: PositionSide
    size: float
    entry_price: float
    exit_price: float
    reason: ExitReason
    fee: float
    why: str = ""  # emergency only: the "<why>" in "emergency(<why>)"

    @property
    def reason_text(self) -> str:
        return exit_reason_text(self.reason, self.why)

    @property
    def pnl(self) -> float:
        return exit_pnl(self.side, self.size, self.entry_price, self.exit_price, self.fee)


@dataclass(frozen=True)
class Exit:
    """An exit row as stored: ``reason`` is its text ("stop_loss", "emergency(<why>)", ...)
    and ``pnl`` the figure written with it (``NewExit.pnl``)."""

    id: int
    scope: str
    symbol: str
    side: PositionSide
    size: float
    entry_price: float
    exit_price: float
    reason: str
    fee: float
    pnl: float
    at: float

    @property
    def is_emergency(self) -> bool:
        return is_emergency_reason(self.reason)


@dataclass(frozen=True)
class Refusal:
    """An action the executor refused before anything was sent (paused, a check failed)."""

    scope: str
    symbol: str
    action: str
    reason: str
    purpose: str
    at: float


@dataclass(frozen=True)
class NewIncident:
    symbol: str
    kind: str
    attribution: Attribution
    detail: str
    cost: float = 0.0
    unprotected_since: float | None = None
    severity: Severity = Severity.CRITICAL
    resolved: bool = False


@dataclass(frozen=True)
class NewAlert:
    severity: Severity
    text: str
    key: str = ""


def incident_alert(scope: str, incident: NewIncident, detail: str) -> NewAlert:
    """The alert queued with an incident (``detail`` already redacted)."""
    text = f"{incident.kind} {scope} {incident.symbol}: {detail} "
    text += f"[attribution {incident.attribution.value}"
    text += f", cost {incident.cost:.2f}]" if incident.cost else "]"
    key = f"incident:{scope}:{incident.symbol}:{incident.kind}"
    return NewAlert(incident.severity, text, key)


@dataclass(frozen=True)
class Intent:
    id: int
    scope: str
    kind: IntentKind
    symbol: str
    side: OrderSide
    size: float
    client_id: str
    status: IntentStatus
    stop_price: float | None
    purpose: str
    filled: float | None = None
    price: float | None = None
    updated_at: float = 0.0

    @property
    def typed_purpose(self) -> Purpose:
        """The stored purpose text, typed."""
        return Purpose.parse(self.purpose)

    @property
    def signed_fill(self) -> float:
        """The filled size with the order's direction: buys add, sells subtract."""
        f = self.filled or 0.0
        return f if self.side is OrderSide.BUY else -f


@dataclass(frozen=True)
class StopRecord:
    id: int
    scope: str
    symbol: str
    position_side: PositionSide
    client_id: str
    exchange_id: str | None
    size: float
    trigger_price: float
    status: StopStatus
    exchange_state: StopState | None
    fail_code: str | None
    placed_at: float
    verified_at: float | None


@dataclass(frozen=True)
class Incident:
    id: int
    scope: str
    symbol: str
    kind: str
    attribution: Attribution
    cost: float
    detail: str
    opened_at: float
    unprotected_since: float | None
    resolved_at: float | None


class Journal(Protocol):
    async def is_paused(self, scope: str) -> bool: ...

    async def record_refusal(
        self, scope: str, symbol: str, action: str, reason: str, purpose: str | Purpose
    ) -> None: ...

    async def create_intent(
        self,
        lease: LeaseGuard,
        kind: IntentKind,
        symbol: str,
        side: OrderSide,
        size: float,
        stop_price: float | None,
        purpose: str | Purpose,
    ) -> Intent:
        """Persist the intent and its deterministic client id before anything is sent (I2)."""
        ...

    async def finish_intent(
        self,
        intent_id: int,
        status: IntentStatus,
        *,
        order_id: str | None = None,
        filled: float | None = None,
        price: float | None = None,
        fee: float | None = None,
        error: str | None = None,
    ) -> None:
        """Move the intent along ``INTENT_MOVES``; any other move raises ``IllegalTransition``
        and writes nothing."""
        ...

    async def unresolved_intents(self, scope: str) -> list[Intent]: ...

    async def intents(self, scope: str | None = None, limit: int = 100) -> list[Intent]: ...

    async def create_stop(
        self, lease: LeaseGuard, symbol: str, side: PositionSide, size: float, trigger: float
    ) -> StopRecord: ...

    async def update_stop(
        self,
        stop_id: int,
        status: StopStatus,
        *,
        exchange_id: str | None = None,
        api_answer: str | None = None,
        exchange_state: StopState | None = None,
        fail_code: str | None = None,
        verified: bool = False,
    ) -> None:
        """Move the stop along ``STOP_MOVES``; any other move raises ``IllegalTransition`` and
        writes nothing."""
        ...

    async def mark_stop_seen_live(self, scope: str, symbol: str, exchange_id: str) -> None:
        """Every record of this exchange id becomes verified (an illegal move for any of them
        raises ``IllegalTransition`` and writes nothing)."""
        ...

    async def stops_for(self, scope: str, symbol: str, limit: int = 20) -> list[StopRecord]: ...

    async def stop_checked_at(self, scope: str, symbol: str) -> float | None:
        """When a stop of this symbol was last read back live (start of unprotected time)."""
        ...

    async def position_owner(self, scope: str, symbol: str) -> str | None: ...

    async def mark_stop_canceled(self, scope: str, symbol: str, exchange_id: str) -> None:
        """Every record of this exchange id becomes canceled, as ``mark_stop_seen_live``."""
        ...

    async def verified_stops(self, scope: str) -> list[StopRecord]: ...

    async def last_entry(self, scope: str, symbol: str) -> Intent | None: ...

    async def desired_stop_price(self, scope: str, symbol: str) -> float | None:
        """The stop level the agent last chose for this symbol's position, if any."""
        ...

    async def record_event(
        self,
        scope: str,
        *,
        exit: NewExit | None = None,
        incident: NewIncident | None = None,
        alert: NewAlert | None = None,
    ) -> int | None:
        """Every part given is written in ONE transaction, or none is (I6 + unit of work):
        the exit row, the incident row and its alert, the extra alert. Returns the incident
        id when one was written."""
        ...

    async def record_exit(
        self,
        scope: str,
        symbol: str,
        side: PositionSide,
        size: float,
        entry_price: float,
        exit_price: float,
        reason: str,
        fee: float,
    ) -> None:
        """An exit row alone (``record_event`` with its ``exit``); ``reason`` is the stored
        text."""
        ...

    async def open_incident(
        self,
        scope: str,
        symbol: str,
        kind: str,
        attribution: Attribution,
        detail: str,
        *,
        cost: float = 0.0,
        unprotected_since: float | None = None,
        severity: Severity = Severity.CRITICAL,
        resolved: bool = False,
    ) -> int:
        """Store the incident and its alert in one transaction (I6): ``record_event`` with
        its ``incident``."""
        ...

    async def resolve_incidents(self, scope: str, symbol: str, note: str) -> int: ...

    async def alert(
        self, severity: Severity, text: str, key: str = "", repeat_after: float = 0.0
    ) -> bool: ...
