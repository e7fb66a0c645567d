"""The Warden store on PostgreSQL, through psycopg 3 (imported only by those who use it).

One connection per process, like SQLite, used in explicit transactions:

- ``write()``: ``BEGIN`` (READ COMMITTED), then ``pg_advisory_xact_lock`` on one key shared by
  every Warden process using the database, then the repository's statements, then ``COMMIT``.
  The lock is what SQLite's ``BEGIN IMMEDIATE`` is: one writer at a time, and each write
  transaction, once it holds the lock, reads everything committed before it (READ COMMITTED
  takes a new snapshot per statement), so a read-then-write can never be overtaken between its
  read and its write. It is released by the transaction's end, whatever ends it (commit,
  rollback, a dropped connection), so it can never outlive the work it protects. SERIALIZABLE
  with retries would give the same safety, but every repository would have to be re-runnable
  from the start on a serialisation failure, and a fenced write that has already told the
  exchange something must not run twice. A writer waits ``LOCK_TIMEOUT_S`` for the lock
  (SQLite's busy timeout), then ``StorageBusy``.
- ``read()``: ``BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY``: one snapshot for several
  reads, never blocking or blocked by the writer.

Parameters are bound on the client (``AsyncClientCursor``), as SQLite binds a value without
needing its type: ``? IS NULL`` with a None needs no declared type.

A broken connection (server restarted, network cut, ``pg_terminate_backend``) fails the
transaction it was in with ``StorageUnavailable``; the next transaction connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import psycopg.errors
from psycopg.rows import RowMaker

from storage.errors import StorageBusy, StorageError, StorageUnavailable
from storage.pg_url import mask_url, strip_url
from storage.sql import POSTGRESQL, Connection, to_postgres

LOCK_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10
# the advisory lock every write transaction takes: one 64-bit key for the whole database
# ("warden" in ASCII), so any two Warden writers exclude each other. pg_advisory_xact_lock "is
# automatically released at the end of the current transaction and cannot be released
# explicitly" (https://www.postgresql.org/docs/current/functions-admin.html, section
# "Advisory Lock Functions")
WRITE_LOCK_KEY = 0x77617264656E
_WRITE_START = (
    "{begin}; SET LOCAL lock_timeout = '{ms}ms'; "
    f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})"
)


class Row(tuple[Any, ...]):
    """A result row readable by position and by column name, like sqlite3.Row; ``dict(row)``
    gives the columns."""

    __slots__ = ()
    _index: ClassVar[dict[str, int]] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: Any) -> RowMaker[Row]:
    names = [d.name for d in cursor.description or ()]
    cls = type("Row", (Row,), {"__slots__": (), "_index": {n: i for i, n in enumerate(names)}})

    def make(values: Sequence[Any]) -> Row:
        return cls(values)

    return make


def _typed(exc: psycopg.Error, where: str) -> StorageError:
    if isinstance(exc, psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled):
        return StorageBusy(f"database {where} is busy: {exc}")
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return StorageUnavailable(f"database {where} unavailable: {exc}")
    return StorageError(f"database {where}: {type(exc).__name__}: {exc}")


class PgCursor:
    def __init__(self, cur: psycopg.AsyncClientCursor[Row]) -> None:
        self._cur = cur

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    async def fetchone(self) -> Row | None:
        return await self._cur.fetchone()

    async def fetchall(self) -> list[Row]:
        return await self._cur.fetchall()


class PgConnection:
    """``storage.sql.Connection`` over a psycopg connection: SQLite placeholders translated."""

    def __init__(self, conn: psycopg.AsyncConnection[Row]) -> None:
        self._conn = conn

    def _cursor(self) -> psycopg.AsyncClientCursor[Row]:
        return psycopg.AsyncClientCursor(self._conn, row_factory=_row_factory)

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> PgCursor:
        text, params = to_postgres(sql, parameters)
        cur = self._cursor()
        await cur.execute(text, params)
        return PgCursor(cur)

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> PgCursor:
        cur = self._cursor()
        text = ""
        rows = []
        for p in parameters:
            text, params = to_postgres(sql, p)
            rows.append(params)
        if rows:
            await cur.executemany(text, rows)
        return PgCursor(cur)


class PgDatabase:
    """``storage.db.Database`` on PostgreSQL."""

    dialect = POSTGRESQL

    def __init__(self, url: str) -> None:
        self._url = url
        self.path = mask_url(url)
        self._conn: psycopg.AsyncConnection[Row] | None = None
        self._lock = asyncio.Lock()
        # how long a writer waits for another process's write transaction: then StorageBusy
        self.lock_timeout = LOCK_TIMEOUT_S

    @classmethod
    async def open(
        cls, path: str | Path, *, migrate: bool = True, create: bool = True
    ) -> PgDatabase:
        """``Database.open`` for a URL; ``create`` has no meaning here (the server's database
        exists or the connection fails: nothing is created but the schema)."""
        return await cls.connect(str(path), migrate=migrate)

    @classmethod
    async def connect(cls, url: str, *, migrate: bool = True) -> PgDatabase:
        from storage.migrations import migrate as run_migrations

        db = cls(url)
        await db._connection()
        try:
            if migrate:
                await run_migrations(db)
        except BaseException:
            await db.close()
            raise
        return db

    async def _connection(self) -> psycopg.AsyncConnection[Row]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._url,
                autocommit=True,  # transactions are explicit (BEGIN ... COMMIT) as on SQLite
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="warden",
                row_factory=_row_factory,
            )
        except psycopg.Error as exc:
            raise StorageUnavailable(
                f"database {self.path}: cannot connect ({strip_url(str(exc), self._url)})"
            ) from None
        self._conn = conn
        return conn

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.close()

    async def _run(
        self, conn: psycopg.AsyncConnection[Row], sql: str, *, interruptible: bool = False
    ) -> None:
        """A transaction-control statement, run to its end even if our task is cancelled (a
        half-sent BEGIN or COMMIT would leave the connection in a state nobody owns). An
        ``interruptible`` one (the write lock wait) is cancelled on the server first, so a
        cancelled writer stops waiting at once instead of after its lock timeout."""
        fut = asyncio.ensure_future(conn.execute(sql))
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            if interruptible and not fut.done():
                with contextlib.suppress(Exception):
                    await conn.cancel_safe(timeout=5.0)
            with contextlib.suppress(Exception):
                await fut
            raise

    async def _abort(self, conn: psycopg.AsyncConnection[Row]) -> None:
        """Roll back; when even that fails the connection is dropped (the server then rolls
        back by itself) and the next transaction connects again."""
        try:
            await self._run(conn, "ROLLBACK")
        except (psycopg.Error, asyncio.CancelledError):
            await self.close()

    @asynccontextmanager
    async def _transaction(self, begin: str, write: bool) -> AsyncIterator[Connection]:
        async with self._lock:
            conn = await self._connection()
            try:
                # one round trip: BEGIN, the lock wait bound and the write lock together
                await self._run(
                    conn, self._write_start(begin) if write else begin, interruptible=write
                )
            except psycopg.Error as exc:
                await self._abort(conn)
                raise _typed(exc, self.path) from None
            except BaseException:
                await self._abort(conn)
                raise
            try:
                yield PgConnection(conn)
            except psycopg.Error as exc:
                await self._abort(conn)
                raise _typed(exc, self.path) from exc
            except BaseException:
                await self._abort(conn)
                raise
            try:
                await self._run(conn, "COMMIT" if write else "ROLLBACK")
            except psycopg.Error as exc:
                await self._abort(conn)
                raise _typed(exc, self.path) from exc

    def _write_start(self, begin: str) -> str:
        return _WRITE_START.format(begin=begin, ms=max(1, int(self.lock_timeout * 1000)))

    def write(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """One transaction; writers of every process exclude each other (see the module doc)."""
        return self._transaction("BEGIN", write=True)

    def read(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        return self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", write=False)

    async def now(self, conn: Connection) -> float:
        """The server's clock, read when asked (``clock_timestamp``, not the transaction's
        start: "now() ... returns the start time of the current transaction",
        clock_timestamp() "the actual current time", per "Current Date/Time" in
        https://www.postgresql.org/docs/current/functions-datetime.html): every host sharing
        the database judges leases by this one clock."""
        cur = await conn.execute("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8")
        row = await cur.fetchone()
        return float(row[0])

    async def server_info(self) -> dict[str, Any]:
        async with self.read() as conn:
            cur = await conn.execute("SHOW server_version")
            row = await cur.fetchone()
        return {"backend": "postgresql", "version": str(row[0]), "path": self.path}
