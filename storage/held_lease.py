"""Holding the execution lease: acquisition with a deadline, a heartbeat, the fencing check."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from storage.lease import Acquired, Busy, LeaseHolder, LeaseStore, new_owner
from trading.lease import LeaseBusy, LeaseLost
from trading.logfmt import event

log = logging.getLogger("warden.lease")


class HeldLease:
    """A lease this process holds. ``ensure()`` before every exchange write (fencing)."""

    def __init__(
        self,
        store: LeaseStore,
        holder: LeaseHolder,
        ttl: float,
        heartbeat: float,
        asked_at: float | None = None,
    ) -> None:
        self.store = store
        self.holder = holder
        self.scope = holder.scope
        self.token = holder.token
        self.owner = holder.owner
        self.purpose = holder.purpose
        self.ttl = ttl
        self.heartbeat_interval = heartbeat
        self.expires_at = holder.expires_at
        # when this process must give the lease up if it cannot renew it, on its own monotonic
        # clock: ``expires_at`` is the database's time (another host's clock on PostgreSQL),
        # and the ttl counted from before the request that set it can only end early
        self._local_deadline = (time.monotonic() if asked_at is None else asked_at) + ttl
        self.lost_reason: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._released = False

    def start_heartbeat(self) -> None:
        self._task = asyncio.create_task(self._beat(), name=f"lease-heartbeat {self.scope}")

    async def _beat(self) -> None:
        while self.lost_reason is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.heartbeat_interval)
            if self._stop.is_set():
                return
            asked_at = time.monotonic()
            try:
                expires = await self.store.renew(self.scope, self.owner, self.token, self.ttl)
            except Exception as exc:
                # a busy or failing database: keep trying until the lease would have expired
                event(
                    log,
                    "lease.heartbeat_failed",
                    logging.WARNING,
                    scope=self.scope,
                    token=self.token,
                    error=type(exc).__name__,
                )
                if (
                    self.store.clock() >= self.expires_at
                    or time.monotonic() >= self._local_deadline
                ):
                    self._mark_lost("heartbeat could not renew before expiry")
                continue
            if expires is None:
                self._mark_lost("heartbeat found the lease expired or taken over")
            else:
                self.expires_at = expires
                self._local_deadline = asked_at + self.ttl

    def _mark_lost(self, reason: str) -> None:
        if self.lost_reason is None:
            self.lost_reason = reason
            event(
                log, "lease.lost", logging.ERROR, scope=self.scope, token=self.token, reason=reason
            )

    async def ensure(self) -> None:
        if self.lost_reason is None and self._released:
            self.lost_reason = "released"
        if self.lost_reason is None and not await self.store.is_current(
            self.scope, self.owner, self.token
        ):
            self._mark_lost("fencing token is no longer current")
        if self.lost_reason is not None:
            raise LeaseLost(f"execution lease for {self.scope} lost: {self.lost_reason}")

    async def release(self) -> None:
        # Stop the heartbeat without cancelling it: a renew cancelled while its BEGIN IMMEDIATE
        # waits for the write lock still runs on aiosqlite's thread and leaves the connection
        # inside a transaction that nobody commits (this process then holds SQLite's write lock
        # for good and every later BEGIN fails). A renew in flight is let finish; it is short.
        # The shield keeps a cancellation of release() itself from reaching the heartbeat.
        self._stop.set()
        if self._task is not None:
            task, self._task = self._task, None
            await asyncio.shield(task)
        if not self._released:
            self._released = True
            if self.lost_reason is None:
                await self.store.release(self.scope, self.owner, self.token)


def describe_busy(busy: Busy) -> str:
    """Who stands in the way: the holder, or (the lease free) the first of those in line."""
    if not busy.queued:
        return busy.holder.describe(busy.at)
    first = busy.holder
    return (
        f"nobody, but {busy.ahead} waiting process(es) come first: {first.owner} "
        f"({first.purpose}, for {first.age(busy.at):.1f}s)"
    )


def poll_delay(busy: Busy) -> float:
    """How long a waiter sleeps before looking again. The lease is free but someone is ahead:
    they take it within milliseconds. Held: a fifth of how long it has been held (a short hold
    is likely to end soon, a long cycle is not). Further back in line, longer: 1 + 3 x the
    live waiters ahead (each of them holds it in turn first; looks cost CPU the holder needs,
    measured with benchmarks/lease_bench.py). Between 1 ms and 250 ms, jittered so that
    waiters do not look in lockstep."""
    base = 0.001 if busy.queued else max(0.001, 0.2 * busy.age)
    return min(0.25, base * (1 + 3 * busy.ahead)) * (0.75 + 0.5 * random.random())


class LeaseManager:
    def __init__(self, store: LeaseStore, ttl: float = 30.0, heartbeat: float = 5.0) -> None:
        self.store = store
        self.ttl = ttl
        self.heartbeat = heartbeat

    async def acquire(self, scope: str, purpose: str, wait: float = 0.0) -> HeldLease:
        """Take the lease, waiting at most ``wait`` seconds; ``LeaseBusy`` names the holder.

        A caller that waits stands in line (``LeaseStore.try_acquire``'s ticket): the lease goes
        to the longest waiting live process, never back to one that has just released it."""
        owner = new_owner()
        deadline = time.monotonic() + wait  # waiting is local: the monotonic clock
        ticket: int | None = None
        try:
            while True:
                last_try = time.monotonic() >= deadline
                asked_at = time.monotonic()
                result = await self.store.try_acquire(
                    scope,
                    owner,
                    purpose,
                    self.ttl,
                    record_refusal=last_try,
                    ticket=ticket,
                    queue=not last_try,
                )
                if isinstance(result, Acquired):
                    ticket = None  # its row left the line in the same transaction
                    if result.took_over is not None:
                        event(
                            log,
                            "lease.takeover",
                            logging.WARNING,
                            scope=scope,
                            token=result.holder.token,
                            previous=result.took_over.owner,
                            reason=result.takeover_reason,
                        )
                    held = HeldLease(self.store, result.holder, self.ttl, self.heartbeat, asked_at)
                    held.start_heartbeat()
                    return held
                assert isinstance(result, Busy)
                ticket = result.ticket
                if last_try:
                    raise LeaseBusy(scope, describe_busy(result))
                # wait in line with read-only looks until a write try could succeed
                busy: Busy | None = result
                while busy is not None and time.monotonic() < deadline:
                    remaining = max(0.0, deadline - time.monotonic())
                    await asyncio.sleep(min(poll_delay(busy), remaining))
                    busy = await self.store.peek(scope, owner, ticket) if ticket else None
        finally:
            if ticket is not None:
                # giving up (deadline, error, cancellation): leave the line so nobody waits on
                # us; if this fails, the others skip the row once it goes stale
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.store.leave_line(ticket))

    @asynccontextmanager
    async def hold(self, scope: str, purpose: str, wait: float = 0.0) -> AsyncIterator[HeldLease]:
        held = await self.acquire(scope, purpose, wait)
        try:
            yield held
        finally:
            await held.release()
