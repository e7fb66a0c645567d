"""Online backup and restore of the Warden database, with SQLite's backup API.

Backup: ``sqlite3.Connection.backup`` copies the database in one step from one read snapshot. In
WAL mode a reader never blocks the writer, so it is safe while the agent trades: the copy is the
database as it was at one commit, never a torn mix. The copy is written next to its destination,
checked, and renamed over it, so a failed run never leaves a half-written file under the name.

Restore: the source is checked first (an SQLite file, intact, a Warden schema no newer than this
Warden); it is refused while an agent or any lease holder uses the database, or while another
process has it open. The current database is kept as ``<db>.before-restore-<ts>`` (itself a
consistent copy), then the restored copy replaces it with an atomic rename. The restored copy gets
a new instance id, so client order ids issued after the backup was taken are never issued again
(invariant I2: a reused id would be "resolved" to the old order).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from storage.daemon_beacon import KEY_PREFIX, read_beacons
from storage.errors import StorageError
from storage.lease import HOST, parse_owner, pid_alive
from storage.migrations import LATEST

SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_S = 10.0


class DatabaseInUse(StorageError):
    """An agent, a lease holder or another process is using the database: try again later."""


@dataclass(frozen=True)
class DbInfo:
    path: Path
    schema_version: int
    bytes: int


@dataclass(frozen=True)
class BackupResult:
    path: Path
    schema_version: int
    bytes: int
    seconds: float


@dataclass(frozen=True)
class RestoreResult:
    source: Path
    database: Path
    kept: Path | None  # the database replaced, or None when there was none
    schema_version: int


def _stamp(now: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


@contextlib.contextmanager
def _connect(path: Path, *, read_only: bool = False) -> Iterator[sqlite3.Connection]:
    uri = f"{path.resolve().as_uri()}?mode={'ro' if read_only else 'rw'}"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot be opened ({exc})") from None
    try:
        yield conn
    finally:
        conn.close()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _version(conn: sqlite3.Connection, path: Path) -> int:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not {"schema_version", "lease"} <= tables:
        raise StorageError(f"{path}: not a Warden database (no Warden schema in it)")
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    if row is None or int(row[0]) < 1:
        raise StorageError(f"{path}: not a Warden database (no schema version)")
    return int(row[0])


def inspect(path: Path) -> DbInfo:
    """A Warden database this Warden can use, or StorageError saying why not. Read-only."""
    if not path.is_file():
        raise StorageError(f"{path}: not found")
    with path.open("rb") as f:
        if f.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
            raise StorageError(f"{path}: not an SQLite database")
    try:
        with _connect(path, read_only=True) as conn:
            check = conn.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise StorageError(f"{path}: damaged ({check[0] if check else 'no answer'})")
            version = _version(conn, path)
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path}: not usable ({exc})") from None
    if version > LATEST:
        raise StorageError(
            f"{path}: schema version {version} is newer than this Warden supports ({LATEST}); "
            "restore it with the Warden that wrote it"
        )
    return DbInfo(path, version, path.stat().st_size)


def _copy(src: sqlite3.Connection, dest: Path) -> None:
    """One-step online backup into ``dest`` (a new file), left in rollback-journal mode so the
    copy is a single self-contained file."""
    out = sqlite3.connect(dest, isolation_level=None)
    try:
        src.backup(out)  # pages=-1: everything from one read snapshot
        out.execute("PRAGMA journal_mode=DELETE")
    finally:
        out.close()
    os.chmod(dest, 0o600)  # trading history: as private as the database
    _fsync(dest)


def _replace(tmp: Path, dest: Path) -> None:
    os.replace(tmp, dest)
    with contextlib.suppress(OSError):  # not every file system can fsync a folder
        _fsync(dest.parent)


def _temp_beside(dest: Path, tag: str) -> Path:
    return dest.parent / f".{dest.name}.{tag}-{os.getpid()}"


def backup(db_path: Path, dest: Path, now: float | None = None) -> BackupResult:
    """Copy the live database to ``dest`` (a file, or a folder: ``warden-<ts>.db`` in it)."""
    started = time.monotonic()
    now = time.time() if now is None else now
    if not db_path.is_file():
        raise StorageError(f"database {db_path}: not found (nothing to back up)")
    if dest.is_dir():
        dest = dest / f"warden-{_stamp(now)}.db"
    if not dest.parent.is_dir():
        raise StorageError(f"backup {dest}: folder {dest.parent} does not exist")
    if dest.exists() and dest.resolve() == db_path.resolve():
        raise StorageError(f"backup {dest}: that is the database itself")
    tmp = _temp_beside(dest, "backup")
    try:
        with _connect(db_path) as src:
            _copy(src, tmp)
        info = inspect(tmp)
        _replace(tmp, dest)
    except sqlite3.Error as exc:
        raise StorageError(f"backup of {db_path} failed: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return BackupResult(dest, info.schema_version, dest.stat().st_size, time.monotonic() - started)


def users_of(conn: sqlite3.Connection, now: float) -> list[str]:
    """Who is using this database now: running agents, lease holders (dead holders excluded)."""
    found = [
        f"agent {b.owner} (heartbeat {now - b.beat_at:.0f}s ago)"
        for b in read_beacons(conn)
        if b.alive(now)
    ]
    try:
        rows = conn.execute(
            "SELECT scope, owner, purpose FROM lease WHERE owner IS NOT NULL AND expires_at > ?",
            (now,),
        ).fetchall()
    except sqlite3.OperationalError:
        rows = []
    for scope, owner, purpose in rows:
        host, pid = parse_owner(owner)
        if host == HOST and pid is not None and not pid_alive(pid):
            continue
        found.append(f"lease {scope} held by {owner} ({purpose})")
    return found


def _keep_current(db_path: Path, now: float) -> Path:
    """Copy the current database aside (consistently) after checking nobody uses it."""
    kept = db_path.with_name(f"{db_path.name}.before-restore-{_stamp(now)}")
    try:
        with _connect(db_path) as conn:
            users = users_of(conn, now)
            if users:
                raise DatabaseInUse(
                    f"database {db_path} is in use: {'; '.join(users)}. Stop the agent "
                    "(and wait for the commands holding a lease) before restoring"
                )
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            _copy(conn, kept)
    except sqlite3.DatabaseError as exc:
        kept.unlink(missing_ok=True)
        raise StorageError(
            f"database {db_path}: cannot be read to keep a copy ({exc}); with the agent stopped, "
            "move it and its -wal/-shm files aside, then run restore again"
        ) from None
    # closing the last connection removes the WAL files: if they are still there, another
    # process has the database open (an agent that has not beaten yet, a status command)
    leftovers = [p for p in (Path(f"{db_path}-wal"), Path(f"{db_path}-shm")) if p.exists()]
    if leftovers:
        kept.unlink(missing_ok=True)
        raise DatabaseInUse(
            f"database {db_path} is open in another process ({leftovers[0].name} exists); "
            "stop it and try again"
        )
    return kept


def restore(source: Path, db_path: Path, now: float | None = None) -> RestoreResult:
    now = time.time() if now is None else now
    info = inspect(source)
    if db_path.exists() and db_path.resolve() == source.resolve():
        raise StorageError(f"{source}: that is the database itself")
    if not db_path.parent.is_dir():
        raise StorageError(f"database {db_path}: folder {db_path.parent} does not exist")
    kept = _keep_current(db_path, now) if db_path.exists() else None
    tmp = _temp_beside(db_path, "restore")
    try:
        with _connect(source, read_only=True) as src:
            _copy(src, tmp)
        with _connect(tmp) as conn:
            _fresh_identity(conn)
        _fsync(tmp)
        _replace(tmp, db_path)
    except sqlite3.Error as exc:
        raise StorageError(f"restore from {source} failed: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return RestoreResult(source, db_path, kept, info.schema_version)


def _fresh_identity(conn: sqlite3.Connection) -> None:
    """A new instance id (client order ids never repeat), no heartbeats of agents long gone."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "meta" not in tables:
        return
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'instance'", (os.urandom(3).hex(),))
    conn.execute("DELETE FROM meta WHERE key LIKE ?", (KEY_PREFIX + "%",))
    conn.execute("COMMIT")
