"""The execution lease as the domain sees it: a guard checked before every exchange write.

The storage layer implements it; the executor only needs ``ensure()``.
"""

from __future__ import annotations

from typing import Protocol


class LeaseError(Exception):
    pass


class LeaseBusy(LeaseError):
    """Somebody else holds the account; ``holder`` says who, for what and for how long."""

    def __init__(self, scope: str, holder: str) -> None:
        super().__init__(f"execution lease for {scope} is held by {holder}")
        self.scope = scope
        self.holder = holder


class LeaseLost(LeaseError):
    """The lease expired or was taken over: the holder must not write to the exchange again."""


class LeaseGuard(Protocol):
    scope: str
    token: int

    async def ensure(self) -> None:
        """Raise ``LeaseLost`` unless this holder's token is still the current one."""
        ...
