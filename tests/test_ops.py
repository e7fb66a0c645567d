"""Operating Warden for months: backup/restore, init, the configuration reference, log rotation
and the health check (the deployment files are in tests/test_ops_deploy.py).

CLI behaviour runs the real `warden` in child processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pty
import re
import select
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.beacon import DaemonBeacon
from bot.commands.health import default_max_age
from bot.commands.init import KINDS
from bot.config import load_config, load_secrets
from bot.config.reference import all_fields, markdown, tables
from bot.config.schema import HyperliquidExchangeConfig, OkxExchangeConfig, PaperExchangeConfig
from bot.config.template import config_template
from bot.logs import MASK, setup_logging
from storage.daemon_beacon import Beacon, BeaconStore
from storage.db import Database
from storage.lease import HOST
from storage.migrations import LATEST, MIGRATIONS
from tests.conftest import ROOT, child_env, warden_cmd
from tests.rig_ops import warden

SECRET = "okx-secret-7f3a9c2e5b1d"


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return [tuple(r) for r in conn.execute(sql)]
    finally:
        conn.close()


async def make_db(path: Path, events: int = 0) -> None:
    db = await Database.open(path)
    try:
        async with db.write() as conn:
            for n in range(1, events + 1):
                await conn.execute(
                    "INSERT INTO lease_event(scope, at, kind, owner, purpose, token) "
                    "VALUES ('t', ?, 'test', 'o', 'p', ?)",
                    (n, n),
                )
            await conn.execute("INSERT INTO meta(key, value) VALUES ('instance', 'aaaaaa')")
    finally:
        await db.close()


def tokens(path: Path) -> list[int]:
    return [r[0] for r in rows(path, "SELECT token FROM lease_event ORDER BY id")]


# --- backup --------------------------------------------------------------------------------------

WRITER = r"""
import asyncio, os, sys
from storage.db import Database

async def main(path, stop):
    db = await Database.open(path)
    n = 0
    while not os.path.exists(stop):
        n += 1
        async with db.write() as conn:
            await conn.execute(
                "INSERT INTO lease_event(scope, at, kind, owner, purpose, token, detail) "
                "VALUES ('w', ?, 'write', 'writer', 'test', ?, ?)", (n, n, "x" * 3000))
        if n == 50:
            print("writing", flush=True)
    await db.close()
    print(n, flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.slow
async def test_backup_while_a_writer_process_commits(tmp_path: Path) -> None:
    db_path = tmp_path / "warden.db"
    await make_db(db_path)
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db_path), str(stop)],
        cwd=tmp_path,
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "writing"
        seen = []
        for i in range(3):
            out = warden(tmp_path, "backup", f"b{i}.db", "--json")
            assert out.returncode == 0, out.stderr
            report = json.loads(out.stdout)
            assert report["schema_version"] == LATEST
            backup = tmp_path / f"b{i}.db"
            assert Path(report["path"]) == Path(f"b{i}.db")
            # one consistent snapshot: every committed write up to some point, nothing torn
            got = [t for (t,) in rows(backup, "SELECT token FROM lease_event WHERE scope = 'w'")]
            assert got == list(range(1, len(got) + 1)) and got
            assert rows(backup, "PRAGMA integrity_check") == [("ok",)]
            assert stat.S_IMODE(backup.stat().st_mode) == 0o600
            assert not Path(f"{backup}-wal").exists()  # a single self-contained file
            seen.append(len(got))
        assert writer.poll() is None  # the writer was never stopped or blocked out
    finally:
        stop.touch()
        out_text, _ = writer.communicate(timeout=30)
    total = int(out_text.split()[-1])
    assert seen == sorted(seen) and seen[-1] < total
    assert tokens(db_path)[-1] == total  # and every one of its writes landed


@pytest.mark.slow
async def test_backup_into_a_folder_and_refusals(tmp_path: Path) -> None:
    out = warden(tmp_path, "backup", "x.db")
    assert out.returncode == 2 and "nothing to back up" in out.stderr
    assert not (tmp_path / "warden.db").exists()  # never created by a backup
    await make_db(tmp_path / "warden.db", events=3)
    (tmp_path / "backups").mkdir()
    out = warden(tmp_path, "backup", "backups")
    assert out.returncode == 0, out.stderr
    (made,) = (tmp_path / "backups").iterdir()
    assert re.fullmatch(r"warden-\d{8}T\d{6}Z\.db", made.name)
    assert tokens(made) == [1, 2, 3]
    out = warden(tmp_path, "backup", "nosuch/dir/x.db")
    assert out.returncode == 2 and "does not exist" in out.stderr
    out = warden(tmp_path, "backup", "warden.db")
    assert out.returncode == 2 and "the database itself" in out.stderr


@pytest.mark.slow
async def test_restore_round_trip_keeps_the_current_database(tmp_path: Path) -> None:
    db_path = tmp_path / "warden.db"
    await make_db(db_path, events=2)
    assert warden(tmp_path, "backup", "snap.db").returncode == 0
    conn = sqlite3.connect(db_path)
    conn.execute(
        "INSERT INTO lease_event(scope, at, kind, owner, purpose, token) "
        "VALUES ('t', 3, 'test', 'o', 'p', 3)"
    )
    conn.commit()
    conn.close()

    out = warden(tmp_path, "restore", "snap.db")  # no terminal, no --yes
    assert out.returncode == 2 and "--yes" in out.stderr
    assert tokens(db_path) == [1, 2, 3]

    out = warden(tmp_path, "restore", "snap.db", "--yes")
    assert out.returncode == 0, out.stderr
    assert tokens(db_path) == [1, 2]
    (kept,) = tmp_path.glob("warden.db.before-restore-*")
    assert tokens(kept) == [1, 2, 3]
    assert str(kept.name) in out.stdout
    # a new instance id: client order ids issued after the snapshot can never be issued again
    assert rows(db_path, "SELECT value FROM meta WHERE key = 'instance'") != [("aaaaaa",)]
    assert rows(kept, "SELECT value FROM meta WHERE key = 'instance'") == [("aaaaaa",)]
    assert not any(tmp_path.glob(".warden.db.*"))  # no temporary file left behind
    # and the restored database is the one Warden now uses
    out = warden(tmp_path, "lock", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["leases"] == []


def _sqlite_file(path: Path, sql: str) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(sql)
    conn.close()
    return path


@pytest.mark.slow
async def test_restore_refuses_what_is_not_a_usable_warden_database(tmp_path: Path) -> None:
    db_path = tmp_path / "warden.db"
    await make_db(db_path, events=1)
    (tmp_path / "notes.txt").write_text("hello")
    _sqlite_file(tmp_path / "other.db", "CREATE TABLE t(x);")
    newer = tmp_path / "newer.db"
    shutil.copy(db_path, newer)
    _sqlite_file(newer, f"UPDATE schema_version SET version = {LATEST + 1};")
    cases = {
        "absent.db": "not found",
        "notes.txt": "not an SQLite database",
        "other.db": "not a Warden database",
        "newer.db": "newer than this Warden",
    }
    for name, complaint in cases.items():
        out = warden(tmp_path, "restore", name, "--yes")
        assert out.returncode == 2, (name, out.stderr)
        assert complaint in out.stderr, (name, out.stderr)
    assert tokens(db_path) == [1]
    assert not list(tmp_path.glob("*.before-restore-*"))
    # a damaged current database: said so, with the way out; restoring into no database works
    assert warden(tmp_path, "backup", "good.db").returncode == 0
    db_path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    out = warden(tmp_path, "restore", "good.db", "--yes")
    assert out.returncode == 2 and "move it and its -wal/-shm files aside" in out.stderr
    db_path.rename(tmp_path / "damaged.db")
    assert warden(tmp_path, "restore", "good.db", "--yes").returncode == 0
    assert tokens(db_path) == [1]


@pytest.mark.slow
async def test_restore_an_older_schema_is_migrated_when_opened(tmp_path: Path) -> None:
    version, _name, statements = MIGRATIONS[0]  # a backup made by the first Warden
    old = _sqlite_file(
        tmp_path / "v1.db",
        ";".join(statements) + f"; CREATE TABLE schema_version (version INTEGER NOT NULL); "
        f"INSERT INTO schema_version VALUES ({version}); "
        "INSERT INTO lease(scope, token) VALUES ('paper:main', 41);",
    )
    out = warden(tmp_path, "restore", old.name, "--yes")
    assert out.returncode == 0, out.stderr
    assert f"from schema 1 to {LATEST}" in out.stdout
    assert warden(tmp_path, "lock").returncode == 0  # opening migrates it
    assert rows(tmp_path / "warden.db", "SELECT version FROM schema_version") == [(LATEST,)]
    assert rows(tmp_path / "warden.db", "SELECT token FROM lease") == [(41,)]


@contextmanager
def running(
    cwd: Path, *args: str, ready: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        warden_cmd(*args),
        cwd=cwd,
        env=env or child_env(WARDEN_DB=str(cwd / "warden.db")),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert ready in line, line
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
async def test_restore_is_refused_while_a_lease_is_held(tmp_path: Path) -> None:
    db_path = tmp_path / "warden.db"
    await make_db(db_path, events=1)
    assert warden(tmp_path, "backup", "snap.db").returncode == 0
    with running(tmp_path, "lock", "--hold", "60", "--purpose", "maintenance", ready="holding"):
        out = warden(tmp_path, "restore", "snap.db", "--yes")
    assert out.returncode == 75, out.stderr
    assert "lease paper:main held by" in out.stderr and "maintenance" in out.stderr
    assert not list(tmp_path.glob("*.before-restore-*"))
    # released: now it goes through
    assert warden(tmp_path, "restore", "snap.db", "--yes").returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("exchange", "model"),
    [
        ("paper", PaperExchangeConfig),
        ("okx", OkxExchangeConfig),
        ("hyperliquid", HyperliquidExchangeConfig),
    ],
)
def test_init_without_a_terminal(tmp_path: Path, exchange: str, model: type) -> None:
    # WARDEN_CONFIG names the file init is about to write (as in the container): no reading
    env = child_env(WARDEN_CONFIG=str(tmp_path / "cfg" / "warden.toml"))
    out = warden(tmp_path, "init", "--dir", "cfg", "--exchange", exchange, "--telegram", env=env)
    assert out.returncode == 0, out.stderr
    toml, dotenv = tmp_path / "cfg" / "warden.toml", tmp_path / "cfg" / ".env"
    config = load_config(toml, environ={})
    (ex,) = config.exchanges.values()
    assert isinstance(ex, model)
    if not isinstance(ex, PaperExchangeConfig):
        assert ex.sandbox is True  # a fresh install starts on the test environment
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    text = dotenv.read_text()
    assert "TELEGRAM_BOT_TOKEN=\n" in text and "TELEGRAM_ALLOWED_USER_IDS=\n" in text
    assert (f"{exchange.upper()}_" in text) == (exchange != "paper")
    assert load_secrets(dotenv, environ={}).values == {}  # placeholders: empty, valid
    # the doctor reads what init wrote and names what is still missing
    doctor = warden(tmp_path, "--config", str(toml), "--env-file", str(dotenv), "doctor", env=env)
    # --telegram wrote a [telegram] table: the empty bot token placeholder is a failure
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert "TELEGRAM_BOT_TOKEN is empty" in doctor.stdout
    assert "config: valid" in doctor.stdout


@pytest.mark.slow
def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    (tmp_path / "warden.toml").write_text("# mine\n")
    out = warden(tmp_path, "init", "--yes")
    assert out.returncode == 2 and "--force" in out.stderr
    assert (tmp_path / "warden.toml").read_text() == "# mine\n"
    assert not (tmp_path / ".env").exists()
    out = warden(tmp_path, "init", "--yes", "--dir", "warden.toml")
    assert out.returncode == 2 and "not a folder" in out.stderr
    out = warden(tmp_path, "init", "--yes", "--force")
    assert out.returncode == 0, out.stderr
    assert "[exchanges.paper]" in (tmp_path / "warden.toml").read_text()
    assert "[telegram]" not in (tmp_path / "warden.toml").read_text().replace("# [telegram]", "")


def _pty_session(cwd: Path, argv: list[str], answers: list[tuple[str, str]]) -> str:
    """Run ``argv`` on a pseudo-terminal, answering each prompt; returns what the terminal
    showed (input that is echoed shows up here, getpass input must not)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=child_env(),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    shown = ""
    try:
        for prompt, answer in answers:
            deadline = time.monotonic() + 20
            while prompt not in shown:
                assert time.monotonic() < deadline, shown
                if select.select([master], [], [], 0.2)[0]:
                    shown += os.read(master, 4096).decode(errors="replace")
            shown = shown.replace(prompt, f"<{prompt}>", 1)
            os.write(master, answer.encode() + b"\n")
        proc.wait(timeout=20)
        while select.select([master], [], [], 0.2)[0]:
            try:
                shown += os.read(master, 4096).decode(errors="replace")
            except OSError:
                break
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, shown
    return shown


@pytest.mark.slow
def test_init_asks_on_a_terminal_and_never_echoes_secrets(tmp_path: Path) -> None:
    shown = _pty_session(
        tmp_path,
        warden_cmd("init"),
        [
            ("exchange (paper / okx / hyperliquid)", "okx"),
            ("Telegram control?", "y"),
            ("OKX API key", "key-1234abcd"),
            ("OKX API secret", SECRET),
            ("OKX API passphrase", "pass phrase"),
            ("bot token", "123:tok-ABCDEFGH"),
            ("user ids", "111, 222"),
        ],
    )
    for secret in ("key-1234abcd", SECRET, "123:tok-ABCDEFGH"):
        assert secret not in shown
    secrets = load_secrets(tmp_path / ".env", environ={})
    assert secrets.get("OKX_API_SECRET") == SECRET
    assert secrets.get("OKX_API_PASSPHRASE") == "pass phrase"
    assert secrets.telegram_allowed_user_ids == {111, 222}
    assert isinstance(
        load_config(tmp_path / "warden.toml", environ={}).exchanges["okx"], OkxExchangeConfig
    )


def test_every_config_key_has_a_description() -> None:
    missing = [name for name, field in all_fields() if not field.description]
    assert missing == []


@pytest.mark.slow
def test_configuration_md_is_the_generated_reference() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == markdown(), (
        "docs/configuration.md is stale: python -m bot.config.reference > docs/configuration.md"
    )
    out = subprocess.run(
        [sys.executable, "-m", "bot.config.reference"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0 and out.stdout == committed


def test_init_template_shows_every_key_of_its_tables() -> None:
    for exchange in KINDS:
        text = config_template(exchange, telegram=True)
        for table in tables():
            if "strategies" in table.header or "exchanges" in table.header:
                continue
            for key in table.keys:
                assert re.search(rf"^(# )?{key.name} = ", text, re.MULTILINE), (table, key.name)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_file_rotates_and_stays_redacted(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "warden.log"
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        setup_logging("INFO", fmt, [SECRET], str(path), max_bytes=2048, backups=2)
        log = logging.getLogger("warden.test")
        for i in range(200):
            log.info("call failed", extra={"fields": {"n": i, "error": f"bad key {SECRET}"}})
        try:
            raise RuntimeError(f"auth failed for {SECRET}")
        except RuntimeError:
            log.exception("boom")
    finally:
        for h in root.handlers:
            if h not in saved[0]:
                h.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    files = sorted(tmp_path.glob("warden.log*"))
    assert [f.name for f in files] == ["warden.log", "warden.log.1", "warden.log.2"]
    for f in files:
        text = f.read_text()
        assert SECRET not in text and MASK in text
        assert f.stat().st_size <= 2048 + 600  # one record may overshoot the limit
        if fmt == "json":
            for line in text.splitlines():
                if line.startswith("{"):
                    assert json.loads(line)["logger"] == "warden.test"
    assert "auth failed for ***" in path.read_text()


@pytest.mark.slow
def test_log_file_from_the_config(tmp_path: Path) -> None:
    (tmp_path / "warden.toml").write_text('[logging]\nfile = "logs/w.log"\n')
    out = warden(tmp_path, "lock")
    assert out.returncode == 2 and "logging.file logs/w.log: cannot be opened" in out.stderr
    (tmp_path / "logs").mkdir()
    out = warden(tmp_path, "--log-json", "--log-level", "DEBUG", "pause")  # creates the db
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "logs" / "w.log").read_text()
    assert next(json.loads(line)["level"] for line in text.splitlines()) == "DEBUG"
    assert text in out.stderr  # the same lines as on stderr


def _beacon(db_path: Path, beacon: Beacon) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (beacon.key, beacon.to_json())
    )
    conn.commit()
    conn.close()


@pytest.mark.slow
async def test_health_without_a_running_agent(tmp_path: Path) -> None:
    out = warden(tmp_path, "health", "--json")
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert report["ok"] is False and report["database"] == str(tmp_path / "warden.db")
    assert (
        f"database {tmp_path / 'warden.db'} does not exist (nothing was created)"
        in (report["detail"])
    )
    assert list(tmp_path.iterdir()) == []  # never created by a health check
    db_path = tmp_path / "warden.db"
    await make_db(db_path)
    out = warden(tmp_path, "health")
    assert out.returncode == 1 and "no agent running" in out.stdout
    now = time.time()
    # a crashed agent: its row stays, it stops beating
    _beacon(
        db_path,
        Beacon(
            f"{HOST}:999999:dead",
            now - 600,
            now - 500,
            5.0,
            ("paper:main",),
            {"paper:main": now - 500},
        ),
    )
    out = warden(tmp_path, "health")
    assert out.returncode == 1 and "no agent running: the last one" in out.stdout


@pytest.mark.slow
async def test_health_needs_every_account_guarded_recently(tmp_path: Path) -> None:
    db_path = tmp_path / "warden.db"
    await make_db(db_path)
    now = time.time()
    me = f"{HOST}:{os.getpid()}:live"  # a live pid, beating now
    _beacon(
        db_path,
        Beacon(
            me,
            now - 300,
            now,
            5.0,
            ("paper:main", "okx:main"),
            {"paper:main": now - 2, "okx:main": now - 200},
        ),
    )
    out = warden(tmp_path, "health", "--json")
    assert out.returncode == 1, out.stdout
    report = json.loads(out.stdout)
    (agent,) = report["agents"]
    by_scope = {a["scope"]: a for a in agent["accounts"]}
    assert by_scope["paper:main"]["ok"] is True and by_scope["okx:main"]["ok"] is False
    assert by_scope["okx:main"]["last_activity"] == "watchdog"
    # 3 watchdog periods, at least a minute (here: the built-in demo's 10 s watchdog)
    assert report["max_age_seconds"] == default_max_age(load_config(None, environ={})) == 60
    assert warden(tmp_path, "health", "--max-age", "300").returncode == 0
    # a lease the agent's process holds and heart-beats counts as activity (a long cycle)
    conn = sqlite3.connect(db_path)
    conn.execute(
        "INSERT INTO lease(scope, owner, purpose, token, acquired_at, heartbeat_at, expires_at) "
        "VALUES ('okx:main', ?, 'strategy cycle', 3, ?, ?, ?)",
        (f"{HOST}:{os.getpid()}:other", now - 100, now - 1, now + 29),
    )
    conn.commit()
    conn.close()
    out = warden(tmp_path, "health")
    assert out.returncode == 0, out.stdout
    assert "okx:main: lease" in out.stdout


async def test_an_agent_start_prunes_heartbeats_of_agents_that_are_gone(db: Database) -> None:
    now = time.time()
    store = BeaconStore(db)
    rows_ = {
        "dead": Beacon(f"{HOST}:999999:aa", now - 60, now - 50, 5.0, ("paper:main",)),
        # this very pid, an earlier life: a restarted container is pid 1 on the same host again
        "earlier life": Beacon(f"{HOST}:{os.getpid()}:bb", now - 60, now - 50, 5.0, ()),
        "silent a day": Beacon("otherhost:1:cc", now - 90_000, now - 90_000, 5.0, ()),
        "alive elsewhere": Beacon("otherhost:2:dd", now - 60, now - 1, 5.0, ()),
    }
    for b in rows_.values():
        await store.beat(b)

    class Stats:
        runs, skipped_busy = 0, 0

    class Dog:
        stats = Stats()

    dog = Dog()
    beacon = DaemonBeacon(db, {"paper:main": dog}, interval=0.2)
    async with beacon.running():
        left = {b.owner for b in await store.all()}
        assert left == {rows_["alive elsewhere"].owner, beacon.owner}
        (mine,) = [b for b in await store.all() if b.owner == beacon.owner]
        assert mine.watchdog_at == {}  # no watchdog run yet: health stays red
        dog.stats.runs = 1
        await asyncio.sleep(0.6)  # looked at every second (here: every 0.2 s)
        (mine,) = [b for b in await store.all() if b.owner == beacon.owner]
        assert now <= mine.watchdog_at["paper:main"] <= time.time()
    assert beacon.owner not in {b.owner for b in await store.all()}  # a clean stop removes it
