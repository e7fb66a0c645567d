"""Versioned schema migrations.

Each entry is applied once, in its own write transaction, and bumps ``schema_version``. Later
features append entries; an entry that has shipped is never edited. A database written by a
newer Warden (a version above ``LATEST``) is refused rather than guessed at.

The statements are SQLite's; PostgreSQL gets the same text with its types substituted
(``storage.sql.postgres_ddl``): one schema description for both. A new PostgreSQL database does
not replay SQLite's history one version at a time: every pending statement runs in ONE write
transaction (PostgreSQL's DDL is transactional), so a database is at version 0 or at ``LATEST``,
never half-made, and two agents starting together create it once (the write lock).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.alert_ack_schema import ALERT_ACK_STATEMENTS
from storage.alert_chart_schema import ALERT_CHART_STATEMENTS
from storage.cycle_schema import CYCLE_STATEMENTS
from storage.errors import StorageError
from storage.journal_schema import JOURNAL_STATEMENTS
from storage.lease_waiter_schema import LEASE_WAITER_STATEMENTS
from storage.paper_schema import PAPER_SCHEMA

if TYPE_CHECKING:
    from storage.db import Database

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "execution lease",
        [
            """CREATE TABLE lease (
                scope TEXT PRIMARY KEY,
                owner TEXT,
                purpose TEXT,
                token INTEGER NOT NULL DEFAULT 0,
                acquired_at REAL,
                heartbeat_at REAL,
                expires_at REAL
            )""",
            """CREATE TABLE lease_refusal (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                scope TEXT NOT NULL,
                at REAL NOT NULL,
                owner TEXT NOT NULL,
                purpose TEXT NOT NULL,
                holder_owner TEXT NOT NULL,
                holder_purpose TEXT NOT NULL,
                holder_token INTEGER NOT NULL
            )""",
            "CREATE INDEX lease_refusal_scope_at ON lease_refusal(scope, at)",
            """CREATE TABLE lease_event (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                scope TEXT NOT NULL,
                at REAL NOT NULL,
                kind TEXT NOT NULL,
                owner TEXT NOT NULL,
                purpose TEXT NOT NULL,
                token INTEGER NOT NULL,
                detail TEXT NOT NULL DEFAULT ''
            )""",
            "CREATE INDEX lease_event_scope_at ON lease_event(scope, at)",
        ],
    ),
    (2, "journal: intents, stops, exits, incidents, alert outbox", JOURNAL_STATEMENTS),
    (3, "paper exchange", PAPER_SCHEMA),
    (4, "strategy cycle records", CYCLE_STATEMENTS),
    (5, "alert delivery rounds and acknowledgements", ALERT_ACK_STATEMENTS),
    (6, "the chart an alert carries (scope, symbol)", ALERT_CHART_STATEMENTS),
    (7, "the execution lease's waiting line (first come, first served)", LEASE_WAITER_STATEMENTS),
]

LATEST = MIGRATIONS[-1][0]


async def current_version(db: Database) -> int:
    async with db.read() as conn:
        cur = await conn.execute(db.dialect.table_exists_sql, ("schema_version",))
        exists = await cur.fetchone()
        if not exists or not exists[0]:
            return 0
        cur = await conn.execute("SELECT version FROM schema_version")
        row = await cur.fetchone()
        return int(row[0]) if row else 0


def _newer(db: Database, found: int) -> StorageError:
    return StorageError(
        f"database {db.path} has schema version {found}, newer than this Warden supports "
        f"({LATEST}); upgrade Warden or point [storage] path / url (WARDEN_DB / "
        "WARDEN_DATABASE_URL) at another database"
    )


async def migrate(db: Database) -> int:
    """Bring the schema to ``LATEST``; returns the version found before migrating."""
    found = await current_version(db)
    if found > LATEST:
        raise _newer(db, found)
    if found == LATEST:
        return found
    if db.dialect.name != "sqlite":
        await _migrate_at_once(db)
        return found
    for version, _name, statements in MIGRATIONS:
        async with db.write() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
            )
            cur = await conn.execute("SELECT version FROM schema_version")
            row = await cur.fetchone()
            now = int(row[0]) if row else 0
            # another process may have migrated while we waited for the write lock, possibly a
            # newer Warden to a version this one does not know
            if now > LATEST:
                raise _newer(db, now)
            if now >= version:
                continue
            for stmt in statements:
                await conn.execute(stmt)
            if row is None:
                await conn.execute("INSERT INTO schema_version(version) VALUES (?)", (version,))
            else:
                await conn.execute("UPDATE schema_version SET version = ?", (version,))
    return found


async def _migrate_at_once(db: Database) -> None:
    """Every pending version in one transaction (a backend with transactional DDL)."""
    async with db.write() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        cur = await conn.execute("SELECT version FROM schema_version")
        row = await cur.fetchone()
        now = int(row[0]) if row else 0
        if now > LATEST:
            raise _newer(db, now)
        for version, _name, statements in MIGRATIONS:
            if version > now:
                for stmt in statements:
                    await conn.execute(db.dialect.ddl(stmt))
        if row is None:
            await conn.execute("INSERT INTO schema_version(version) VALUES (?)", (LATEST,))
        elif now < LATEST:
            await conn.execute("UPDATE schema_version SET version = ?", (LATEST,))
