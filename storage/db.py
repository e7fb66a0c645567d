"""One aiosqlite connection per process, configured for several processes sharing one file.

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
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from storage.errors import StorageError

BUSY_TIMEOUT_MS = 10_000


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


class Database:
    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        # one connection is shared by the coroutines of a process; their transactions must not
        # interleave on it (a heartbeat's BEGIN inside a cycle's transaction would fail)
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str | Path, *, migrate: bool = True, create: bool = True) -> Database:
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
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction holding SQLite's write lock from its first statement."""
        async with self._lock:
            await self._settle("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                try:
                    await self._settle("ROLLBACK")
                except sqlite3.OperationalError:
                    # SQLite rolls the whole transaction back by itself on some errors
                    # (SQLITE_FULL, IOERR, NOMEM): the ROLLBACK then fails ("no transaction is
                    # active"), and that error must not replace the real one
                    if self._conn.in_transaction:
                        raise
                raise
            else:
                try:
                    await self._settle("COMMIT")
                except sqlite3.Error:
                    # a failed COMMIT (disk full, I/O error) leaves the transaction open
                    with contextlib.suppress(sqlite3.Error):
                        await self._settle("ROLLBACK")
                    raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[aiosqlite.Connection]:
        """A consistent snapshot for several reads (a deferred transaction never writes)."""
        async with self._lock:
            await self._settle("BEGIN")
            try:
                yield self._conn
            finally:
                await self._settle("ROLLBACK")
