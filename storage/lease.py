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

Waiting is fair, first come first served: a process that asks to wait takes a ticket (a
``lease_waiter`` row), and a free lease goes only to the lowest live ticket of its scope, so a
process that has just released cannot take the lease straight back ahead of those already
waiting. A caller that does not wait is refused while anyone is in line. A waiter whose process
is dead (this host) or that has not polled for ``WAITER_STALE`` seconds is skipped and removed.
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
# a waiter refreshes its row at least every WAITER_REFRESH seconds while it polls (it polls far
# more often); one silent for WAITER_STALE is gone (paused, or dead on another host)
WAITER_REFRESH = 1.0
WAITER_STALE = 5.0


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
    """Refused: ``holder`` holds the lease, or (``queued``) the lease is free but ``holder`` is
    the first of ``ahead`` live waiters before this caller. ``ticket``: this caller's place in
    line when it asked to wait."""

    holder: LeaseHolder
    at: float
    queued: bool = False
    ahead: int = 0
    ticket: int | None = None

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


def _waiting_holder(scope: str, waiter: Any, lease_row: Any) -> LeaseHolder:
    """The first waiter in line, described as what stands in the caller's way."""
    token = int(lease_row["token"]) if lease_row is not None else 0
    since = float(waiter["since"])
    return LeaseHolder(
        scope=scope,
        owner=str(waiter["owner"]),
        purpose=f"waiting: {waiter['purpose']}",
        token=token,
        acquired_at=since,
        heartbeat_at=float(waiter["seen_at"]),
        expires_at=float(waiter["seen_at"]) + WAITER_STALE,
    )


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
        self,
        scope: str,
        owner: str,
        purpose: str,
        ttl: float,
        *,
        record_refusal: bool = True,
        ticket: int | None = None,
        queue: bool = False,
    ) -> Acquired | Busy:
        """Take the lease if it is free and nobody live is waiting ahead of ``ticket`` (any
        waiter, without a ticket). Refused with ``queue``, the caller gets a ticket (kept in
        ``Busy.ticket``: pass it back on the next try, or ``leave_line`` when giving up)."""
        async with self.db.write() as conn:
            now = await self._now(conn)
            cur = await conn.execute("SELECT * FROM lease WHERE scope = ?", (scope,))
            row = await cur.fetchone()
            current = _holder(row)
            took_over: LeaseHolder | None = None
            reason = ""
            free = self._free_reason(current, now) if current is not None else None
            if ticket is not None:
                ticket = await self._keep_place(conn, scope, owner, purpose, now, ticket)
            ahead = await self._live_waiters(conn, scope, now, ticket)
            if (current is not None and free is None) or ahead:
                queued = current is None or free is not None
                blocker = _waiting_holder(scope, ahead[0], row) if queued else current
                assert blocker is not None
                if record_refusal:
                    await self._record_refusal(conn, scope, now, owner, purpose, blocker)
                if queue and ticket is None:
                    cur = await conn.execute(
                        "INSERT INTO lease_waiter(scope, owner, purpose, since, seen_at) "
                        "VALUES (?, ?, ?, ?, ?) RETURNING ticket",
                        (scope, owner, purpose, now, now),
                    )
                    ticket = int((await cur.fetchone())[0])
                return Busy(blocker, now, queued, len(ahead), ticket)
            if ticket is not None:
                await conn.execute("DELETE FROM lease_waiter WHERE ticket = ?", (ticket,))
            if current is not None:
                assert free is not None
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

    async def _keep_place(
        self, conn: Connection, scope: str, owner: str, purpose: str, now: float, ticket: int
    ) -> int:
        """Refresh this waiter's row; a waiter skipped as stale (it did not poll for
        ``WAITER_STALE``) lines up again at the back under a new ticket."""
        cur = await conn.execute(
            "SELECT seen_at FROM lease_waiter WHERE ticket = ? AND owner = ?", (ticket, owner)
        )
        row = await cur.fetchone()
        if row is None:
            cur = await conn.execute(
                "INSERT INTO lease_waiter(scope, owner, purpose, since, seen_at) "
                "VALUES (?, ?, ?, ?, ?) RETURNING ticket",
                (scope, owner, purpose, now, now),
            )
            return int((await cur.fetchone())[0])
        if now - float(row["seen_at"]) >= WAITER_REFRESH:
            await conn.execute(
                "UPDATE lease_waiter SET seen_at = ? WHERE ticket = ?", (now, ticket)
            )
        return ticket

    async def _live_waiters(
        self, conn: Connection, scope: str, now: float, before: int | None
    ) -> list[Any]:
        """The live waiters ahead of ticket ``before`` (all, when None), first first; the gone
        ones among them are removed."""
        cur = await conn.execute(
            "SELECT ticket, owner, purpose, since, seen_at FROM lease_waiter "
            "WHERE scope = ? AND ticket < ? ORDER BY ticket",
            (scope, before if before is not None else 2**62),
        )
        live = []
        for row in await cur.fetchall():
            if self._waiter_gone(row, now):
                await conn.execute("DELETE FROM lease_waiter WHERE ticket = ?", (row["ticket"],))
            else:
                live.append(row)
        return live

    async def peek(self, scope: str, owner: str, ticket: int) -> Busy | None:
        """A waiter's read-only look: None when a ``try_acquire`` with this ticket could
        succeed (the lease is free and nobody live is ahead) or its row is due a refresh,
        else why not yet. Waiters poll with this, not with write transactions: SQLite's busy
        handler makes a writer that finds the write lock taken sleep for up to 100 ms, so
        polling writers would slow down the very hand-over they wait for."""
        async with self.db.read() as conn:
            now = await self._now(conn)
            # one statement, one round trip: the lease row, joined with the line up to us
            cur = await conn.execute(
                "SELECT l.scope, l.owner AS l_owner, l.purpose AS l_purpose, l.token, "
                "l.acquired_at, l.heartbeat_at, l.expires_at, w.ticket, w.owner, w.purpose, "
                "w.since, w.seen_at FROM lease l LEFT JOIN lease_waiter w "
                "ON w.scope = l.scope AND w.ticket <= ? WHERE l.scope = ? ORDER BY w.ticket",
                (ticket, scope),
            )
            rows = list(await cur.fetchall())
        if not rows:
            return None
        first = rows[0]
        current = _holder(
            {
                "scope": first["scope"],
                "owner": first["l_owner"],
                "purpose": first["l_purpose"],
                "token": first["token"],
                "acquired_at": first["acquired_at"],
                "heartbeat_at": first["heartbeat_at"],
                "expires_at": first["expires_at"],
            }
        )
        line = [r for r in rows if r["ticket"] is not None]
        mine = [r for r in line if int(r["ticket"]) == ticket and r["owner"] == owner]
        if not mine or now - float(mine[0]["seen_at"]) >= WAITER_REFRESH:
            return None
        ahead = [r for r in line if int(r["ticket"]) < ticket and not self._waiter_gone(r, now)]
        if current is not None and self._free_reason(current, now) is None:
            return Busy(current, now, False, len(ahead), ticket)
        if not ahead:
            return None
        return Busy(_waiting_holder(scope, ahead[0], first), now, True, len(ahead), ticket)

    def _waiter_gone(self, row: Any, now: float) -> bool:
        host, pid = parse_owner(row["owner"])
        dead = host == self.host and pid is not None and not self.is_alive(pid)
        return dead or now - float(row["seen_at"]) > WAITER_STALE

    async def leave_line(self, ticket: int) -> None:
        """A waiter gives up its place (it got the lease elsewhere, or stopped waiting)."""
        async with self.db.write() as conn:
            await conn.execute("DELETE FROM lease_waiter WHERE ticket = ?", (ticket,))

    async def waiters(self, scope: str) -> list[tuple[int, str, str]]:
        """(ticket, owner, purpose) of everyone in line for ``scope``, first first."""
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT ticket, owner, purpose FROM lease_waiter WHERE scope = ? ORDER BY ticket",
                (scope,),
            )
            return [(int(r[0]), str(r[1]), str(r[2])) for r in await cur.fetchall()]

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
