"""Schema of the lease's waiting line (migration 7): one row per process waiting for a scope.

Kept apart from ``storage.lease`` so that ``storage.migrations`` can import it without
importing the repository (which imports ``storage.db``, which imports the migrations).
"""

from __future__ import annotations

LEASE_WAITER_STATEMENTS = [
    # ticket grows across all scopes and is never reused: the lowest live ticket of a scope
    # is next in line. seen_at is refreshed while the waiter polls, so a waiter on another
    # host that stopped polling can be skipped (a dead pid is judged only on this host).
    """CREATE TABLE lease_waiter (
        ticket INTEGER PRIMARY KEY AUTOINCREMENT,
        scope TEXT NOT NULL,
        owner TEXT NOT NULL,
        purpose TEXT NOT NULL,
        since REAL NOT NULL,
        seen_at REAL NOT NULL
    )""",
    "CREATE INDEX lease_waiter_scope_ticket ON lease_waiter(scope, ticket)",
]
