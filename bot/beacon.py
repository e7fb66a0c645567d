"""The running agent's heartbeat row (``storage/daemon_beacon.py``), kept while `warden run` runs.

Every ``interval`` it records that the process is alive and, per account scope, when the stop
watchdog last completed a run: a guardian pass, or a tick that found the account busy with another
holder (who runs the guardian itself). The watchdogs are looked at every second and a change is
written at once. A watchdog that only fails, or an account never reconciled, leaves that time
behind and `warden health` turns red: "alive" is not enough, the positions must be guarded.

A tick the watchdog left to a running cycle of this same agent (the cycle runs the guardian
itself) counts as a completed run too. A standby agent beats with role ``standby`` and no scopes.
An active agent's beat is fenced by its agent lease: when the lease has been taken over nothing is
written and ``on_fenced`` is called (the agent steps down).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Protocol

from storage.agent_lease import AgentFence
from storage.daemon_beacon import ACTIVE, Beacon, BeaconStore
from storage.db import Database
from storage.lease import new_owner
from trading.logfmt import event

log = logging.getLogger("warden.health")


class _Stats(Protocol):
    runs: int
    skipped_busy: int


class _Watchdog(Protocol):
    @property
    def stats(self) -> _Stats: ...


class DaemonBeacon:
    def __init__(
        self,
        db: Database,
        watchdogs: Mapping[str, _Watchdog],  # scope -> that account's watchdog
        interval: float,
        clock: Callable[[], float] = time.time,
        *,
        owner: str | None = None,
        role: str = ACTIVE,
        fence: AgentFence | None = None,
        on_fenced: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = BeaconStore(db, clock)
        self.watchdogs = watchdogs
        self.interval = interval
        self.clock = clock
        self.owner = owner or new_owner()
        self.role = role
        self.fence = fence
        self.on_fenced = on_fenced
        self.started_at = clock()
        self._seen: dict[str, int] = {}
        self._watchdog_at: dict[str, float] = {}
        self._stop = asyncio.Event()
        self._beat_at = 0.0

    def _observe(self, now: float) -> bool:
        changed = False
        for scope, watchdog in self.watchdogs.items():
            stats = watchdog.stats
            # ``yielded``: ticks left to a cycle of this agent (older stats objects lack it)
            done = stats.runs + stats.skipped_busy + getattr(stats, "yielded", 0)
            if done != self._seen.get(scope, 0):
                self._seen[scope] = done
                self._watchdog_at[scope] = now
                changed = True
        return changed

    async def beat(self) -> None:
        now = self.clock()
        self._observe(now)
        self._beat_at = now
        written = await self.store.beat(
            Beacon(
                owner=self.owner,
                started_at=self.started_at,
                beat_at=now,
                interval=self.interval,
                scopes=tuple(self.watchdogs),
                watchdog_at=dict(self._watchdog_at),
                role=self.role,
            ),
            self.fence,
        )
        if not written and self.on_fenced is not None:
            await self.on_fenced()

    async def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=min(1.0, self.interval))
            if self._stop.is_set():
                return
            now = self.clock()
            if not self._observe(now) and now - self._beat_at < self.interval:
                continue
            try:
                await self.beat()
            except Exception as exc:
                # a busy database delays one beat; `warden health` tolerates three missed
                event(log, "health.beat_failed", logging.WARNING, error=type(exc).__name__)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[DaemonBeacon]:
        await self.store.prune()
        await self.beat()
        # stopped through the event, never cancelled: a cancelled write could leave the shared
        # connection inside a transaction (see storage/held_lease.py)
        task = asyncio.create_task(self._loop(), name="health beacon")
        try:
            yield self
        finally:
            self._stop.set()
            await asyncio.shield(task)
            with contextlib.suppress(Exception):
                await self.store.remove(self.owner)
