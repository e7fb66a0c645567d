"""SQL for the journal (trading.journal.Journal). Fenced writes check the lease token in the
same transaction, so a holder that lost its lease cannot even record a new intent."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from storage.db import Database
from storage.errors import StorageError
from storage.lease import LeaseStore
from storage.outbox import CHART_INCIDENTS, ChartSubject
from storage.sql import Connection
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
    StopRecord,
    StopStatus,
    check_intent_move,
    check_stop_move,
    incident_alert,
    parse_exit_reason,
)
from trading.lease import LeaseGuard, LeaseLost
from trading.logfmt import event
from trading.models import OrderSide, PositionSide, StopState

log = logging.getLogger("warden.alerts")
_KIND_LETTER = {IntentKind.ENTRY: "e", IntentKind.CLOSE: "c", IntentKind.EMERGENCY_CLOSE: "x"}


def _intent(row: Any) -> Intent:
    return Intent(
        id=row["id"],
        scope=row["scope"],
        kind=IntentKind(row["kind"]),
        symbol=row["symbol"],
        side=OrderSide(row["side"]),
        size=row["size"],
        client_id=row["client_id"],
        status=IntentStatus(row["status"]),
        stop_price=row["stop_price"],
        purpose=row["purpose"],
        filled=row["filled"],
        price=row["price"],
        updated_at=row["updated_at"],
    )


def _stop(row: Any) -> StopRecord:
    return StopRecord(
        id=row["id"],
        scope=row["scope"],
        symbol=row["symbol"],
        position_side=PositionSide(row["position_side"]),
        client_id=row["client_id"],
        exchange_id=row["exchange_id"],
        size=row["size"],
        trigger_price=row["trigger_price"],
        status=StopStatus(row["status"]),
        exchange_state=StopState(row["exchange_state"]) if row["exchange_state"] else None,
        fail_code=row["fail_code"],
        placed_at=row["placed_at"],
        verified_at=row["verified_at"],
    )


def _exit(row: Any) -> Exit:
    return Exit(
        id=row["id"],
        scope=row["scope"],
        symbol=row["symbol"],
        side=PositionSide(row["side"]),
        size=row["size"],
        entry_price=row["entry_price"],
        exit_price=row["exit_price"],
        reason=row["reason"],
        fee=row["fee"],
        pnl=row["pnl"],
        at=row["at"],
    )


def _incident(row: Any) -> Incident:
    return Incident(
        id=row["id"],
        scope=row["scope"],
        symbol=row["symbol"],
        kind=row["kind"],
        attribution=Attribution(row["attribution"]),
        cost=row["cost"],
        detail=row["detail"],
        opened_at=row["opened_at"],
        unprotected_since=row["unprotected_since"],
        resolved_at=row["resolved_at"],
    )


class JournalStore:
    def __init__(
        self,
        db: Database,
        clock: Callable[[], float] | None = None,
        redact: Callable[[str], str] = str,
    ) -> None:
        self.db = db
        self.clock = clock or time.time
        self._given_clock = clock  # None: the fencing check reads the database's clock
        self.redact = redact
        self._instance: str | None = None

    async def instance_id(self) -> str:
        """A random id per database, so client ids from two databases never collide."""
        if self._instance is None:
            async with self.db.write() as conn:
                cur = await conn.execute("SELECT value FROM meta WHERE key = 'instance'")
                row = await cur.fetchone()
                if row is None:
                    value = os.urandom(3).hex()
                    await conn.execute(
                        "INSERT INTO meta(key, value) VALUES ('instance', ?)", (value,)
                    )
                else:
                    value = row[0]
            self._instance = value
        return self._instance

    async def _fence(self, conn: Connection, lease: LeaseGuard) -> None:
        now = self._given_clock() if self._given_clock else await self.db.now(conn)
        if not await LeaseStore.is_current_in(conn, lease.scope, lease.token, now):
            raise LeaseLost(f"execution lease for {lease.scope} is no longer held (fenced write)")

    # --- pause -------------------------------------------------------------------------------

    async def is_paused(self, scope: str) -> bool:
        async with self.db.read() as conn:
            cur = await conn.execute("SELECT paused FROM pause WHERE scope IN (?, '*')", (scope,))
            return any(r[0] for r in await cur.fetchall())

    async def set_paused(self, scope: str, paused: bool, reason: str = "") -> None:
        async with self.db.write() as conn:
            await conn.execute(
                "INSERT INTO pause(scope, paused, reason, at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(scope) DO UPDATE SET paused=excluded.paused, reason=excluded.reason, "
                "at=excluded.at",
                (scope, int(paused), reason, self.clock()),
            )

    async def pause_reason(self, scope: str) -> str | None:
        """Why entries are paused on ``scope`` (its own pause first, then the all-exchanges
        one), or None when they are not."""
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT reason FROM pause WHERE scope IN (?, '*') AND paused <> 0 "
                "ORDER BY scope = '*'",
                (scope,),
            )
            row = await cur.fetchone()
            return None if row is None else str(row[0] or "")

    # --- intents -----------------------------------------------------------------------------

    async def record_refusal(
        self, scope: str, symbol: str, action: str, reason: str, purpose: str | Purpose
    ) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                "INSERT INTO refusal(scope, symbol, action, reason, purpose, at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (scope, symbol, action, self.redact(reason), str(purpose), self.clock()),
            )

    async def refusals(self, limit: int = 20) -> list[Refusal]:
        """The newest refusals first."""
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT scope, symbol, action, reason, purpose, at FROM refusal "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            )
            return [Refusal(**dict(r)) for r in await cur.fetchall()]

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
        inst = await self.instance_id()
        async with self.db.write() as conn:
            await self._fence(conn, lease)
            now = self.clock()
            cur = await conn.execute(
                "INSERT INTO intent(scope, kind, symbol, side, size, stop_price, status, purpose, "
                "lease_token, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "RETURNING id",
                (
                    lease.scope,
                    kind.value,
                    symbol,
                    side.value,
                    size,
                    stop_price,
                    IntentStatus.PENDING.value,
                    str(purpose),
                    lease.token,
                    now,
                    now,
                ),
            )
            intent_id = int((await cur.fetchone())[0])
            client_id = f"wd{inst}{_KIND_LETTER[kind]}{intent_id}"
            await conn.execute(
                "UPDATE intent SET client_id = ? WHERE id = ?", (client_id, intent_id)
            )
            cur = await conn.execute("SELECT * FROM intent WHERE id = ?", (intent_id,))
            return _intent(await cur.fetchone())

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
        async with self.db.write() as conn:
            cur = await conn.execute("SELECT status FROM intent WHERE id = ?", (intent_id,))
            row = await cur.fetchone()
            if row is None:
                return
            check_intent_move(intent_id, IntentStatus(row[0]), status)
            await conn.execute(
                "UPDATE intent SET status = ?, order_id = COALESCE(?, order_id), "
                "filled = COALESCE(?, filled), price = COALESCE(?, price), fee = COALESCE(?, fee), "
                "error = COALESCE(?, error), updated_at = ? WHERE id = ?",
                (
                    status.value,
                    order_id,
                    filled,
                    price,
                    fee,
                    self.redact(error) if error else None,
                    self.clock(),
                    intent_id,
                ),
            )

    async def unresolved_intents(self, scope: str) -> list[Intent]:
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT * FROM intent WHERE scope = ? AND status IN (?, ?) ORDER BY id",
                (scope, IntentStatus.PENDING.value, IntentStatus.UNKNOWN.value),
            )
            return [_intent(r) for r in await cur.fetchall()]

    async def intents(self, scope: str | None = None, limit: int = 100) -> list[Intent]:
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT * FROM intent WHERE (? IS NULL OR scope = ?) ORDER BY id DESC LIMIT ?",
                (scope, scope, limit),
            )
            return [_intent(r) for r in await cur.fetchall()]

    # --- stops -------------------------------------------------------------------------------

    async def create_stop(
        self, lease: LeaseGuard, symbol: str, side: PositionSide, size: float, trigger: float
    ) -> StopRecord:
        inst = await self.instance_id()
        async with self.db.write() as conn:
            await self._fence(conn, lease)
            cur = await conn.execute(
                "INSERT INTO stop_placement(scope, symbol, position_side, size, trigger_price, "
                "status, lease_token, placed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    lease.scope,
                    symbol,
                    side.value,
                    size,
                    trigger,
                    StopStatus.PLACING.value,
                    lease.token,
                    self.clock(),
                ),
            )
            stop_id = int((await cur.fetchone())[0])
            await conn.execute(
                "UPDATE stop_placement SET client_id = ? WHERE id = ?",
                (f"wd{inst}s{stop_id}", stop_id),
            )
            cur = await conn.execute("SELECT * FROM stop_placement WHERE id = ?", (stop_id,))
            return _stop(await cur.fetchone())

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
        now = self.clock()
        async with self.db.write() as conn:
            cur = await conn.execute("SELECT status FROM stop_placement WHERE id = ?", (stop_id,))
            row = await cur.fetchone()
            if row is None:
                return
            check_stop_move(stop_id, StopStatus(row[0]), status)
            await conn.execute(
                "UPDATE stop_placement SET status = ?, exchange_id = COALESCE(?, exchange_id), "
                "api_answer = COALESCE(?, api_answer), "
                "exchange_state = COALESCE(?, exchange_state), fail_code = COALESCE(?, fail_code), "
                "checked_at = CASE WHEN ? IS NULL THEN checked_at ELSE ? END, "
                "verified_at = CASE WHEN ? <> 0 THEN ? ELSE verified_at END WHERE id = ?",
                (
                    status.value,
                    exchange_id,
                    self.redact(api_answer) if api_answer else None,
                    exchange_state.value if exchange_state else None,
                    fail_code,
                    exchange_state.value if exchange_state else None,
                    now,
                    int(verified),
                    now,
                    stop_id,
                ),
            )

    async def _check_stops_move(
        self, conn: Connection, scope: str, symbol: str, exchange_id: str, new: StopStatus
    ) -> None:
        """Every record of this exchange id may make the move, or ``IllegalTransition``."""
        cur = await conn.execute(
            "SELECT id, status FROM stop_placement WHERE scope = ? AND symbol = ? "
            "AND exchange_id = ? ORDER BY id",
            (scope, symbol, exchange_id),
        )
        for row in await cur.fetchall():
            check_stop_move(int(row[0]), StopStatus(row[1]), new)

    async def mark_stop_seen_live(self, scope: str, symbol: str, exchange_id: str) -> None:
        now = self.clock()
        async with self.db.write() as conn:
            await self._check_stops_move(conn, scope, symbol, exchange_id, StopStatus.VERIFIED)
            await conn.execute(
                "UPDATE stop_placement SET status = ?, exchange_state = ?, checked_at = ?, "
                "verified_at = ? WHERE scope = ? AND symbol = ? AND exchange_id = ?",
                (
                    StopStatus.VERIFIED.value,
                    StopState.LIVE.value,
                    now,
                    now,
                    scope,
                    symbol,
                    exchange_id,
                ),
            )

    async def stops_for(self, scope: str, symbol: str, limit: int = 20) -> list[StopRecord]:
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT * FROM stop_placement WHERE scope = ? AND symbol = ? ORDER BY id DESC "
                "LIMIT ?",
                (scope, symbol, limit),
            )
            return [_stop(r) for r in await cur.fetchall()]

    async def stop_checked_at(self, scope: str, symbol: str) -> float | None:
        """When a stop of this symbol was last read back live, for unprotected-time figures.

        ``verified_at`` is set only by a live read-back (placement or guardian run); the
        record's current state may since have become canceled or failed, and ``checked_at``
        moves with any read-back, so neither can tell when the stop was last seen live."""
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT MAX(verified_at) FROM stop_placement WHERE scope = ? AND symbol = ?",
                (scope, symbol),
            )
            row = await cur.fetchone()
            return row[0] if row else None

    async def mark_stop_canceled(self, scope: str, symbol: str, exchange_id: str) -> None:
        """Warden canceled this stop itself: not 'canceled outside Warden' later."""
        async with self.db.write() as conn:
            await self._check_stops_move(conn, scope, symbol, exchange_id, StopStatus.CANCELED)
            await conn.execute(
                "UPDATE stop_placement SET status = ?, exchange_state = ?, checked_at = ? "
                "WHERE scope = ? AND symbol = ? AND exchange_id = ?",
                (
                    StopStatus.CANCELED.value,
                    StopState.CANCELED.value,
                    self.clock(),
                    scope,
                    symbol,
                    exchange_id,
                ),
            )

    async def verified_stops(self, scope: str) -> list[StopRecord]:
        """Stops last known live: the ones whose fate (fired? canceled?) is still to be read."""
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT * FROM stop_placement WHERE scope = ? AND status = ? ORDER BY id",
                (scope, StopStatus.VERIFIED.value),
            )
            return [_stop(r) for r in await cur.fetchall()]

    async def last_entry(self, scope: str, symbol: str) -> Intent | None:
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT * FROM intent WHERE scope = ? AND symbol = ? AND kind = ? AND status = ? "
                "ORDER BY id DESC LIMIT 1",
                (scope, symbol, IntentKind.ENTRY.value, IntentStatus.FILLED.value),
            )
            row = await cur.fetchone()
            return _intent(row) if row else None

    async def position_owner(self, scope: str, symbol: str) -> str | None:
        """The purpose of the entry that opened the symbol's current position (e.g. its
        strategy), so a strategy only ever exits what it opened itself."""
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT purpose FROM intent AS i WHERE scope = ? AND symbol = ? AND kind = ? "
                "AND status = ? AND NOT EXISTS (SELECT 1 FROM exit AS e WHERE e.scope = i.scope "
                "AND e.symbol = i.symbol AND e.at >= i.updated_at) ORDER BY id DESC LIMIT 1",
                (scope, symbol, IntentKind.ENTRY.value, IntentStatus.FILLED.value),
            )
            row = await cur.fetchone()
            return str(row[0]) if row else None

    async def desired_stop_price(self, scope: str, symbol: str) -> float | None:
        # an entry whose position Warden has since closed (an exit recorded after its fill)
        # says nothing about the symbol's position now
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT stop_price FROM intent AS i WHERE scope = ? AND symbol = ? AND kind = ? "
                "AND status = ? AND stop_price IS NOT NULL AND NOT EXISTS (SELECT 1 FROM exit "
                "AS e WHERE e.scope = i.scope AND e.symbol = i.symbol AND e.at >= i.updated_at) "
                "ORDER BY id DESC LIMIT 1",
                (scope, symbol, IntentKind.ENTRY.value, IntentStatus.FILLED.value),
            )
            row = await cur.fetchone()
            return float(row[0]) if row else None

    # --- exits, incidents, alerts --------------------------------------------------------------

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
        return (await self._event(scope, exit, incident, alert))[0]

    async def _event(
        self,
        scope: str,
        exit: NewExit | None,
        incident: NewIncident | None,
        alert: NewAlert | None,
        *,
        repeat_after: float = 0.0,
    ) -> tuple[int | None, bool]:
        """``record_event``, and whether ``alert`` was queued: with ``repeat_after``, an alert
        whose key was queued within that many seconds is left out (a lasting condition is
        re-raised, not spammed)."""
        detail = self.redact(incident.detail) if incident is not None else ""
        alerts = [incident_alert(scope, incident, detail)] if incident is not None else []
        alerts += [alert] if alert is not None else []
        incident_id: int | None = None
        async with self._alerting(alerts) as conn:
            now = self.clock()
            if alert is not None and repeat_after > 0 and alert.key:
                cur = await conn.execute(
                    "SELECT 1 FROM alert_outbox WHERE key = ? AND created_at > ? LIMIT 1",
                    (alert.key, now - repeat_after),
                )
                if await cur.fetchone() is not None:
                    alert = None
            if exit is not None:
                await conn.execute(
                    "INSERT INTO exit(scope, symbol, side, size, entry_price, exit_price, reason, "
                    "fee, pnl, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        scope,
                        exit.symbol,
                        exit.side.value,
                        exit.size,
                        exit.entry_price,
                        exit.exit_price,
                        exit.reason_text,
                        exit.fee,
                        exit.pnl,
                        now,
                    ),
                )
            if incident is not None:
                cur = await conn.execute(
                    "INSERT INTO incident(scope, symbol, kind, attribution, cost, detail, "
                    "opened_at, unprotected_since, resolved_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        scope,
                        incident.symbol,
                        incident.kind,
                        incident.attribution.value,
                        incident.cost,
                        detail,
                        now,
                        incident.unprotected_since,
                        now if incident.resolved else None,
                    ),
                )
                incident_id = int((await cur.fetchone())[0])
                charted = incident.kind in CHART_INCIDENTS
                chart = ChartSubject(scope, incident.symbol) if charted else None
                await self._alert(conn, alerts[0], now, chart)
            if alert is not None:
                await self._alert(conn, alert, now)
        return incident_id, alert is not None

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
        new = NewExit(symbol, side, size, entry_price, exit_price, kind, fee, why)
        await self._event(scope, new, None, None)

    async def exits(self, scope: str | None = None) -> list[Exit]:
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT * FROM exit WHERE (? IS NULL OR scope = ?) ORDER BY id", (scope, scope)
            )
            return [_exit(r) for r in await cur.fetchall()]

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
        incident_id, _ = await self._event(scope, None, new, None)
        assert incident_id is not None  # an incident was given
        return incident_id

    async def resolve_incidents(self, scope: str, symbol: str, note: str) -> int:
        now = self.clock()
        text = f"resolved {scope} {symbol}: {note}"
        # not logged when it cannot be written: most calls resolve nothing (a stop seen live)
        async with self.db.write() as conn:
            cur = await conn.execute(
                "UPDATE incident SET resolved_at = ?, resolution = ? "
                "WHERE scope = ? AND symbol = ? AND resolved_at IS NULL",
                (now, note, scope, symbol),
            )
            if cur.rowcount:
                resolved = NewAlert(Severity.INFO, text, f"resolved:{scope}:{symbol}")
                await self._alert(conn, resolved, now)
            return cur.rowcount

    async def incidents(self, scope: str | None = None, limit: int = 100) -> list[Incident]:
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT * FROM incident WHERE (? IS NULL OR scope = ?) ORDER BY id DESC LIMIT ?",
                (scope, scope, limit),
            )
            return [_incident(r) for r in await cur.fetchall()]

    async def alert(
        self, severity: Severity, text: str, key: str = "", repeat_after: float = 0.0
    ) -> bool:
        """Queue an alert; with ``repeat_after``, an alert with the same key queued within that
        many seconds suppresses this one (a lasting condition is re-raised, not spammed)."""
        new = NewAlert(severity, text, key)
        _, queued = await self._event("", None, None, new, repeat_after=repeat_after)
        return queued

    @asynccontextmanager
    async def _alerting(self, alerts: list[NewAlert]) -> AsyncIterator[Connection]:
        """A write transaction that queues ``alerts``. When the database cannot be written
        (busy beyond busy_timeout, disk full) they cannot reach the outbox: they go to the log
        at CRITICAL instead, so the terminal carries them, and the error is raised on."""
        try:
            async with self.db.write() as conn:
                yield conn
        except StorageError as exc:
            for a in alerts:
                event(
                    log,
                    "alert.not_stored",
                    logging.CRITICAL,
                    severity=a.severity.value,
                    key=a.key,
                    text=self.redact(a.text),
                    error=f"{type(exc).__name__}: {exc}",
                )
            raise

    async def _alert(
        self, conn: Connection, alert: NewAlert, now: float, chart: ChartSubject | None = None
    ) -> None:
        await conn.execute(
            "INSERT INTO alert_outbox(created_at, severity, key, text, next_attempt_at, "
            "chart_scope, chart_symbol) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                now,
                alert.severity.value,
                alert.key,
                self.redact(alert.text),
                now,
                chart.scope if chart else None,
                chart.symbol if chart else None,
            ),
        )
