"""Schema migrations and connection setup: fresh, older, newer and concurrently opened databases."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from storage import migrations
from storage.db import BUSY_TIMEOUT_MS, Database
from storage.errors import StorageError
from storage.journal_store import JournalStore
from storage.lease import Acquired, LeaseStore
from storage.migrations import LATEST, MIGRATIONS, current_version, migrate
from storage.outbox import ChartSubject, Outbox
from tests.conftest import ROOT, child_env, warden_cmd
from trading.journal import Attribution

V1_TABLES = {"lease", "lease_refusal", "lease_event"}


def tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    finally:
        conn.close()
    return {r[0] for r in rows}


def version_rows(path: Path) -> list[tuple[int, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT version FROM schema_version").fetchall()
    finally:
        conn.close()


def set_version(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("UPDATE schema_version SET version = ?", (version,))
        conn.commit()
    finally:
        conn.close()


async def make_current(path: Path) -> None:
    """A database as this version of Warden leaves it, with a lease row in it."""
    db = await Database.open(path)
    try:
        store = LeaseStore(db, clock=lambda: 1000.0)
        acquired = await store.try_acquire("okx:main", "host:1:aa", "cli open", 30.0)
        assert isinstance(acquired, Acquired)
    finally:
        await db.close()


# --- fresh and older databases ------------------------------------------------------------------


async def test_fresh_database_is_at_latest(db: Database, db_path: Path) -> None:
    assert await current_version(db) == LATEST
    assert V1_TABLES | {"schema_version"} <= tables(db_path)
    assert version_rows(db_path) == [(LATEST,)]


async def test_reopening_is_a_no_op(db_path: Path) -> None:
    for _ in range(3):
        db = await Database.open(db_path)
        try:
            assert await migrate(db) == LATEST  # already there: nothing to do
        finally:
            await db.close()
    assert version_rows(db_path) == [(LATEST,)]


@pytest.mark.parametrize("with_empty_version_table", [False, True])
async def test_version_0_database_is_migrated_and_keeps_its_data(
    db_path: Path, with_empty_version_table: bool
) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    conn.execute("INSERT INTO notes(text) VALUES ('kept')")
    if with_empty_version_table:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.commit()
    conn.close()

    db = await Database.open(db_path, migrate=False)
    try:
        assert await current_version(db) == 0
        assert await migrate(db) == 0  # the version found before migrating
        assert await current_version(db) == LATEST
    finally:
        await db.close()
    assert tables(db_path) >= V1_TABLES
    assert version_rows(db_path) == [(LATEST,)]
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT text FROM notes").fetchall() == [("kept",)]
    conn.close()


V2 = (
    LATEST + 1,
    "lease notes",
    [
        "ALTER TABLE lease ADD COLUMN note TEXT NOT NULL DEFAULT 'migrated'",
        "CREATE TABLE v2_thing (id INTEGER PRIMARY KEY)",
    ],
)


async def test_older_database_is_migrated_on_open_preserving_rows(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_current(db_path)
    assert version_rows(db_path) == [(LATEST,)]

    monkeypatch.setattr(migrations, "MIGRATIONS", [*MIGRATIONS, V2])
    monkeypatch.setattr(migrations, "LATEST", V2[0])
    db = await Database.open(db_path)
    try:
        assert await current_version(db) == V2[0]
        holders = await LeaseStore(db, clock=lambda: 1001.0).holders()
        assert [(h.scope, h.owner, h.purpose, h.token) for h in holders] == [
            ("okx:main", "host:1:aa", "cli open", 1)
        ]
        async with db.read() as conn:
            cur = await conn.execute("SELECT note FROM lease")
            assert [tuple(r) for r in await cur.fetchall()] == [("migrated",)]
    finally:
        await db.close()
    assert "v2_thing" in tables(db_path)
    assert version_rows(db_path) == [(V2[0],)]


async def test_a_failing_migration_is_rolled_back_whole(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_current(db_path)
    broken = (LATEST + 1, "broken", ["CREATE TABLE half_done (id INTEGER)", "THIS IS NOT SQL"])
    monkeypatch.setattr(migrations, "MIGRATIONS", [*MIGRATIONS, broken])
    monkeypatch.setattr(migrations, "LATEST", broken[0])
    with pytest.raises(StorageError, match="not usable"):
        await Database.open(db_path)
    assert "half_done" not in tables(db_path)
    assert version_rows(db_path) == [(LATEST,)]


# --- newer databases ----------------------------------------------------------------------------


async def test_newer_database_is_refused(db_path: Path) -> None:
    await make_current(db_path)
    set_version(db_path, LATEST + 1)
    with pytest.raises(StorageError) as info:
        await Database.open(db_path)
    message = str(info.value)
    assert "newer" in message
    assert str(db_path) in message
    assert f"version {LATEST + 1}" in message
    assert version_rows(db_path) == [(LATEST + 1,)]  # untouched


async def test_newer_version_written_while_waiting_for_the_lock_is_refused(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # another (newer) Warden migrated between our version check and our write transaction
    await make_current(db_path)
    set_version(db_path, LATEST + 1)

    async def stale_read(db: Database) -> int:
        return 0

    monkeypatch.setattr(migrations, "current_version", stale_read)
    with pytest.raises(StorageError, match="newer"):
        await Database.open(db_path)
    assert version_rows(db_path) == [(LATEST + 1,)]


@pytest.mark.slow
def test_cli_refuses_a_newer_database(tmp_path: Path, db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (?)", (LATEST + 5,))
    conn.commit()
    conn.close()
    for argv in (("lock", "--json"), ("lock", "--hold", "5", "--exchange", "paper")):
        out = subprocess.run(
            warden_cmd(*argv),
            cwd=tmp_path,
            env=child_env(WARDEN_DB=str(db_path)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2, (argv, out.stdout, out.stderr)
        assert "newer than this Warden supports" in out.stderr
        assert out.stdout == ""
    assert version_rows(db_path) == [(LATEST + 5,)]
    assert tables(db_path) == {"schema_version"}  # nothing was created in it


@pytest.mark.slow
def test_doctor_reports_a_newer_database(tmp_path: Path, db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (?)", (LATEST + 1,))
    conn.commit()
    conn.close()
    out = subprocess.run(
        warden_cmd("doctor"),
        cwd=tmp_path,
        env=child_env(WARDEN_DB=str(db_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1, out.stderr
    assert "[fail] database" in out.stdout and "newer" in out.stdout


# --- unusable files -----------------------------------------------------------------------------


async def test_missing_folder_and_garbage_file(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        await Database.open(tmp_path / "no" / "such.db")
    assert not (tmp_path / "no").exists()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database file at all" * 100)
    with pytest.raises(StorageError, match="not usable"):
        await Database.open(garbage)


# --- several processes --------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from storage import migrations
    from storage.db import Database

    db_path, go, ready = sys.argv[1], sys.argv[2], sys.argv[3]
    version, name, statements = migrations.MIGRATIONS[0]
    # record each time the first migration's body really runs
    migrations.MIGRATIONS[0] = (version, name, [
        *statements,
        "CREATE TABLE IF NOT EXISTS applied (pid INTEGER NOT NULL)",
        f"INSERT INTO applied VALUES ({os.getpid()})",
    ])

    async def main():
        db = await Database.open(db_path)
        try:
            print(await migrations.current_version(db))
        finally:
            await db.close()

    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.002)
    asyncio.run(main())
    """
)


@pytest.mark.slow
def test_processes_opening_a_fresh_database_together(tmp_path: Path, db_path: Path) -> None:
    n = 4
    go = tmp_path / "go"
    env = child_env(PYTHONPATH=str(ROOT))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(db_path), str(go), str(tmp_path / f"ready{i}")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    try:
        # start them at once: wait until every child is loaded, then release them together
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready{i}").exists() for i in range(n)):
            assert time.monotonic() < deadline, "children did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.01)
        go.touch()
        results = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == str(LATEST)
    assert version_rows(db_path) == [(LATEST,)]
    conn = sqlite3.connect(db_path)
    try:
        applied = conn.execute("SELECT pid FROM applied").fetchall()
    finally:
        conn.close()
    assert len(applied) == 1  # one process applied the schema; the others found it done
    assert applied[0][0] in {p.pid for p in procs}


# --- connection settings ------------------------------------------------------------------------


async def test_pragmas(db: Database) -> None:
    async with db.read() as conn:
        values = {}
        for pragma in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous"):
            cur = await conn.execute(f"PRAGMA {pragma}")
            values[pragma] = (await cur.fetchone())[0]
    assert values["journal_mode"] == "wal"
    assert values["foreign_keys"] == 1
    assert values["busy_timeout"] == BUSY_TIMEOUT_MS > 0
    assert values["synchronous"] == 2  # FULL


async def test_wal_mode_persists_in_the_file(db: Database, db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_version_6_keeps_waiting_alerts_and_names_charts_after(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Version 6 (the chart an alert carries): an alert waiting in a version-5 outbox is kept,
    text only; an emergency close raised after the upgrade names its (scope, symbol)."""
    with monkeypatch.context() as m:
        m.setattr(migrations, "MIGRATIONS", MIGRATIONS[:5])
        m.setattr(migrations, "LATEST", 5)
        db = await Database.open(db_path)
        async with db.write() as conn:
            await conn.execute(
                "INSERT INTO alert_outbox(created_at, severity, key, text, next_attempt_at) "
                "VALUES (1.0, 'critical', 'incident:okx:main:BTC:emergency_close', 'old', 1.0)"
            )
        await db.close()
    db = await Database.open(db_path)
    try:
        assert await current_version(db) == LATEST >= 6
        await JournalStore(db).open_incident(
            "okx:main", "BTC/USDT:USDT", "emergency_close", Attribution.EXECUTION, "new"
        )
        due = await Outbox(db).due()
        assert (due[0].text, due[0].chart) == ("old", None)
        assert due[1].chart == ChartSubject("okx:main", "BTC/USDT:USDT")
    finally:
        await db.close()
