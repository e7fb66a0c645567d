"""The execution lease of a backtest: held by its one task from start to end, never lost."""

from __future__ import annotations


class InProcessLease:
    """A ``trading.lease.LeaseGuard`` nobody else can take: ``ensure()`` always passes."""

    def __init__(self, scope: str, token: int = 1) -> None:
        self.scope = scope
        self.token = token

    async def ensure(self) -> None:
        return None
