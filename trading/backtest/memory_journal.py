"""The journal port (``trading.journal.Journal``) in memory, for backtests.

The same records and rules as ``storage.journal_store``: the same deterministic client ids
(``wd`` + instance + kind letter + row id), the same "latest filled entry" answers for the
position owner and the desired stop level, the same repeat suppression for alerts (stop
placements: ``memory_stops``). The fencing
check is trivially true: a backtest is one task holding an in-process lease nobody else can take.
Look-ups the executor and guardian make on every cycle are indexed, so a long run stays O(n).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from trading.backtest.memory_stops import MemoryStopRecords
from trading.journal import (
    Attribution,
    Exit,
    Incident,
    Intent,
    IntentKind,
    IntentStatus,
    NewAlert,
    NewExit,
    NewIncident,
    Purpose,
    Refusal,
    Severity,
    check_intent_move,
    incident_alert,
    parse_exit_reason,
)
from trading.lease import LeaseGuard
from trading.models import OrderSide, PositionSide

_KIND_LETTER = {IntentKind.ENTRY: "e", IntentKind.CLOSE: "c", IntentKind.EMERGENCY_CLOSE: "x"}
_UNRESOLVED = (IntentStatus.PENDING, IntentStatus.UNKNOWN)


@dataclass
class _IntentRow:
    intent: Intent
    order_id: str | None = None
    fee: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Alert:
    created_at: float
    severity: Severity
    key: str
    text: str


@dataclass
class _Symbol:
    """Per (scope, symbol) indexes."""

    entries: list[int] = field(default_factory=list)  # entry intent ids, ascending
    open_incidents: list[int] = field(default_factory=list)
    last_exit_at: float | None = None


class MemoryJournal(MemoryStopRecords):
    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        redact: Callable[[str], str] = str,
        instance: str | None = None,
    ) -> None:
        super().__init__(clock, redact, instance or os.urandom(3).hex())
        self._paused: dict[str, bool] = {}
        self._intents: dict[int, _IntentRow] = {}
        self._by_order: dict[str, int] = {}
        self._unresolved: dict[int, None] = {}
        self._symbols: dict[tuple[str, str], _Symbol] = {}
        self._last_alert: dict[str, float] = {}
        self._refusals: list[Refusal] = []
        self._exits: list[Exit] = []
        self._incidents: dict[int, Incident] = {}
        self.alerts: list[Alert] = []

    def _sym(self, scope: str, symbol: str) -> _Symbol:
        key = (scope, symbol)
        found = self._symbols.get(key)
        if found is None:
            found = self._symbols[key] = _Symbol()
        return found

    # --- pause -------------------------------------------------------------------------------

    async def is_paused(self, scope: str) -> bool:
        return self._paused.get(scope, False) or self._paused.get("*", False)

    async def set_paused(self, scope: str, paused: bool, reason: str = "") -> None:
        self._paused[scope] = paused

    # --- intents -----------------------------------------------------------------------------

    async def record_refusal(
        self, scope: str, symbol: str, action: str, reason: str, purpose: str | Purpose
    ) -> None:
        now = self.clock()
        self._refusals.append(
            Refusal(scope, symbol, action, self.redact(reason), str(purpose), now)
        )

    async def refusals(self, limit: int = 20) -> list[Refusal]:
        """The newest refusals first."""
        return self._refusals[::-1][:limit] if limit > 0 else []

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
        intent_id = len(self._intents) + 1
        intent = Intent(
            id=intent_id,
            scope=lease.scope,
            kind=kind,
            symbol=symbol,
            side=side,
            size=size,
            client_id=f"wd{self.instance}{_KIND_LETTER[kind]}{intent_id}",
            status=IntentStatus.PENDING,
            stop_price=stop_price,
            purpose=str(purpose),
            updated_at=self.clock(),
        )
        self._intents[intent_id] = _IntentRow(intent)
        self._unresolved[intent_id] = None
        if kind is IntentKind.ENTRY:
            self._sym(lease.scope, symbol).entries.append(intent_id)
        return intent

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
        row = self._intents.get(intent_id)
        if row is None:
            return
        check_intent_move(intent_id, row.intent.status, status)
        old = row.intent
        row.intent = replace(
            old,
            status=status,
            filled=filled if filled is not None else old.filled,
            price=price if price is not None else old.price,
            updated_at=self.clock(),
        )
        row.order_id = order_id if order_id is not None else row.order_id
        row.fee = fee if fee is not None else row.fee
        row.error = self.redact(error) if error else row.error
        if order_id is not None:
            self._by_order[order_id] = intent_id
        if status in _UNRESOLVED:
            self._unresolved[intent_id] = None
        else:
            self._unresolved.pop(intent_id, None)

    async def unresolved_intents(self, scope: str) -> list[Intent]:
        rows = (self._intents[i].intent for i in sorted(self._unresolved))
        return [i for i in rows if i.scope == scope]

    async def intents(self, scope: str | None = None, limit: int = 100) -> list[Intent]:
        out: list[Intent] = []
        for i in reversed(self._intents):
            if len(out) >= limit:
                break
            intent = self._intents[i].intent
            if scope is None or intent.scope == scope:
                out.append(intent)
        return out

    def intent_for_order(self, order_id: str) -> Intent | None:
        """The intent an exchange order was sent for (None: a stop's fill, or not Warden's)."""
        intent_id = self._by_order.get(order_id)
        return None if intent_id is None else self._intents[intent_id].intent

    def _filled_entries(self, scope: str, symbol: str) -> Iterator[Intent]:
        """Filled entry intents of the symbol, newest first."""
        for i in reversed(self._sym(scope, symbol).entries):
            intent = self._intents[i].intent
            if intent.status is IntentStatus.FILLED:
                yield intent

    def _still_open(self, scope: str, symbol: str, intent: Intent) -> bool:
        """No exit recorded at or after this entry's fill: it may be the current position's."""
        last_exit = self._sym(scope, symbol).last_exit_at
        return last_exit is None or last_exit < intent.updated_at

    async def last_entry(self, scope: str, symbol: str) -> Intent | None:
        return next(self._filled_entries(scope, symbol), None)

    async def position_owner(self, scope: str, symbol: str) -> str | None:
        """The purpose of the entry that opened the symbol's current position (e.g. its
        strategy), so a strategy only ever exits what it opened itself."""
        for intent in self._filled_entries(scope, symbol):
            if self._still_open(scope, symbol, intent):
                return intent.purpose
        return None

    async def desired_stop_price(self, scope: str, symbol: str) -> float | None:
        # an entry whose position Warden has since closed (an exit at or after its fill) says
        # nothing about the symbol's position now
        for intent in self._filled_entries(scope, symbol):
            if intent.stop_price is not None and self._still_open(scope, symbol, intent):
                return float(intent.stop_price)
        return None

    # --- exits, incidents, alerts --------------------------------------------------------------

    async def record_event(
        self,
        scope: str,
        *,
        exit: NewExit | None = None,
        incident: NewIncident | None = None,
        alert: NewAlert | None = None,
    ) -> int | None:
        """Every part given is written, or none is: each is built before any is stored."""
        return self._event(scope, exit, incident, alert)[0]

    def _event(
        self,
        scope: str,
        exit: NewExit | None,
        incident: NewIncident | None,
        alert: NewAlert | None,
        *,
        repeat_after: float = 0.0,
    ) -> tuple[int | None, bool]:
        """``record_event``, and whether ``alert`` was queued (``repeat_after``: as the SQL
        journal, an alert whose key was queued within that many seconds is left out)."""
        now = self.clock()
        if alert is not None and repeat_after > 0 and alert.key:
            last = self._last_alert.get(alert.key)
            if last is not None and last > now - repeat_after:
                alert = None
        alerts = [alert] if alert is not None else []
        new_exit = stored = None
        if exit is not None:
            e = exit
            new_exit = Exit(
                len(self._exits) + 1,
                scope,
                e.symbol,
                e.side,
                e.size,
                e.entry_price,
                e.exit_price,
                e.reason_text,
                e.fee,
                e.pnl,
                now,
            )
        if incident is not None:
            i, detail = incident, self.redact(incident.detail)
            stored = Incident(
                len(self._incidents) + 1,
                scope,
                i.symbol,
                i.kind,
                i.attribution,
                i.cost,
                detail,
                now,
                i.unprotected_since,
                resolved_at=now if i.resolved else None,
            )
            alerts.insert(0, incident_alert(scope, incident, detail))
        queued = [Alert(now, a.severity, a.key, self.redact(a.text)) for a in alerts]
        # everything is built: from here on nothing can fail half-way
        if new_exit is not None:
            self._exits.append(new_exit)
            sym = self._sym(scope, new_exit.symbol)
            sym.last_exit_at = now if sym.last_exit_at is None else max(sym.last_exit_at, now)
        if stored is not None:
            self._incidents[stored.id] = stored
            if stored.resolved_at is None:
                self._sym(scope, stored.symbol).open_incidents.append(stored.id)
        for q in queued:
            self._queue(q)
        return (stored.id if stored is not None else None), alert is not None

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
        kind, why = parse_exit_reason(reason)
        self._event(
            scope, NewExit(symbol, side, size, entry_price, exit_price, kind, fee, why), None, None
        )

    async def exits(self, scope: str | None = None) -> list[Exit]:
        return [e for e in self._exits if scope is None or e.scope == scope]

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
        new = NewIncident(
            symbol, kind, attribution, detail, cost, unprotected_since, severity, resolved
        )
        incident_id, _ = self._event(scope, None, new, None)
        assert incident_id is not None  # an incident was given
        return incident_id

    async def incidents(self, scope: str | None = None, limit: int = 100) -> list[Incident]:
        """Newest first, as the SQL journal."""
        rows = (self._incidents[i] for i in sorted(self._incidents, reverse=True))
        return [i for i in rows if scope is None or i.scope == scope][: max(0, limit)]

    @property
    def incident_count(self) -> int:
        return len(self._incidents)

    async def resolve_incidents(self, scope: str, symbol: str, note: str) -> int:
        sym = self._sym(scope, symbol)
        if not sym.open_incidents:
            return 0
        now = self.clock()
        for i in sym.open_incidents:
            self._incidents[i] = replace(self._incidents[i], resolved_at=now)
        count = len(sym.open_incidents)
        sym.open_incidents = []
        text = self.redact(f"resolved {scope} {symbol}: {note}")
        self._queue(Alert(now, Severity.INFO, f"resolved:{scope}:{symbol}", text))
        return count

    async def alert(
        self, severity: Severity, text: str, key: str = "", repeat_after: float = 0.0
    ) -> bool:
        new = NewAlert(severity, text, key)
        return self._event("", None, None, new, repeat_after=repeat_after)[1]

    def _queue(self, alert: Alert) -> None:
        self.alerts.append(alert)
        last = self._last_alert.get(alert.key)
        self._last_alert[alert.key] = (
            alert.created_at if last is None else max(last, alert.created_at)
        )
