"""The agent lease: one active `warden run` per store, with the execution lease's machinery.

It is a row of the ``lease`` table under a scope of its own, ``@agent`` (account scopes are
``exchange:account``, and a configured name can contain neither ``@`` nor ``:``, so it collides
with none of them). It is held for the agent's whole life: owner ``host:pid:random``, a heartbeat,
and a fencing token that grows on every acquisition. It is taken over when it expires, or at once
when its pid is dead on this host, exactly like an account lease (``storage/lease.py``).

Unlike an account lease, a lapse is not a loss by itself: an agent paused past its expiry may
carry on when nobody took the lease in the meantime (its token is still the current one, so
nobody else has been the agent since). The fencing check is therefore "owner and token still
mine", made inside the write transaction of each store-wide write (the beacon) and before each
job and outbox delivery.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.lease import Acquired, Busy, LeaseHolder, LeaseStore
from storage.sql import Connection

AGENT_SCOPE = "@agent"
ACTIVE_PURPOSE = "active agent"


@dataclass(frozen=True)
class AgentFence:
    """What the agent holds: store-wide writes check it inside their transaction."""

    owner: str
    token: int

    async def holds_in(self, conn: Connection) -> bool:
        return await LeaseStore.is_held_by_in(conn, AGENT_SCOPE, self.owner, self.token)


class AgentLeaseStore:
    def __init__(self, leases: LeaseStore) -> None:
        self.leases = leases

    async def claim(self, owner: str, ttl: float, *, record_refusal: bool) -> Acquired | Busy:
        return await self.leases.try_acquire(
            AGENT_SCOPE, owner, ACTIVE_PURPOSE, ttl, record_refusal=record_refusal
        )

    async def holder(self) -> LeaseHolder | None:
        return await self.leases.holder(AGENT_SCOPE)

    def free_reason(self, holder: LeaseHolder) -> str | None:
        """Why the current holder may be taken over now, or None while it is in office."""
        return self.leases.free_reason(holder, self.leases.clock())

    async def free_reason_now(self, holder: LeaseHolder) -> str | None:
        """``free_reason`` judged by the database's clock (agents on several hosts)."""
        return self.leases.free_reason(holder, await self.leases.now())

    async def extend(self, fence: AgentFence, ttl: float) -> float | None:
        return await self.leases.extend(AGENT_SCOPE, fence.owner, fence.token, ttl)

    async def holds(self, fence: AgentFence) -> bool:
        async with self.leases.db.read() as conn:
            return await fence.holds_in(conn)

    async def release(self, fence: AgentFence) -> bool:
        return await self.leases.release(AGENT_SCOPE, fence.owner, fence.token)
