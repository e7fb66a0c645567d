"""The storage seam: ``Database`` is what every repository holds, whatever the backend.

``Database.open(path_or_url)`` (also ``open_database``) opens the SQLite file at a path, or the
PostgreSQL database at a ``postgresql://`` URL (``storage/pg.py``; psycopg is imported only
then). Both give ``read()`` (one consistent snapshot) and ``write()`` (one transaction that
serialises writers), yield a connection the repositories use the same way
(``storage.sql.Connection``), and raise ``storage.errors`` types for their drivers' errors.

SQLite: one aiosqlite connection per process, configured for several processes sharing one file.

WAL lets readers proceed while a writer commits; ``busy_timeout`` makes a second process wait
for the write lock instead of failing; ``BEGIN IMMEDIATE`` takes the write lock up front so a
read-then-write transaction can never be overtaken between its read and its write.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import aiosqlite

from storage.errors import StorageBusy, StorageError, StorageUnavailable
from storage.sql import SQLITE, Connection, Dialect

BUSY_TIMEOUT_MS = 10_000
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_url(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


_SQLITE_TYPED: dict[tuple[type[StorageError], type[sqlite3.Error]], type[StorageError]] = {}


def storage_error(exc: sqlite3.Error) -> StorageError:
    """The typed storage error for an SQLite error. It is also an instance of the driver's own
    class (same message), so code written against sqlite3 before this seam existed still sees
    what it expects, while bot/ catches only the typed one."""
    text = str(exc).lower()
    typed: type[StorageError] = StorageError
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        typed = StorageBusy
    elif isinstance(exc, sqlite3.OperationalError) and "unable to open" in text:
        typed = StorageUnavailable
    key = (typed, type(exc))
    cls = _SQLITE_TYPED.get(key)
    if cls is None:
        cls = type(typed.__name__, (typed, type(exc)), {"__module__": __name__})
        _SQLITE_TYPED[key] = cls
    out = cls(*exc.args)
    for attr in ("sqlite_errorcode", "sqlite_errorname"):
        if hasattr(exc, attr):
            setattr(out, attr, getattr(exc, attr))
    return out


async def _enable_wal(conn: aiosqlite.Connection) -> None:
    """Switch a new database to WAL. Two processes creating one file at the same moment can
    both race for this first change, and SQLite answers "locked" at once instead of waiting on
    the busy timeout, so the switch is retried for as long as the busy timeout would wait."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.01
    while True:
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)


class DatabaseMissing(StorageError):
    """A command that only reads was pointed at a database that does not exist."""

    def __init__(self, path: str, hint: str = "") -> None:
        self.path = str(Path(path).absolute())
        self.hint = hint
        text = f"database {self.path} does not exist (nothing was created)"
        super().__init__(f"{text}; {hint}" if hint else text)


class Database(Protocol):
    """A Warden store on one backend. ``path`` names it in messages (for PostgreSQL: the URL
    with its password masked).

    A protocol, so the PostgreSQL backend provides it without importing this module (which
    opens it): no import cycle between the seam and its backends."""

    path: str
    dialect: Dialect

    @classmethod
    async def open(cls, path: str | Path, *, migrate: bool = True, create: bool = True) -> Database:
        """Open the store at ``path``: a file path (SQLite) or a ``postgresql://`` URL."""
        if is_url(path):
            from storage.pg import PgDatabase  # psycopg only for those who use PostgreSQL

            return await PgDatabase.connect(str(path), migrate=migrate)
        return await SqliteDatabase.open_file(path, migrate=migrate, create=create)

    async def close(self) -> None: ...

    def write(self) -> AbstractAsyncContextManager[Connection]:
        """One transaction; writers of every process exclude each other."""
        ...

    def read(self) -> AbstractAsyncContextManager[Connection]:
        """One consistent snapshot for several reads."""
        ...

    async def now(self, conn: Connection) -> float:
        """The time leases are judged by, inside a transaction of this database."""
        ...

    async def server_info(self) -> dict[str, Any]:
        """What `warden doctor` shows about the backend."""
        ...


async def open_database(
    target: str | Path, *, migrate: bool = True, create: bool = True
) -> Database:
    return await Database.open(target, migrate=migrate, create=create)


class SqliteDatabase(Database):
    dialect = SQLITE

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        # one connection is shared by the coroutines of a process; their transactions must not
        # interleave on it (a heartbeat's BEGIN inside a cycle's transaction would fail)
        self._lock = asyncio.Lock()

    @classmethod
    async def open_file(
        cls, path: str | Path, *, migrate: bool = True, create: bool = True
    ) -> SqliteDatabase:
        """Open (by default creating) the database at ``path``. With ``create=False`` a missing
        file raises DatabaseMissing and nothing is created: SQLite's ``mode=rw`` URI opens an
        existing file for reading and writing but never makes a new one, so a file removed
        between a check and the open cannot be re-created by accident either."""
        from storage.migrations import migrate as run_migrations

        path = str(path)
        target = path
        uri = False
        if path != ":memory:":
            parent = Path(path).resolve().parent
            if not create and not Path(path).is_file():
                raise DatabaseMissing(path)
            if not parent.is_dir():
                raise StorageError(f"database {path}: folder {parent} does not exist")
            if not create:
                target, uri = Path(path).resolve().as_uri() + "?mode=rw", True
        try:
            conn = await aiosqlite.connect(
                target, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, uri=uri
            )
        except sqlite3.Error as exc:
            if not create and not Path(path).is_file():
                raise DatabaseMissing(path) from None
            raise StorageError(f"database {path}: cannot be opened ({exc})") from None
        conn.row_factory = aiosqlite.Row
        db = cls(conn, path)
        try:
            await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            await _enable_wal(conn)
            # FULL: a committed intent or lease survives a power cut, not only a process crash
            await conn.execute("PRAGMA synchronous=FULL")
            await conn.execute("PRAGMA foreign_keys=ON")
            if migrate:
                await run_migrations(db)
        except sqlite3.DatabaseError as exc:
            await conn.close()
            raise StorageError(f"database {path}: not usable ({exc})") from None
        except BaseException:
            await conn.close()
            raise
        return db

    async def close(self) -> None:
        await self._conn.close()

    async def now(self, conn: Connection) -> float:
        # every process sharing the file runs on this host: its clock is the database's
        return time.time()

    async def server_info(self) -> dict[str, Any]:
        return {"backend": "sqlite", "version": sqlite3.sqlite_version, "path": self.path}

    async def _settle(self, sql: str) -> None:
        """Run a transaction-control statement to its end even if our task is cancelled.

        aiosqlite runs statements on a worker thread: a cancelled await does not stop a BEGIN
        that is waiting for the write lock, and the connection would stay inside a transaction
        nobody owns. So the statement is shielded, and a cancellation is re-raised only after
        the statement finished (and a BEGIN was rolled back).
        """
        fut = asyncio.ensure_future(self._conn.execute(sql))
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await fut
                if sql.startswith("BEGIN"):
                    await self._conn.execute("ROLLBACK")
            raise

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Connection]:
        """A write transaction holding SQLite's write lock from its first statement."""
        async with self._lock:
            try:
                await self._settle("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise storage_error(exc) from exc
            try:
                yield self._conn
            except BaseException as exc:
                try:
                    await self._settle("ROLLBACK")
                except sqlite3.OperationalError as rollback_exc:
                    # SQLite rolls the whole transaction back by itself on some errors
                    # (SQLITE_FULL, IOERR, NOMEM): the ROLLBACK then fails ("no transaction is
                    # active"), and that error must not replace the real one
                    if self._conn.in_transaction:
                        raise storage_error(rollback_exc) from rollback_exc
                if isinstance(exc, sqlite3.Error):
                    raise storage_error(exc) from exc
                raise
            else:
                try:
                    await self._settle("COMMIT")
                except sqlite3.Error as exc:
                    # a failed COMMIT (disk full, I/O error) leaves the transaction open
                    with contextlib.suppress(sqlite3.Error):
                        await self._settle("ROLLBACK")
                    raise storage_error(exc) from exc

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        """A consistent snapshot for several reads (a deferred transaction never writes)."""
        async with self._lock:
            try:
                await self._settle("BEGIN")
            except sqlite3.Error as exc:
                raise storage_error(exc) from exc
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise storage_error(exc) from exc
            finally:
                await self._settle("ROLLBACK")
