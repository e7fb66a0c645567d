"""Upgrades from every earlier schema version: a database written by an older Warden (only the
first k migrations applied, with representative rows in every table it had) is opened by the
current code, migrated to LATEST, and keeps every row, readable through today's repositories.

A new migration is covered without editing this file: the versions are read from MIGRATIONS, and
tables without hand-written rows get generated ones (checked column by column after migrating).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from storage import migrations
from storage.alert_ack_store import AlertAckStore
from storage.cycle_store import CycleStore
from storage.db import Database
from storage.journal_store import JournalStore
from storage.lease import LeaseStore
from storage.migrations import LATEST, MIGRATIONS, current_version
from storage.outbox import Outbox
from trading.journal import Attribution, IntentStatus, Severity

NOW = 1_800_000_000.0
SCOPE = "okx:main"
BTC = "BTC/USDT:USDT"

# rows an earlier Warden would have written, by the version whose migration created the table
ROWS: dict[int, list[tuple[str, dict[str, Any]]]] = {
    1: [
        (
            "lease",
            {
                "scope": SCOPE,
                "owner": "otherhost:1:aa",
                "purpose": "cli open",
                "token": 7,
                "acquired_at": NOW - 5,
                "heartbeat_at": NOW - 1,
                "expires_at": NOW + 3600,
            },
        ),
        (
            "lease_refusal",
            {
                "scope": SCOPE,
                "at": NOW - 10,
                "owner": "h:2:bb",
                "purpose": "scheduled cycle",
                "holder_owner": "otherhost:1:aa",
                "holder_purpose": "cli open",
                "holder_token": 7,
            },
        ),
        (
            "lease_event",
            {
                "scope": SCOPE,
                "at": NOW - 20,
                "kind": "takeover",
                "owner": "otherhost:1:aa",
                "purpose": "cli open",
                "token": 7,
                "detail": "from h:3:cc (expired)",
            },
        ),
    ],
    2: [
        ("meta", {"key": "instance", "value": "abc123"}),
        ("pause", {"scope": SCOPE, "paused": 1, "reason": "manual pause", "at": NOW - 30}),
        (
            "intent",
            {
                "scope": SCOPE,
                "kind": "entry",
                "symbol": BTC,
                "side": "buy",
                "size": 0.00095,
                "stop_price": 65586.3,
                "client_id": "wdabc123e1",
                "status": "unknown",
                "purpose": "cli open",
                "lease_token": 7,
                "created_at": NOW - 40,
                "updated_at": NOW - 39,
            },
        ),
        (
            "refusal",
            {
                "scope": SCOPE,
                "symbol": BTC,
                "action": "open",
                "reason": "position exists",
                "purpose": "cli open",
                "at": NOW - 35,
            },
        ),
        (
            "stop_placement",
            {
                "scope": SCOPE,
                "symbol": BTC,
                "position_side": "long",
                "client_id": "wdabc123s1",
                "exchange_id": "algo-1",
                "size": 0.00095,
                "trigger_price": 65586.3,
                "status": "verified",
                "api_answer": '{"code": "0"}',
                "exchange_state": "live",
                "lease_token": 7,
                "placed_at": NOW - 38,
                "checked_at": NOW - 36,
                "verified_at": NOW - 36,
            },
        ),
        (
            "exit",
            {
                "scope": SCOPE,
                "symbol": BTC,
                "side": "long",
                "size": 0.00095,
                "entry_price": 69060.0,
                "exit_price": 65586.3,
                "reason": "stop",
                "fee": 0.07,
                "pnl": -3.37,
                "at": NOW - 25,
            },
        ),
        (
            "incident",
            {
                "scope": SCOPE,
                "symbol": BTC,
                "kind": "stop_placement_failed",
                "attribution": "execution",
                "cost": 0.0,
                "detail": "acknowledged, then failed (failCode 1000)",
                "opened_at": NOW - 37,
            },
        ),
        (
            "alert_outbox",
            {
                "created_at": NOW - 37,
                "severity": "critical",
                "key": f"incident:{SCOPE}:{BTC}",
                "text": "stop placement failed",
                "next_attempt_at": NOW - 37,
            },
        ),
    ],
    3: [
        ("paper_account", {"exchange": "paper", "cash": 9990.5, "next_id": 4, "created_at": NOW}),
        ("paper_market", {"exchange": "paper", "symbol": BTC, "last": 69060.0, "updated_at": NOW}),
        (
            "paper_position",
            {
                "exchange": "paper",
                "symbol": BTC,
                "side": "long",
                "size": 0.00095,
                "entry_price": 69060.0,
            },
        ),
    ],
    4: [
        (
            "cycle",
            {
                "strategy": "btc_momentum",
                "scope": "paper:main",
                "trigger": "scheduled",
                "started_at": NOW - 60,
                "ended_at": NOW - 59,
                "outcome": "hold",
                "decisions": "BTC: hold (warming up)",
            },
        )
    ],
    5: [
        ("alert_delivery", {"alert_id": 1, "chat_id": 42, "round": 0, "sent_at": NOW - 36}),
    ],
}


async def _create_db(path: Path, k: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database an older Warden (knowing migrations 1..k) would have made, via the same
    code path: Database.open with only the first k migrations."""
    with monkeypatch.context() as m:
        m.setattr(migrations, "MIGRATIONS", MIGRATIONS[:k])
        m.setattr(migrations, "LATEST", MIGRATIONS[k - 1][0])
        db = await Database.open(path)
        try:
            assert await current_version(db) == MIGRATIONS[k - 1][0]
        finally:
            await db.close()


def _columns(conn: sqlite3.Connection, table: str) -> list[tuple[str, str, bool, bool]]:
    """(name, declared type, not null, has a default or is the rowid key) per column."""
    cols = []
    for _cid, name, decl, notnull, default, pk in conn.execute(f"PRAGMA table_info({table})"):
        auto = pk == 1 and decl.upper() == "INTEGER"
        cols.append((name, decl.upper(), bool(notnull), default is not None or auto))
    return cols


def _generated(conn: sqlite3.Connection, table: str, n: int) -> dict[str, Any]:
    """A row for a table without hand-written rows: every column filled, unique per n."""
    row: dict[str, Any] = {}
    for name, decl, _notnull, auto in _columns(conn, table):
        if auto and decl == "INTEGER" and name == "id":
            continue
        if "INT" in decl:
            row[name] = n
        elif "REAL" in decl:
            row[name] = NOW + n / 10
        else:
            row[name] = f"{table}.{name}.{n}"
    return row


def _tables(conn: sqlite3.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
            "AND name != 'schema_version' ORDER BY name"
        )
    ]


def _fill(path: Path, k: int) -> dict[str, list[dict[str, Any]]]:
    """Insert the rows of versions 1..k; returns every table's rows as written."""
    conn = sqlite3.connect(path)
    written: dict[str, list[dict[str, Any]]] = {}
    for version in range(1, k + 1):
        for table, _row in ROWS.get(version, []):
            written.setdefault(table, [])
    for table in _tables(conn):
        if table not in written:
            written[table] = [_generated(conn, table, n) for n in (1, 2)]
    for version in range(1, k + 1):
        for table, row in ROWS.get(version, []):
            written[table].append(row)
    for table, rows in written.items():
        for row in rows:
            cols = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            conn.execute(f"INSERT INTO {table}({cols}) VALUES ({marks})", tuple(row.values()))
    conn.commit()
    conn.close()
    return written


def _dump(path: Path, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        cols = ", ".join(columns)
        return [tuple(r) for r in conn.execute(f"SELECT {cols} FROM {table} ORDER BY rowid")]
    finally:
        conn.close()


def _schema(path: Path) -> set[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        return {
            (name, " ".join((sql or "").split()))
            for name, sql in conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            )
        }
    finally:
        conn.close()


def test_rows_are_written_for_every_shipped_version() -> None:
    # a version whose tables get only generated rows is still covered; this keeps the
    # hand-written ones honest about the versions they claim
    assert set(ROWS) <= {v for v, _n, _s in MIGRATIONS}
    assert [v for v, _n, _s in MIGRATIONS] == list(range(1, LATEST + 1))


@pytest.mark.parametrize("k", range(1, LATEST))
async def test_upgrade_from_every_earlier_version(
    tmp_path: Path, k: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    await _create_db(path, k, monkeypatch)
    written = _fill(path, k)
    before = {
        table: (cols := list(rows[0]), _dump(path, table, cols)) for table, rows in written.items()
    }

    db = await Database.open(path)  # the current code: migrates on open
    try:
        assert await current_version(db) == LATEST
        await _read_through_repositories(db, k)
        await _still_writable(db)
    finally:
        await db.close()

    # every row of every table the old database had, column by column (generated ones too)
    for table, (cols, rows) in before.items():
        assert _dump(path, table, cols)[: len(rows)] == rows, table

    fresh = tmp_path / "fresh.db"
    db = await Database.open(fresh)
    await db.close()
    assert _schema(path) == _schema(fresh)  # migrated from k == created at LATEST


async def _read_through_repositories(db: Database, k: int) -> None:
    holders = await LeaseStore(db, clock=lambda: NOW).holders()
    assert [(h.scope, h.owner, h.token) for h in holders] == [(SCOPE, "otherhost:1:aa", 7)]
    refusals = await LeaseStore(db).refusals()
    assert [(r.scope, r.holder_token) for r in refusals] == [(SCOPE, 7)]
    if k < 2:
        return
    journal = JournalStore(db, clock=lambda: NOW)
    assert await journal.instance_id() == "abc123"  # client ids keep their prefix
    assert await journal.is_paused(SCOPE)
    unresolved = await journal.unresolved_intents(SCOPE)
    assert [(i.client_id, i.status) for i in unresolved] == [("wdabc123e1", IntentStatus.UNKNOWN)]
    stops = await journal.stops_for(SCOPE, BTC)
    assert [(s.client_id, s.exchange_id, s.verified_at) for s in stops] == [
        ("wdabc123s1", "algo-1", NOW - 36)
    ]
    assert [i.kind for i in await journal.incidents(SCOPE)] == ["stop_placement_failed"]
    assert [e.pnl for e in await journal.exits(SCOPE)] == [-3.37]
    due = await Outbox(db, clock=lambda: NOW).due()
    assert [a.text for a in due] == ["stop placement failed"]
    assert [a.chart for a in due] == [None]  # written before alerts named a chart: text only
    if k >= 4:
        cycles = await CycleStore(db).recent("btc_momentum")
        assert [(c.trigger, c.outcome) for c in cycles] == [("scheduled", "hold")]
    if k >= 5:
        assert await AlertAckStore(db).sent_to(1, 0) == {42}


async def _still_writable(db: Database) -> None:
    """The upgraded database takes the writes of today's code (tables added by the upgrade)."""
    await JournalStore(db).alert(Severity.INFO, "upgraded", "upgrade-test")
    # version 6: an emergency close's alert names the chart it carries
    journal = JournalStore(db)
    await journal.open_incident(SCOPE, BTC, "emergency_close", Attribution.EXECUTION, "upgraded")
    due = await Outbox(db, clock=lambda: NOW + 86_400).due()  # past every row's retry time
    assert [(a.chart.scope, a.chart.symbol) for a in due if a.chart] == [(SCOPE, BTC)]
    await CycleStore(db).record("s", "paper:main", "manual", NOW, "hold")
    await AlertAckStore(db).record_sent(1, 7, 0, 99)
