"""The agent's heartbeat in the database: what `warden health` and `warden restore` read.

A running `warden run` writes one row in the ``meta`` table (key ``daemon:<owner>``) every
``lease.heartbeat_seconds``: when it started, when it last beat, which account scopes it guards
and when each one's stop watchdog last completed a run, and its role: ``active`` (it holds the
agent lease, ``storage/agent_lease.py``) or ``standby`` (it waits for it and guards nothing). An
active agent's beat is fenced: written only while the agent lease is still its own. A clean stop
deletes the row; a crashed agent's row simply stops being renewed. Several processes may share a
database, so health is read from these rows plus the lease heartbeats and the cycle records,
never from process lists.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from storage.agent_lease import AgentFence
from storage.db import Database
from storage.lease import HOST, parse_owner, pid_alive

KEY_PREFIX = "daemon:"
ACTIVE, STANDBY = "active", "standby"
# a row not renewed for this long is deleted by the next agent that starts
PRUNE_AFTER_SECONDS = 86_400.0


def _scope_times() -> dict[str, float]:
    return {}


@dataclass(frozen=True)
class Beacon:
    owner: str  # host:pid:random, like a lease owner
    started_at: float
    beat_at: float
    interval: float
    scopes: tuple[str, ...]
    watchdog_at: dict[str, float] = field(default_factory=_scope_times)
    role: str = ACTIVE  # active | standby (rows written before roles existed: active)

    @property
    def key(self) -> str:
        return KEY_PREFIX + self.owner

    def to_json(self) -> str:
        return json.dumps(
            {
                "started_at": self.started_at,
                "beat_at": self.beat_at,
                "interval": self.interval,
                "scopes": list(self.scopes),
                "watchdog_at": self.watchdog_at,
                "role": self.role,
            },
            sort_keys=True,
        )

    @classmethod
    def parse(cls, key: str, value: str) -> Beacon | None:
        """A row as stored; None when it is not a beacon (or unreadable: never fatal)."""
        if not key.startswith(KEY_PREFIX):
            return None
        try:
            data: dict[str, Any] = json.loads(value)
            return cls(
                owner=key[len(KEY_PREFIX) :],
                started_at=float(data["started_at"]),
                beat_at=float(data["beat_at"]),
                interval=float(data["interval"]),
                scopes=tuple(str(s) for s in data["scopes"]),
                watchdog_at={str(k): float(v) for k, v in data.get("watchdog_at", {}).items()},
                role=STANDBY if data.get("role") == STANDBY else ACTIVE,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def alive(self, now: float, is_alive: Callable[[int], bool] = pid_alive) -> bool:
        """Beating recently and, on this host, its process still exists."""
        host, pid = parse_owner(self.owner)
        if host == HOST and pid is not None and not is_alive(pid):
            return False
        return now - self.beat_at <= 3 * self.interval + 5


def beacons_from_rows(rows: Iterable[tuple[str, str]]) -> list[Beacon]:
    """Beacons newest beat first."""
    found = [b for b in (Beacon.parse(k, v) for k, v in rows) if b is not None]
    return sorted(found, key=lambda b: b.beat_at, reverse=True)


SELECT_ROWS = "SELECT key, value FROM meta WHERE key LIKE 'daemon:%'"


class BeaconStore:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def beat(self, beacon: Beacon, fence: AgentFence | None = None) -> bool:
        """Write the row; with ``fence``, only while the agent lease is still held under it
        (False, nothing written, when it has been taken over)."""
        async with self.db.write() as conn:
            if fence is not None and not await fence.holds_in(conn):
                return False
            await conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (beacon.key, beacon.to_json()),
            )
            return True

    async def remove(self, owner: str) -> None:
        async with self.db.write() as conn:
            await conn.execute("DELETE FROM meta WHERE key = ?", (KEY_PREFIX + owner,))

    async def all(self) -> list[Beacon]:
        async with self.db.read() as conn:
            cur = await conn.execute(SELECT_ROWS)
            rows = [(str(r[0]), str(r[1])) for r in await cur.fetchall()]
        return beacons_from_rows(rows)

    async def prune(self, is_alive: Callable[[int], bool] = pid_alive) -> int:
        """Delete the rows of agents that are gone: dead on this host, an earlier life of this
        very process (a restarted container is pid 1 on the same host again), or silent for a
        day. Called by an agent before its first beat."""
        now = self.clock()
        gone = []
        for b in await self.all():
            host, pid = parse_owner(b.owner)
            dead_here = (
                host == HOST and pid is not None and (pid == os.getpid() or not is_alive(pid))
            )
            if dead_here or now - b.beat_at > PRUNE_AFTER_SECONDS:
                gone.append(b.key)
        if gone:
            async with self.db.write() as conn:
                await conn.executemany("DELETE FROM meta WHERE key = ?", [(k,) for k in gone])
        return len(gone)


def read_beacons(conn: sqlite3.Connection) -> list[Beacon]:
    """The same rows through a plain sqlite3 connection (backup and restore are synchronous)."""
    try:
        rows = conn.execute(SELECT_ROWS).fetchall()
    except sqlite3.OperationalError:  # a schema before the meta table: no agent ever beat here
        return []
    return beacons_from_rows((str(k), str(v)) for k, v in rows)


async def last_agent_cycles(db: Database, since: float) -> dict[str, float]:
    """When the agent's own cycles (scheduled or replayed, not manual) last ended, per scope."""
    async with db.read() as conn:
        cur = await conn.execute(
            "SELECT scope, MAX(ended_at) FROM cycle WHERE trigger IN ('scheduled', 'replay') "
            "AND ended_at >= ? GROUP BY scope",
            (since,),
        )
        return {str(r[0]): float(r[1]) for r in await cur.fetchall() if r[1] is not None}
