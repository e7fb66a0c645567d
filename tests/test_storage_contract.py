"""Every repository, the same contract on both backends: the SQLite file and PostgreSQL.

Each test runs twice (``[sqlite]`` and ``[postgresql]``) against a real database: the SQLite file
Warden creates by default, and a fresh database on the throwaway PostgreSQL cluster the test
session starts (tests/pg_cluster.py). The lease itself is covered the same way by
tests/test_lease.py and the paper exchange by tests/test_paper_exchange.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.config import ConfigError, load_config, load_secrets
from bot.logs import Redactor
from storage.agent_lease import AgentFence, AgentLeaseStore
from storage.alert_ack_store import AlertAckStore
from storage.cycle_store import CycleStore
from storage.daemon_beacon import ACTIVE, Beacon, BeaconStore, last_agent_cycles
from storage.db import Database
from storage.errors import StorageBusy, StorageError, StorageUnavailable
from storage.held_lease import LeaseManager
from storage.journal_store import JournalStore
from storage.lease import HOST, Acquired, Busy, LeaseStore, new_owner
from storage.migrations import LATEST, current_version
from storage.outbox import Outbox
from storage.pg import PgDatabase
from tests.conftest import BACKENDS, ROOT, backend_target, child_env, warden_cmd
from tests.pg_cluster import ClusterUnavailable, running_cluster
from trading.journal import Attribution, IntentKind, IntentStatus, Severity, StopStatus
from trading.lease import LeaseLost
from trading.models import OrderSide, PositionSide, StopState

SCOPE = "paper:main"
BTC = "BTC/USDT:USDT"


@pytest.fixture(params=BACKENDS)
def db_path(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    return backend_target(request, tmp_path)


@pytest.fixture
async def other_db(db_path: str | Path) -> AsyncIterator[Database]:
    """A second connection to the same store, as another process has."""
    other = await Database.open(db_path)
    try:
        yield other
    finally:
        await other.close()


# --- schema --------------------------------------------------------------------------------


async def test_schema_is_at_latest_and_a_newer_one_is_refused(
    db: Database, db_path: str | Path
) -> None:
    assert await current_version(db) == LATEST
    async with db.write() as conn:
        await conn.execute("UPDATE schema_version SET version = ?", (LATEST + 1,))
    with pytest.raises(StorageError, match=f"schema version {LATEST + 1}, newer than"):
        await Database.open(db_path)


@pytest.fixture(params=BACKENDS)
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """A store with no schema yet: a new SQLite file, an empty PostgreSQL database."""
    return backend_target(request, tmp_path, empty=True)


async def test_two_openers_at_once_create_the_schema_once(new_store: str | Path) -> None:
    dbs = await asyncio.gather(*(Database.open(new_store) for _ in range(3)))
    try:
        for d in dbs:
            assert await current_version(d) == LATEST
        async with dbs[0].read() as conn:
            cur = await conn.execute("SELECT COUNT(*) FROM schema_version")
            assert (await cur.fetchone())[0] == 1
    finally:
        for d in dbs:
            await d.close()


async def test_driver_errors_leave_storage_typed(db: Database) -> None:
    with pytest.raises(StorageError):
        async with db.write() as conn:
            await conn.execute("INSERT INTO no_such_table(x) VALUES (?)", (1,))
    # the transaction was rolled back and the connection is usable again
    async with db.write() as conn:
        await conn.execute("INSERT INTO meta(key, value) VALUES (?, ?)", ("k", "v"))
    async with db.read() as conn:
        cur = await conn.execute("SELECT value FROM meta WHERE key = ?", ("k",))
        assert (await cur.fetchone())["value"] == "v"


async def test_a_rolled_back_write_leaves_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.write() as conn:
            await conn.execute("INSERT INTO meta(key, value) VALUES ('gone', 'x')")
            raise RuntimeError("after the insert")
    async with db.read() as conn:
        cur = await conn.execute("SELECT COUNT(*) FROM meta WHERE key = 'gone'")
        assert (await cur.fetchone())[0] == 0


async def test_writers_of_two_connections_never_interleave(
    db: Database, other_db: Database
) -> None:
    """Read-then-write increments from two connections: with writers serialised (BEGIN
    IMMEDIATE; the advisory lock) none is lost."""
    async with db.write() as conn:
        await conn.execute("INSERT INTO meta(key, value) VALUES ('n', '0')")

    async def bump(d: Database, times: int) -> None:
        for _ in range(times):
            async with d.write() as conn:
                cur = await conn.execute("SELECT value FROM meta WHERE key = 'n'")
                n = int((await cur.fetchone())[0])
                await asyncio.sleep(0)
                await conn.execute("UPDATE meta SET value = ? WHERE key = 'n'", (str(n + 1),))

    await asyncio.gather(bump(db, 25), bump(other_db, 25))
    async with db.read() as conn:
        cur = await conn.execute("SELECT value FROM meta WHERE key = 'n'")
        assert (await cur.fetchone())[0] == "50"


# --- journal -------------------------------------------------------------------------------


async def test_journal_intents_stops_and_fencing(db: Database) -> None:
    journal = JournalStore(db)
    inst = await journal.instance_id()
    assert inst == await JournalStore(db).instance_id()  # one id per database
    manager = LeaseManager(LeaseStore(db), ttl=30, heartbeat=10)
    async with manager.hold(SCOPE, "test") as lease:
        intent = await journal.create_intent(
            lease, IntentKind.ENTRY, BTC, OrderSide.BUY, 0.01, 60_000.0, "strategy a"
        )
        assert intent.client_id == f"wd{inst}e{intent.id}"
        assert intent.status is IntentStatus.PENDING
        assert [i.id for i in await journal.unresolved_intents(SCOPE)] == [intent.id]
        await journal.finish_intent(
            intent.id, IntentStatus.FILLED, order_id="o1", filled=0.01, price=65_000.0, fee=0.3
        )
        assert await journal.unresolved_intents(SCOPE) == []
        [got] = await journal.intents(SCOPE)
        assert (got.status, got.filled, got.price) == (IntentStatus.FILLED, 0.01, 65_000.0)
        assert [i.id for i in await journal.intents()] == [intent.id]
        assert (await journal.last_entry(SCOPE, BTC)) == got
        assert await journal.position_owner(SCOPE, BTC) == "strategy a"
        assert await journal.desired_stop_price(SCOPE, BTC) == 60_000.0

        stop = await journal.create_stop(lease, BTC, PositionSide.LONG, 0.01, 60_000.0)
        assert stop.client_id == f"wd{inst}s{stop.id}"
        await journal.update_stop(
            stop.id,
            StopStatus.VERIFIED,
            exchange_id="x1",
            api_answer="{}",
            exchange_state=StopState.LIVE,
            verified=True,
        )
        [verified] = await journal.verified_stops(SCOPE)
        assert (verified.exchange_id, verified.exchange_state) == ("x1", StopState.LIVE)
        assert verified.verified_at is not None
        assert await journal.stop_checked_at(SCOPE, BTC) == verified.verified_at
        await journal.mark_stop_seen_live(SCOPE, BTC, "x1")
        await journal.mark_stop_canceled(SCOPE, BTC, "x1")
        [canceled] = await journal.stops_for(SCOPE, BTC)
        assert canceled.status is StopStatus.CANCELED
        assert await journal.verified_stops(SCOPE) == []
        await lease.release()
        # fenced: a lease no longer held cannot record a new intent or stop
        with pytest.raises(LeaseLost):
            await journal.create_intent(
                lease, IntentKind.CLOSE, BTC, OrderSide.SELL, 0.01, None, "late"
            )
        with pytest.raises(LeaseLost):
            await journal.create_stop(lease, BTC, PositionSide.LONG, 0.01, 59_000.0)
    assert len(await journal.intents(SCOPE)) == 1

    await journal.record_exit(
        SCOPE, BTC, PositionSide.LONG, 0.01, 65_000.0, 66_000.0, "signal", 0.5
    )
    [exit_] = await journal.exits(SCOPE)
    assert exit_.pnl == pytest.approx(10.0 - 0.5)
    assert await journal.position_owner(SCOPE, BTC) is None  # closed since
    assert await journal.desired_stop_price(SCOPE, BTC) is None


async def test_journal_pause_refusals_incidents_and_alerts(db: Database) -> None:
    journal = JournalStore(db)
    assert not await journal.is_paused(SCOPE)
    await journal.set_paused("*", True, "everything")
    await journal.set_paused(SCOPE, True, "this one")
    assert await journal.is_paused(SCOPE)
    assert await journal.pause_reason(SCOPE) == "this one"
    await journal.set_paused(SCOPE, False)
    assert await journal.pause_reason(SCOPE) == "everything"
    await journal.set_paused("*", False)
    assert await journal.pause_reason(SCOPE) is None

    await journal.record_refusal(SCOPE, BTC, "open", "too big", "manual")
    [refusal] = await journal.refusals()
    assert (refusal.action, refusal.reason) == ("open", "too big")

    incident_id = await journal.open_incident(
        SCOPE, BTC, "unprotected_position", Attribution.EXECUTION, "no stop", cost=1.5
    )
    [incident] = await journal.incidents(SCOPE)
    assert (incident.id, incident.resolved_at, incident.cost) == (incident_id, None, 1.5)
    assert await journal.resolve_incidents(SCOPE, BTC, "stop placed") == 1
    assert await journal.resolve_incidents(SCOPE, BTC, "again") == 0
    assert (await journal.incidents())[0].resolved_at is not None

    assert await journal.alert(Severity.WARNING, "once", key="k", repeat_after=60)
    assert not await journal.alert(Severity.WARNING, "suppressed", key="k", repeat_after=60)
    outbox = Outbox(db)
    texts = [a.text for a in await outbox.due()]
    assert texts[0].startswith("unprotected_position paper:main BTC/USDT:USDT: no stop")
    assert texts[1:] == ["resolved paper:main BTC/USDT:USDT: stop placed", "once"]
    first = (await outbox.due())[0]
    assert first.chart is not None and first.chart.symbol == BTC  # drawn at delivery


# --- outbox and acknowledgements ------------------------------------------------------------


async def test_outbox_delivery_order_retry_and_acks(db: Database) -> None:
    journal = JournalStore(db)
    outbox = Outbox(db, clock=lambda: 2e9)
    await journal.alert(Severity.CRITICAL, "first", key="a")
    await journal.alert(Severity.INFO, "second", key="b")
    assert await outbox.undelivered_count() == 2
    first, second = await outbox.due()
    await outbox.failed(first.id, "telegram 500", retry_in=30)
    assert await outbox.due() == []  # nothing overtakes an alert waiting to be retried
    assert [a.attempts for a in await Outbox(db, clock=lambda: 2e9 + 31).due()] == [1, 0]
    await outbox.delivered(first.id)
    await outbox.delivered(second.id)
    assert await outbox.undelivered_count() == 0

    acks = AlertAckStore(db, clock=lambda: 2e9 + 40)
    await acks.record_sent(first.id, -1001234567890, 0, 11)  # a supergroup id: 64-bit
    await acks.record_sent(first.id, -1001234567890, 0, 12)  # the same round again: replaced
    assert await acks.sent_to(first.id, 0) == {-1001234567890}
    later = AlertAckStore(db, clock=lambda: 2e9 + 400)
    [repeat] = await later.repeats_due(300, [-1001234567890, 42])
    assert (repeat.alert_id, repeat.round, repeat.missing) == (first.id, 1, (-1001234567890, 42))
    assert await acks.acknowledge(first.id, 7)
    assert not await acks.acknowledge(first.id, 8)  # already acknowledged
    assert not await acks.acknowledge(999_999, 7)  # unknown alert
    assert await later.repeats_due(300, [-1001234567890]) == []


async def test_superseded_alert_is_closed_by_nobody(db: Database) -> None:
    journal = JournalStore(db)
    outbox = Outbox(db)
    acks = AlertAckStore(db)
    await journal.alert(Severity.CRITICAL, "down", key="reconcile:paper")
    [alert] = await outbox.due()
    await outbox.delivered(alert.id)
    await acks.record_sent(alert.id, 5, 0, 1)
    await journal.alert(Severity.INFO, "back", key="reconciled:paper")
    assert await AlertAckStore(db, clock=lambda: 4e9).repeats_due(1, [5]) == []
    assert not await acks.acknowledge(alert.id, 7)  # acknowledged by nobody (user 0)


# --- cycles, beacons, agent lease -----------------------------------------------------------


async def test_cycle_records(db: Database) -> None:
    cycles = CycleStore(db, clock=lambda: 1_000.5)
    first = await cycles.record("breakout", SCOPE, "scheduled", 1_000.0, "ok", "hold")
    second = await cycles.record("breakout", SCOPE, "manual", 1_000.2, "error", error="boom")
    assert second > first
    last = await cycles.last("breakout")
    assert last is not None and (last.id, last.error, last.ended_at) == (second, "boom", 1_000.5)
    assert [c.id for c in await cycles.recent()] == [second, first]
    assert await cycles.counts("breakout") == {"ok": 1, "error": 1}
    assert await last_agent_cycles(db, 0.0) == {SCOPE: 1_000.5}  # manual ones do not count


async def test_agent_lease_fences_the_beacon(db: Database, other_db: Database) -> None:
    agents = AgentLeaseStore(LeaseStore(db))
    owner = "other-host:4242:cafe0001"  # an agent on another host: never pruned by pid
    claimed = await agents.claim(owner, 30, record_refusal=False)
    assert isinstance(claimed, Acquired)
    fence = AgentFence(owner, claimed.holder.token)
    assert await agents.holds(fence)
    assert await agents.free_reason_now(claimed.holder) is None
    rival = await AgentLeaseStore(LeaseStore(other_db)).claim(new_owner(), 30, record_refusal=True)
    assert isinstance(rival, Busy)
    assert await agents.extend(fence, 30) is not None

    beacons = BeaconStore(db)
    now = time.time()
    beacon = Beacon(owner, now, now, 5.0, (SCOPE,), {SCOPE: now}, ACTIVE)
    assert await beacons.beat(beacon, fence)
    assert [b.owner for b in await BeaconStore(other_db).all()] == [owner]
    # a stale fence (another token) writes nothing
    assert not await beacons.beat(Beacon(owner, 1.0, 3.0, 5.0, ()), AgentFence(owner, 999))
    assert (await beacons.all())[0].beat_at == now
    gone = Beacon(f"{HOST}:{2**22 + 17}:dead", now, now, 5.0, ())
    await beacons.beat(gone)
    assert await beacons.prune(is_alive=lambda pid: pid != 2**22 + 17) == 1
    await beacons.remove(owner)
    assert await beacons.all() == []
    assert await agents.release(fence)
    assert await agents.holder() is None


async def test_lease_expiry_is_judged_by_the_database_clock(db: Database) -> None:
    """No clock injected: expiry is the database's (the server's clock_timestamp() on
    PostgreSQL). A 0.2 s lease is busy at once and free after it expired."""
    store = LeaseStore(db, is_alive=lambda pid: True)
    first = await store.try_acquire(SCOPE, new_owner(), "a", 0.2)
    assert isinstance(first, Acquired)
    assert isinstance(await store.try_acquire(SCOPE, new_owner(), "b", 30), Busy)
    now = await store.now()
    while await store.now() < first.holder.expires_at:
        await asyncio.sleep(0.05)
    assert await store.now() >= now
    taken = await store.try_acquire(SCOPE, new_owner(), "b", 30)
    assert isinstance(taken, Acquired) and taken.took_over is not None
    assert taken.takeover_reason == "expired"
    assert not await store.is_current(SCOPE, first.holder.owner, first.holder.token)


@pytest.mark.slow
async def test_fenced_write_of_a_process_that_lost_its_lease_is_refused(
    db_path: str | Path, db: Database
) -> None:
    """A real second process takes the lease over (ours expired); our next fenced write fails
    inside its own transaction."""
    journal = JournalStore(db)
    manager = LeaseManager(LeaseStore(db), ttl=0.3, heartbeat=60)
    lease = await manager.acquire(SCOPE, "old holder")
    code = (
        "import asyncio, sys\n"
        "from storage.db import Database\n"
        "from storage.lease import LeaseStore, new_owner, Acquired\n"
        "async def main():\n"
        "    db = await Database.open(sys.argv[1])\n"
        "    store = LeaseStore(db)\n"
        "    while True:\n"
        "        got = await store.try_acquire('paper:main', new_owner(), 'new', 30)\n"
        "        if isinstance(got, Acquired):\n"
        "            print(got.holder.token); break\n"
        "        await asyncio.sleep(0.05)\n"
        "    await db.close()\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(db_path)],
        env=child_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert int(out.stdout) == lease.token + 1
    with pytest.raises(LeaseLost):
        await journal.create_intent(
            lease, IntentKind.ENTRY, BTC, OrderSide.BUY, 0.01, None, "stale"
        )
    with pytest.raises(LeaseLost):
        await lease.ensure()
    await lease.release()
    assert await journal.intents() == []


# --- the real CLI on PostgreSQL -------------------------------------------------------------


def _warden(cwd: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        warden_cmd(*args),
        cwd=cwd,
        env=child_env(**env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_processes_open_at_once_on_postgresql_one_position(pg_url: str, tmp_path: Path) -> None:
    """`warden open` on paper from two processes at once, the store in PostgreSQL through
    ``[storage] url``: one opens (with its verified stop), the other is refused busy (75), and
    `warden status --json` in a third process shows exactly the one position."""
    config = tmp_path / "warden.toml"
    config.write_text(f'[storage]\nurl = "{pg_url}"\n')
    args = ["--config", str(config), "open", BTC, "long", "--size", "0.001"]
    args += ["--stop", "65000", "--yes", "--json"]
    procs = [_warden(tmp_path, *args) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes in ([0, 75], [0, 0]), [
        (p.returncode, err[-1500:]) for p, (_, err) in zip(procs, outs, strict=True)
    ]
    status = _warden(tmp_path, "--config", str(config), "status", "--json")
    out, err = status.communicate(timeout=120)
    assert status.returncode == 0, err
    doc = json.loads(out)
    assert doc["database"] == pg_url  # no password in it: shown as it is
    [position] = doc["positions"]
    assert (position["symbol"], position["size"]) == (BTC, 0.001)
    assert position["stop"]["state"] == "live"
    assert not (tmp_path / "warden.db").exists()  # nothing went to an SQLite file


@pytest.mark.slow
def test_database_url_secret_is_masked_and_backup_names_pg_dump(
    pg_url: str, tmp_path: Path
) -> None:
    """$WARDEN_DATABASE_URL with a password: shown masked in --json, never printed whole;
    `warden backup` refuses (exit 2) and names the operator's tool; `warden doctor` reports
    the server and the schema; `warden health` reads the database (no agent: not healthy)."""
    password = "s3cret-Pw-1234"
    scheme, rest = pg_url.split("://", 1)
    user, hostpath = rest.split("@", 1)
    secret_url = f"{scheme}://{user}:{password}@{hostpath}"  # trust auth: accepted as given
    env = {"WARDEN_DATABASE_URL": secret_url}
    status = _warden(tmp_path, "status", "--json", **env)
    out, err = status.communicate(timeout=120)
    assert status.returncode == 0, err
    assert json.loads(out)["database"] == f"{scheme}://{user}:***@{hostpath}"
    doctor = _warden(tmp_path, "doctor", "--json", **env)
    dout, derr = doctor.communicate(timeout=120)
    [check] = [c for c in json.loads(dout)["checks"] if c["name"] == "database"]
    assert check["status"] == "ok" and f"schema {LATEST}" in check["detail"], check
    assert "PostgreSQL 1" in check["detail"]
    health = _warden(tmp_path, "health", "--json", **env)
    hout, herr = health.communicate(timeout=120)
    assert health.returncode == 1, herr  # reachable, but no agent runs on it
    assert "no agent running" in json.loads(hout)["detail"]
    backup = _warden(tmp_path, "backup", str(tmp_path), **env)
    bout, berr = backup.communicate(timeout=120)
    assert backup.returncode == 2, berr
    assert "pg_dump" in berr and "pg_restore" in berr
    for text in (out, err, dout, derr, hout, herr, bout, berr):
        assert password not in text


# --- configuration --------------------------------------------------------------------------


def test_url_config_is_validated_without_echoing_it(tmp_path: Path) -> None:
    config = tmp_path / "warden.toml"
    config.write_text('[storage]\nurl = "postgresql://u:hunter2pw@h/db"\npath = "./other.db"\n')
    with pytest.raises(ConfigError, match="url and path are mutually exclusive") as both:
        load_config(config)
    config.write_text('[storage]\nurl = "mysql://u:hunter2pw@h/db"\n')
    with pytest.raises(ConfigError, match="must be a postgresql:// URL") as scheme:
        load_config(config)
    for exc in (both.value, scheme.value):
        assert "hunter2pw" not in str(exc)
    with pytest.raises(ConfigError, match=r"WARDEN_DATABASE_URL .*not a postgresql:// URL") as env:
        load_secrets(environ={"WARDEN_DATABASE_URL": "sqlite:///hunter2pw"})
    assert "hunter2pw" not in str(env.value)
    secrets = load_secrets(environ={"WARDEN_DATABASE_URL": "postgresql://u:hunter2pw@h/db"})
    # the whole URL and the password alone are both redacted
    assert set(secrets.secret_strings()) == {"postgresql://u:hunter2pw@h/db", "hunter2pw"}


@pytest.mark.slow
def test_warden_db_together_with_a_url_is_a_config_error(tmp_path: Path) -> None:
    proc = _warden(
        tmp_path,
        "status",
        WARDEN_DB=str(tmp_path / "x.db"),
        WARDEN_DATABASE_URL="postgresql://u:hunter2pw@127.0.0.1:1/db",
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "$WARDEN_DB names an SQLite file while a PostgreSQL database is configured" in err
    assert "hunter2pw" not in out + err


@pytest.mark.slow
def test_unreachable_server_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    """Nothing listens on port 1: status fails naming the masked URL, doctor's check fails."""
    env = {"WARDEN_DATABASE_URL": "postgresql://u:hunter2pw@127.0.0.1:1/db"}
    status = _warden(tmp_path, "status", **env)
    out, err = status.communicate(timeout=120)
    assert status.returncode != 0
    assert "postgresql://u:***@127.0.0.1:1/db" in err and "cannot connect" in err, err
    doctor = _warden(tmp_path, "doctor", "--json", **env)
    dout, derr = doctor.communicate(timeout=120)
    assert doctor.returncode == 1
    [check] = [c for c in json.loads(dout)["checks"] if c["name"] == "database"]
    assert check["status"] == "fail"
    assert "hunter2pw" not in out + err + dout + derr


async def test_a_killed_connection_fails_one_transaction_then_reconnects(pg_url: str) -> None:
    """PostgreSQL only: the server ends our connection (pg_terminate_backend, what a partition
    or a server restart looks like). The transaction in flight fails as StorageUnavailable, the
    next one connects again; nothing half-written remains."""
    db = await Database.open(pg_url)
    admin = await Database.open(pg_url)
    try:
        async with db.read() as conn:
            cur = await conn.execute("SELECT pg_backend_pid()")
            pid = int((await cur.fetchone())[0])
        with pytest.raises(StorageUnavailable):
            async with db.write() as conn:
                await conn.execute("INSERT INTO meta(key, value) VALUES ('half', 'x')")
                async with admin.read() as other:  # a write would wait for ours
                    await other.execute("SELECT pg_terminate_backend(?)", (pid,))
                await conn.execute("INSERT INTO meta(key, value) VALUES ('half2', 'x')")
        async with db.write() as conn:
            await conn.execute("INSERT INTO meta(key, value) VALUES ('after', 'x')")
        async with admin.read() as conn:
            cur = await conn.execute("SELECT key FROM meta WHERE key IN ('half', 'after')")
            assert [r[0] for r in await cur.fetchall()] == ["after"]
    finally:
        await db.close()
        await admin.close()


def test_log_redaction_masks_any_postgres_url_password() -> None:
    """Configured secrets are masked whole; any other PostgreSQL URL in a log line (quoted by a
    driver or a library) loses its password."""
    redact = Redactor(["postgresql://u:hunter2pw@h/db", "hunter2pw"])
    assert redact("cannot open postgresql://u:hunter2pw@h/db") == "cannot open ***"
    assert redact("password hunter2pw") == "password ***"
    assert Redactor()("via postgres://warden:0ther-pw@db:5432/w") == (
        "via postgres://warden:***@db:5432/w"
    )


def test_missing_server_binaries_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What the PostgreSQL tests fail with on CI (skip locally) when no server is installed."""
    monkeypatch.setenv("PG_BINDIR", str(tmp_path))  # no initdb in it
    cluster = running_cluster()
    with pytest.raises(ClusterUnavailable, match="PostgreSQL server binaries not found"):
        cluster.__enter__()


async def test_postgres_writer_waits_then_is_busy_and_a_cancelled_one_leaves_no_trace(
    pg_url: str,
) -> None:
    """PostgreSQL only. A writer waits for another process's write transaction (the advisory
    lock) and gives up after its lock timeout with StorageBusy; a writer cancelled while it
    waits leaves its connection usable and writes nothing."""
    holder = await Database.open(pg_url)
    waiter = await Database.open(pg_url)
    assert isinstance(waiter, PgDatabase)
    waiter.lock_timeout = 0.3
    release = asyncio.Event()
    inside = asyncio.Event()

    async def hold() -> None:
        async with holder.write() as conn:
            await conn.execute("INSERT INTO meta(key, value) VALUES ('held', 'x')")
            inside.set()
            await release.wait()

    try:
        task = asyncio.create_task(hold())
        await inside.wait()
        with pytest.raises(StorageBusy):
            async with waiter.write() as conn:
                await conn.execute("INSERT INTO meta(key, value) VALUES ('late', 'x')")
        waiter.lock_timeout = 60.0
        blocked = asyncio.create_task(waiter.write().__aenter__())
        await asyncio.sleep(0.2)  # it is waiting for the lock now (or about to)
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
        release.set()
        await task
        async with waiter.write() as conn:
            await conn.execute("INSERT INTO meta(key, value) VALUES ('after', 'x')")
        async with waiter.read() as conn:
            cur = await conn.execute("SELECT key FROM meta WHERE key IN ('held', 'late', 'after')")
            assert sorted(r[0] for r in await cur.fetchall()) == ["after", "held"]
    finally:
        release.set()
        await holder.close()
        await waiter.close()
