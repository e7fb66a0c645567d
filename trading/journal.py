"""The journal port: everything the executor and guardian must remember, stored by ``storage``.

Records here are the agent's own account of what it did; the exchange stays the truth about
what exists. Writes that precede an exchange write are fenced by the lease token.
"""

from __future__ import annotations

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
    """pending -> filled | rejected | unknown; unknown -> filled | not_found once resolved."""

    PENDING = "pending"
    FILLED = "filled"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    NOT_FOUND = "not_found"


class StopStatus(StrEnum):
    """The agent's lifecycle of one stop placement.

    placing -> acked -> verified (read back live) | failed (read back failed/missing)
    placing -> rejected | would_trigger; verified -> canceled | triggered.
    """

    PLACING = "placing"
    ACKED = "acked"
    VERIFIED = "verified"
    FAILED = "failed"
    REJECTED = "rejected"
    WOULD_TRIGGER = "would_trigger"
    CANCELED = "canceled"
    TRIGGERED = "triggered"


class Attribution(StrEnum):
    EXECUTION = "execution"
    STRATEGY = "strategy"
    EXTERNAL = "external"


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


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
        self, scope: str, symbol: str, action: str, reason: str, purpose: str
    ) -> None: ...

    async def create_intent(
        self,
        lease: LeaseGuard,
        kind: IntentKind,
        symbol: str,
        side: OrderSide,
        size: float,
        stop_price: float | None,
        purpose: str,
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
    ) -> None: ...

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
    ) -> None: ...

    async def mark_stop_seen_live(self, scope: str, symbol: str, exchange_id: str) -> None: ...

    async def stops_for(self, scope: str, symbol: str, limit: int = 20) -> list[StopRecord]: ...

    async def stop_checked_at(self, scope: str, symbol: str) -> float | None:
        """When a stop of this symbol was last read back live (start of unprotected time)."""
        ...

    async def position_owner(self, scope: str, symbol: str) -> str | None: ...

    async def mark_stop_canceled(self, scope: str, symbol: str, exchange_id: str) -> None: ...

    async def verified_stops(self, scope: str) -> list[StopRecord]: ...

    async def last_entry(self, scope: str, symbol: str) -> Intent | None: ...

    async def desired_stop_price(self, scope: str, symbol: str) -> float | None:
        """The stop level the agent last chose for this symbol's position, if any."""
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
    ) -> None: ...

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
        """Store the incident and its alert in one transaction (I6)."""
        ...

    async def resolve_incidents(self, scope: str, symbol: str, note: str) -> int: ...

    async def alert(
        self, severity: Severity, text: str, key: str = "", repeat_after: float = 0.0
    ) -> bool: ...
