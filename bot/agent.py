"""One active agent per store (``storage/agent_lease.py``): claiming the agent lease, standing by
for it, keeping it, and noticing when it has been taken over.

`warden run` claims the lease before it starts anything; a second one is refused (exit 75, the
holder named) or, with ``--standby``, waits: it polls the lease and takes it over when the holder
expires or its process is dead, then starts like any agent (reconciliation first) and says so in
a critical alert. An active agent that finds the lease taken over (it was paused past the TTL and
a standby took office) steps down: its jobs stop, it delivers nothing more, and it releases
nothing it no longer holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from storage.agent_lease import AgentFence, AgentLeaseStore
from storage.db import Database
from storage.errors import StorageError
from storage.lease import HOST, Acquired, LeaseHolder, LeaseStore, parse_owner
from trading.logfmt import event

log = logging.getLogger("warden.agent")

# Drills and tests only: the host name this agent gives as its own in the agent lease's owner
# (``host:pid:random``), so that two agents on one machine behave as agents on two hosts do: a
# pid is judged dead only when its host is this agent's own, so a standby "on another host" takes
# over only when the holder's lease expires, by the database's clock. Never set it in production:
# two agents on one host that claim different names would wait the full TTL for a dead holder.
HOST_ENV = "WARDEN_AGENT_HOST"


def agent_host() -> str:
    return os.environ.get(HOST_ENV) or HOST


def who(owner: str) -> str:
    """``host:pid`` of a ``host:pid:random`` owner: what a person recognises."""
    host, pid = parse_owner(owner)
    return f"{host}:{pid}" if pid is not None else owner


def _reason(free_reason: str) -> str:
    return "holder expired" if free_reason == "expired" else free_reason


class AgentBusy(Exception):
    """Another agent holds the store."""

    def __init__(self, holder: LeaseHolder, now: float) -> None:
        self.holder = holder
        super().__init__(holder.describe(now))


class AgentSeat:
    """This process's claim on the agent lease: claim it, stand by for it, keep it."""

    def __init__(
        self, db: Database, ttl: float, heartbeat: float, poll: float | None = None
    ) -> None:
        host = agent_host()
        self.leases = LeaseStore(db, host=host)
        self.store = AgentLeaseStore(self.leases)
        self.owner = f"{host}:{os.getpid()}:{os.urandom(4).hex()}"
        self.ttl = ttl
        self.heartbeat = heartbeat
        # a standby looks at the holder this often (a read; it writes only to take over)
        self.poll = poll if poll is not None else min(1.0, heartbeat)
        self.fence: AgentFence | None = None
        self.took_over: LeaseHolder | None = None
        self.takeover_reason = ""
        self.from_standby = False  # took office after waiting as a standby
        self.lost = asyncio.Event()
        self.lost_reason: str | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- getting the lease --------------------------------------------------------------------

    async def claim(self, *, record_refusal: bool = True) -> None:
        """Take the lease now (also over an expired or dead holder), or raise ``AgentBusy``."""
        result = await self.store.claim(self.owner, self.ttl, record_refusal=record_refusal)
        if not isinstance(result, Acquired):
            raise AgentBusy(result.holder, result.at)
        self.fence = AgentFence(self.owner, result.holder.token)
        self.from_standby = False
        self.took_over, self.takeover_reason = result.took_over, result.takeover_reason
        self.lost.clear()
        self.lost_reason = None
        if result.took_over is not None:
            event(
                log,
                "agent.takeover",
                logging.CRITICAL,
                owner=self.owner,
                token=result.holder.token,
                previous=result.took_over.owner,
                reason=result.takeover_reason,
            )

    async def stand_by(self, stop: asyncio.Event) -> bool:
        """Wait until the lease can be taken, then take it; False when ``stop`` came first.

        Only a read each ``poll``; the write (``claim``) is tried when the holder looks free, and
        a refusal is recorded only once, not once per look. "Free" is judged by the database's
        clock, as the claim itself judges it: a standby whose host clock runs ahead of the
        active's would otherwise try (and fail) every poll, one running behind would look late.
        A database it cannot reach is retried at the next poll: a standby outlives an outage."""
        while not stop.is_set():
            try:
                holder = await self.store.holder()
                free = holder is None or await self.store.free_reason_now(holder) is not None
            except StorageError as exc:
                event(log, "agent.standby_read_failed", logging.WARNING, error=type(exc).__name__)
                free = False
            if free:
                # refused (another standby was first), or the database went away meanwhile
                with contextlib.suppress(AgentBusy, StorageError):
                    await self.claim(record_refusal=False)
                    self.from_standby = True
                    return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll)
        return False

    def takeover_text(self) -> str:
        if self.took_over is None:
            return (
                f"agent on {who(self.owner)} is active after standing by (the previous agent "
                "stopped and released the store)"
            )
        return (
            f"agent on {who(self.owner)} took over from {who(self.took_over.owner)} "
            f"({_reason(self.takeover_reason)}); it reconciles every account, then runs the jobs"
        )

    # --- keeping it ---------------------------------------------------------------------------

    @asynccontextmanager
    async def office(self) -> AsyncIterator[AgentSeat]:
        """Keep the claimed lease (heart-beating) for the block; release it after, if still ours."""
        assert self.fence is not None, "claim() first"
        self._stop.clear()
        self._task = asyncio.create_task(self._beat(), name="agent lease heartbeat")
        try:
            yield self
        finally:
            # stopped through the event, never cancelled: a cancelled write could leave the
            # shared connection inside a transaction (see storage/held_lease.py)
            self._stop.set()
            await asyncio.shield(self._task)
            if self.lost_reason is None:
                await self.store.release(self.fence)

    async def _beat(self) -> None:
        assert self.fence is not None
        while self.lost_reason is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.heartbeat)
            if self._stop.is_set():
                return
            try:
                expires = await self.store.extend(self.fence, self.ttl)
            except Exception as exc:
                # a busy database: the lease may lapse, but it is ours until someone takes it
                event(log, "agent.heartbeat_failed", logging.WARNING, error=type(exc).__name__)
                continue
            if expires is None:
                await self.lose("the agent lease was taken over")

    async def still_active(self) -> bool:
        """The fencing check before a job or a delivery: the lease is still ours."""
        if self.lost_reason is not None:
            return False
        if self.fence is not None and await self.store.holds(self.fence):
            return True
        await self.lose("the agent lease was taken over")
        return False

    async def lose(self, reason: str) -> None:
        if self.lost_reason is not None:
            return
        self.lost_reason = reason  # at once: every other check from now on says "lost"
        holder = None
        with contextlib.suppress(Exception):
            holder = await self.store.holder()
        if holder is not None and holder.owner != self.owner:
            self.lost_reason = f"{reason} by {who(holder.owner)} (token {holder.token})"
        self.lost.set()
        event(log, "agent.lost", logging.CRITICAL, owner=self.owner, reason=self.lost_reason)

    def step_down_text(self) -> str:
        return (
            f"agent on {who(self.owner)} stepped down: {self.lost_reason}; it stopped its jobs "
            "and delivers no alerts (another agent is active)"
        )
