"""The execution lease (invariant I1): one writer per exchange account, across processes.

A row per account scope holds the current owner and a fencing token that grows on every
acquisition and is never reset, so a holder that was paused past its expiry can tell, before
its next write, that somebody else has held the account since.

Expiry is judged by the database's clock, read inside the same transaction as the lease row
(``Database.now``: on PostgreSQL the server's ``clock_timestamp()``, so agents on several hosts
never compare their own clocks; on SQLite, whose processes all share one host, that host's).
A clock given to ``LeaseStore`` replaces it (tests that move time by hand). "Holder process
dead" frees a lease at once only when the holder's host (the first part of its owner) is this
host: a pid means nothing on another machine.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from storage.db import Database
from storage.sql import Connection

HOST = socket.gethostname()


def new_owner() -> str:
    return f"{HOST}:{os.getpid()}:{os.urandom(4).hex()}"


def parse_owner(owner: str) -> tuple[str, int | None]:
    host, _, _random = owner.rpartition(":")
    host, _, pid = host.rpartition(":")
    try:
        return host, int(pid)
    except ValueError:
        return host, None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a killed child its parent has not reaped yet still answers signals; it will never write
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


@dataclass(frozen=True)
class LeaseHolder:
    scope: str
    owner: str
    purpose: str
    token: int
    acquired_at: float
    heartbeat_at: float
    expires_at: float

    def age(self, now: float) -> float:
        return max(0.0, now - self.acquired_at)

    @property
    def pid(self) -> int | None:
        return parse_owner(self.owner)[1]

    def describe(self, now: float) -> str:
        return f"{self.owner} ({self.purpose}, held {self.age(now):.1f}s, token {self.token})"


@dataclass(frozen=True)
class Acquired:
    holder: LeaseHolder
    took_over: LeaseHolder | None = None
    takeover_reason: str = ""


@dataclass(frozen=True)
class Busy:
    holder: LeaseHolder
    at: float

    @property
    def age(self) -> float:
        return self.holder.age(self.at)


@dataclass(frozen=True)
class Refusal:
    scope: str
    at: float
    owner: str
    purpose: str
    holder_owner: str
    holder_purpose: str
    holder_token: int


def _holder(row: Any) -> LeaseHolder | None:
    if row is None or row["owner"] is None:
        return None
    return LeaseHolder(
        scope=row["scope"],
        owner=row["owner"],
        purpose=row["purpose"],
        token=int(row["token"]),
        acquired_at=float(row["acquired_at"]),
        heartbeat_at=float(row["heartbeat_at"]),
        expires_at=float(row["expires_at"]),
    )


class LeaseStore:
    def __init__(
        self,
        db: Database,
        clock: Callable[[], float] | None = None,
        host: str = HOST,
        is_alive: Callable[[int], bool] = pid_alive,
    ) -> None:
        self.db = db
        # this process's idea of now (local waits, messages); leases are judged by _now
        self.clock = clock or time.time
        self._given_clock = clock
        self.host = host
        self.is_alive = is_alive

    async def _now(self, conn: Connection) -> float:
        if self._given_clock is not None:
            return self._given_clock()
        return await self.db.now(conn)

    async def now(self) -> float:
        """The time leases are judged by (the database's clock), outside a transaction."""
        if self._given_clock is not None:
            return self._given_clock()
        async with self.db.read() as conn:
            return await self.db.now(conn)

    def free_reason(self, holder: LeaseHolder, now: float) -> str | None:
        """Why ``holder`` may be taken over now ("expired", "holder process dead"), or None."""
        return self._free_reason(holder, now)

    def _free_reason(self, holder: LeaseHolder, now: float) -> str | None:
        if holder.expires_at <= now:
            return "expired"
        host, pid = parse_owner(holder.owner)
        if host == self.host and pid is not None and not self.is_alive(pid):
            return "holder process dead"
        return None

    async def try_acquire(
        self, scope: str, owner: str, purpose: str, ttl: float, *, record_refusal: bool = True
    ) -> Acquired | Busy:
        async with self.db.write() as conn:
            now = await self._now(conn)
            cur = await conn.execute("SELECT * FROM lease WHERE scope = ?", (scope,))
            row = await cur.fetchone()
            current = _holder(row)
            took_over: LeaseHolder | None = None
            reason = ""
            if current is not None:
                free = self._free_reason(current, now)
                if free is None:
                    if record_refusal:
                        await self._record_refusal(conn, scope, now, owner, purpose, current)
                    return Busy(current, now)
                took_over, reason = current, free
                await conn.execute(
                    "INSERT INTO lease_event(scope, at, kind, owner, purpose, token, detail) "
                    "VALUES (?, ?, 'takeover', ?, ?, ?, ?)",
                    (
                        scope,
                        now,
                        owner,
                        purpose,
                        current.token + 1,
                        f"from {current.owner} ({current.purpose}, token {current.token}): {free}",
                    ),
                )
            token = (int(row["token"]) if row is not None else 0) + 1
            await conn.execute(
                "INSERT INTO lease(scope, owner, purpose, token, acquired_at, heartbeat_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(scope) DO UPDATE SET "
                "owner=excluded.owner, purpose=excluded.purpose, token=excluded.token, "
                "acquired_at=excluded.acquired_at, heartbeat_at=excluded.heartbeat_at, "
                "expires_at=excluded.expires_at",
                (scope, owner, purpose, token, now, now, now + ttl),
            )
            holder = LeaseHolder(scope, owner, purpose, token, now, now, now + ttl)
            return Acquired(holder, took_over, reason)

    async def record_refusal(
        self, scope: str, owner: str, purpose: str, holder: LeaseHolder
    ) -> None:
        async with self.db.write() as conn:
            await self._record_refusal(conn, scope, await self._now(conn), owner, purpose, holder)

    @staticmethod
    async def _record_refusal(
        conn: Connection,
        scope: str,
        now: float,
        owner: str,
        purpose: str,
        holder: LeaseHolder,
    ) -> None:
        await conn.execute(
            "INSERT INTO lease_refusal(scope, at, owner, purpose, holder_owner, holder_purpose, "
            "holder_token) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (scope, now, owner, purpose, holder.owner, holder.purpose, holder.token),
        )

    async def renew(self, scope: str, owner: str, token: int, ttl: float) -> float | None:
        """Extend a lease still held under this token; None when it has been lost."""
        async with self.db.write() as conn:
            now = await self._now(conn)
            cur = await conn.execute(
                "UPDATE lease SET heartbeat_at = ?, expires_at = ? "
                "WHERE scope = ? AND owner = ? AND token = ? AND expires_at > ?",
                (now, now + ttl, scope, owner, token, now),
            )
            return now + ttl if cur.rowcount == 1 else None

    async def extend(self, scope: str, owner: str, token: int, ttl: float) -> float | None:
        """Renew a life-long lease (the agent lease), even past its expiry, as long as nobody
        took it over: an unchanged token proves nobody else has held it since. None when lost."""
        async with self.db.write() as conn:
            now = await self._now(conn)
            cur = await conn.execute(
                "UPDATE lease SET heartbeat_at = ?, expires_at = ? "
                "WHERE scope = ? AND owner = ? AND token = ?",
                (now, now + ttl, scope, owner, token),
            )
            return now + ttl if cur.rowcount == 1 else None

    @staticmethod
    async def is_held_by_in(conn: Connection, scope: str, owner: str, token: int) -> bool:
        """The agent lease's fencing check, inside another write transaction: still this owner
        under this token (expiry aside: see ``extend``)."""
        cur = await conn.execute(
            "SELECT 1 FROM lease WHERE scope = ? AND owner = ? AND token = ?",
            (scope, owner, token),
        )
        return await cur.fetchone() is not None

    async def holder(self, scope: str) -> LeaseHolder | None:
        async with self.db.read() as conn:
            cur = await conn.execute("SELECT * FROM lease WHERE scope = ?", (scope,))
            return _holder(await cur.fetchone())

    async def release(self, scope: str, owner: str, token: int) -> bool:
        async with self.db.write() as conn:
            cur = await conn.execute(
                "UPDATE lease SET owner = NULL, purpose = NULL, acquired_at = NULL, "
                "heartbeat_at = NULL, expires_at = NULL "
                "WHERE scope = ? AND owner = ? AND token = ?",
                (scope, owner, token),
            )
            return cur.rowcount == 1

    @staticmethod
    async def is_current_in(conn: Connection, scope: str, token: int, now: float) -> bool:
        """The fencing check, for use inside another repository's write transaction."""
        cur = await conn.execute(
            "SELECT 1 FROM lease WHERE scope = ? AND token = ? AND owner IS NOT NULL "
            "AND expires_at > ?",
            (scope, token, now),
        )
        return await cur.fetchone() is not None

    async def is_current(self, scope: str, owner: str, token: int) -> bool:
        async with self.db.read() as conn:
            return await self.is_current_in(conn, scope, token, await self._now(conn))

    async def holders(self) -> list[LeaseHolder]:
        async with self.db.read() as conn:
            cur = await conn.execute("SELECT * FROM lease WHERE owner IS NOT NULL ORDER BY scope")
            rows = await cur.fetchall()
        return [h for h in (_holder(r) for r in rows) if h is not None]

    async def refusals(self, since: float = 0.0, limit: int = 50) -> list[Refusal]:
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT scope, at, owner, purpose, holder_owner, holder_purpose, holder_token "
                "FROM lease_refusal WHERE at >= ? ORDER BY at DESC, id DESC LIMIT ?",
                (since, limit),
            )
            rows = await cur.fetchall()
        return [Refusal(*tuple(r)) for r in rows]

    async def events(self, since: float = 0.0, limit: int = 50) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT scope, at, kind, owner, purpose, token, detail FROM lease_event "
                "WHERE at >= ? ORDER BY at DESC, id DESC LIMIT ?",
                (since, limit),
            )
            return [dict(r) for r in await cur.fetchall()]
