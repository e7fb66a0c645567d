"""The alert outbox (I6): alerts are rows written with their cause; senders deliver and mark."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from storage.db import Database

# incidents whose alert carries the position chart: an emergency close, and a stop repair
# (a position found without a live stop, or a stop that needed re-placing before it read back)
CHART_INCIDENTS = frozenset(
    {"emergency_close", "emergency_close_failed", "unprotected_position", "stop_placement_failed"}
)


@dataclass(frozen=True)
class ChartSubject:
    scope: str
    symbol: str


@dataclass(frozen=True)
class PendingAlert:
    id: int
    created_at: float
    severity: str
    key: str
    text: str
    attempts: int
    chart: ChartSubject | None = None  # drawn at delivery; None: text only


class Outbox:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def due(self, limit: int = 50) -> list[PendingAlert]:
        """Undelivered alerts in creation order, up to the first one still backing off."""
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT id, created_at, severity, key, text, attempts, next_attempt_at, "
                "chart_scope, chart_symbol FROM alert_outbox WHERE delivered_at IS NULL "
                "ORDER BY id LIMIT ?",
                (limit,),
            )
            rows = await cur.fetchall()
        due: list[PendingAlert] = []
        now = self.clock()
        for r in rows:
            if r["next_attempt_at"] > now:
                break  # keep order: nothing overtakes an alert that is waiting to be retried
            chart = (
                ChartSubject(r["chart_scope"], r["chart_symbol"])
                if r["chart_scope"] and r["chart_symbol"]
                else None
            )
            due.append(
                PendingAlert(
                    r["id"],
                    r["created_at"],
                    r["severity"],
                    r["key"],
                    r["text"],
                    r["attempts"],
                    chart,
                )
            )
        return due

    async def delivered(self, alert_id: int) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                "UPDATE alert_outbox SET delivered_at = ?, attempts = attempts + 1 WHERE id = ?",
                (self.clock(), alert_id),
            )

    async def failed(self, alert_id: int, error: str, retry_in: float) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                "UPDATE alert_outbox SET attempts = attempts + 1, last_error = ?, "
                "next_attempt_at = ? WHERE id = ?",
                (error[:500], self.clock() + retry_in, alert_id),
            )

    async def undelivered_count(self) -> int:
        async with self.db.read() as conn:
            cur = await conn.execute("SELECT COUNT(*) FROM alert_outbox WHERE delivered_at IS NULL")
            row = await cur.fetchone()
            return int(row[0]) if row else 0
