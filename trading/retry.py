"""Reads may be retried; writes never are (I2). This is the only retry helper, for reads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from trading.errors import RateLimited, Retryable

T = TypeVar("T")


async def read(
    fn: Callable[[], Awaitable[T]],
    attempts: int = 4,
    base_delay: float = 0.25,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return await fn()
        except Retryable as exc:
            if attempt == attempts:
                raise
            delay = base_delay * 2 ** (attempt - 1)
            if isinstance(exc, RateLimited) and exc.retry_after:
                delay = max(delay, exc.retry_after)
            await sleep(delay)
    raise AssertionError("unreachable")
