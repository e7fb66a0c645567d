"""Confirmations for destructive commands (I7): a button that works once, and only in time.

Taking a confirmation is synchronous (no await between looking it up and removing it), so two
presses of one button (even processed concurrently) act once. Confirmations live in memory: a
restart invalidates every button shown before it, which fails safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

Action = Callable[[], Awaitable[str]]  # does the work, returns the HTML result
OnExpiry = Callable[["Pending"], Awaitable[None]]


class Ended(StrEnum):
    CONFIRMED = "already confirmed: it acts only once"
    CANCELED = "already canceled: nothing was done"
    EXPIRED = "expired: nothing was done"


@dataclass
class Pending:
    token: str
    summary: str  # HTML: exactly what will be done
    action: Action
    chat_id: int
    expires_at: float  # monotonic
    message_id: int | None = None
    _timer: asyncio.Task[None] | None = field(default=None, repr=False)


class Confirmations:
    def __init__(
        self,
        timeout: float,
        on_expiry: OnExpiry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.on_expiry = on_expiry
        self.clock = clock
        self._pending: dict[str, Pending] = {}
        self._ended: dict[str, Ended] = {}

    def add(self, summary: str, action: Action, chat_id: int) -> Pending:
        token = secrets.token_hex(6)
        p = Pending(token, summary, action, chat_id, self.clock() + self.timeout)
        self._pending[token] = p
        p._timer = asyncio.create_task(self._expire_later(p), name=f"confirm-expiry {token}")
        return p

    async def _expire_later(self, p: Pending) -> None:
        await asyncio.sleep(max(0.0, p.expires_at - self.clock()))
        if self._pending.get(p.token) is p:
            del self._pending[p.token]
            self._end(p.token, Ended.EXPIRED)
            if self.on_expiry is not None:
                await self.on_expiry(p)

    def _end(self, token: str, how: Ended) -> None:
        self._ended[token] = how
        if len(self._ended) > 1000:  # a bounded memory of what happened to old buttons
            self._ended.pop(next(iter(self._ended)))

    def take(self, token: str, confirm: bool) -> Pending | Ended | None:
        """The confirmation to act on now, or how it already ended (None: never known here,
        e.g. a button from before a restart)."""
        p = self._pending.pop(token, None)
        if p is None:
            return self._ended.get(token)
        if p._timer is not None and p._timer is not asyncio.current_task():
            p._timer.cancel()
        if self.clock() >= p.expires_at:
            self._end(token, Ended.EXPIRED)
            return Ended.EXPIRED
        self._end(token, Ended.CONFIRMED if confirm else Ended.CANCELED)
        return p

    async def close(self) -> None:
        timers = [p._timer for p in self._pending.values() if p._timer is not None]
        self._pending.clear()
        for t in timers:
            t.cancel()
        for t in timers:
            with contextlib.suppress(asyncio.CancelledError):
                await t
