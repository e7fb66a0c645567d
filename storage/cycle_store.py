"""Cycle records: when each strategy cycle ran, what it decided, how it ended (skips too)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from storage.db import Database


@dataclass(frozen=True)
class CycleRecord:
    id: int
    strategy: str
    scope: str
    trigger: str
    started_at: float
    ended_at: float | None
    outcome: str
    decisions: str
    error: str | None


class CycleStore:
    def __init__(
        self,
        db: Database,
        clock: Callable[[], float] = time.time,
        redact: Callable[[str], str] = str,
    ) -> None:
        self.db = db
        self.clock = clock
        self.redact = redact

    async def record(
        self,
        strategy: str,
        scope: str,
        trigger: str,
        started_at: float,
        outcome: str,
        decisions: str = "",
        error: str | None = None,
    ) -> int:
        async with self.db.write() as conn:
            cur = await conn.execute(
                "INSERT INTO cycle(strategy, scope, trigger, started_at, ended_at, outcome, "
                "decisions, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    strategy,
                    scope,
                    trigger,
                    started_at,
                    self.clock(),
                    outcome,
                    self.redact(decisions),
                    self.redact(error) if error else None,
                ),
            )
            row = await cur.fetchone()
            return int(row[0])

    async def last(self, strategy: str) -> CycleRecord | None:
        rows = await self.recent(strategy, 1)
        return rows[0] if rows else None

    async def recent(self, strategy: str | None = None, limit: int = 20) -> list[CycleRecord]:
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT id, strategy, scope, trigger, started_at, ended_at, outcome, decisions, "
                "error FROM cycle WHERE (? IS NULL OR strategy = ?) ORDER BY id DESC LIMIT ?",
                (strategy, strategy, limit),
            )
            return [CycleRecord(*tuple(r)) for r in await cur.fetchall()]

    async def counts(self, strategy: str) -> dict[str, int]:
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT outcome, COUNT(*) FROM cycle WHERE strategy = ? GROUP BY outcome",
                (strategy,),
            )
            return {r[0]: r[1] for r in await cur.fetchall()}
