"""One account's gate inside one agent: its strategy cycles and its stop watchdog take turns.

The execution lease (I1) keeps processes apart; inside the agent the lease would only make the
cycle find its own watchdog holding the account and skip a decision for a whole candle. So the
cycle and the watchdog of one account pass this gate first: a cycle waits (bounded) for a watchdog
tick in progress, and a watchdog tick that finds a cycle running or waiting leaves the account to
it, since every cycle runs the guardian over every position itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class AccountGate:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._cycles_waiting = 0

    def busy(self) -> bool:
        """Held, or a cycle is queued for it: a watchdog tick should leave the account alone."""
        return self._lock.locked() or self._cycles_waiting > 0

    @asynccontextmanager
    async def cycle(self, wait: float) -> AsyncIterator[bool]:
        """Pass for a cycle, waiting at most ``wait`` seconds; yields False when it did not get
        through in time (the cycle then meets whoever holds the lease, and records a skip)."""
        self._cycles_waiting += 1
        try:
            try:
                await asyncio.wait_for(self._lock.acquire(), timeout=wait)
                got = True
            except TimeoutError:
                got = False
        finally:
            self._cycles_waiting -= 1
        try:
            yield got
        finally:
            if got:
                self._lock.release()

    @asynccontextmanager
    async def watchdog(self) -> AsyncIterator[bool]:
        """Pass for a watchdog tick, never waiting: yields False when the account is busy."""
        if self.busy():
            yield False
            return
        # free and nobody queued: acquired without suspending, nobody can slip in between
        await self._lock.acquire()
        try:
            yield True
        finally:
            self._lock.release()
