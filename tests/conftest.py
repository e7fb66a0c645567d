"""Shared fixtures. Tests run offline; each gets its own database file and working folder."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from storage.db import Database
from tests.pg_cluster import Cluster, ClusterUnavailable, running_cluster

ROOT = Path(__file__).resolve().parent.parent
SECRET_ENV = (
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_ALLOWED_USER_IDS",
    "OKX_API_KEY",
    "OKX_API_SECRET",
    "OKX_API_PASSPHRASE",
    "HYPERLIQUID_WALLET_ADDRESS",
    "HYPERLIQUID_PRIVATE_KEY",
    "WARDEN_CONFIG",
    "WARDEN_DB",
    "WARDEN_DATABASE_URL",
    "WARDEN_ENV_FILE",
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's secrets, config or database."""
    for name in SECRET_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "warden.db"


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(db_path)
    try:
        yield database
    finally:
        await database.close()


def warden_cmd(*args: str) -> list[str]:
    """The real CLI in a child process, as a user's script would run it."""
    return [sys.executable, "-m", "bot", *args]


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


# --- PostgreSQL: one throwaway cluster per test session, a fresh database per test ----------

BACKENDS = ["sqlite", "postgresql"]
_pg_names = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """Started on first use only (a run without PostgreSQL tests never starts it). Without the
    server binaries the tests that need it fail on CI (``CI`` set) and are skipped locally."""
    cm = running_cluster()
    try:
        cluster = cm.__enter__()
    except ClusterUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL tests cannot run: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL not available: {exc}")
    try:
        yield cluster
    finally:
        cm.__exit__(None, None, None)


@contextmanager
def _pg_database(cluster: Cluster, template: str = "template1") -> Iterator[str]:
    import psycopg

    name = f"warden_t{os.getpid()}_{next(_pg_names)}"
    with psycopg.connect(cluster.url(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    try:
        yield cluster.url(name)
    finally:
        with psycopg.connect(cluster.url(), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def pg_template(pg_cluster: Cluster) -> str:
    """A database migrated to the latest schema once per session: copying it is much cheaper
    than migrating a new database in every test."""
    import psycopg

    async def migrate() -> None:
        db = await Database.open(pg_cluster.url("warden_template"))
        await db.close()

    with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
        admin.execute("CREATE DATABASE warden_template")
    # in a thread of its own: no event loop may be running where asyncio.run is called
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, migrate()).result()
    return "warden_template"


@pytest.fixture
def pg_url(pg_cluster: Cluster, pg_template: str) -> Iterator[str]:
    """The URL of a new database at the latest schema on the test cluster, dropped afterwards."""
    with _pg_database(pg_cluster, pg_template) as url:
        yield url


@pytest.fixture
def pg_empty_url(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of a new empty database (no schema yet), dropped afterwards."""
    with _pg_database(pg_cluster) as url:
        yield url


def backend_target(
    request: pytest.FixtureRequest, tmp_path: Path, *, empty: bool = False
) -> str | Path:
    """For a fixture parametrized over BACKENDS: the SQLite file, or a PostgreSQL URL (a
    database at the latest schema; ``empty``: without any, like a new SQLite file)."""
    if request.param == "sqlite":
        return tmp_path / "warden.db"
    return str(request.getfixturevalue("pg_empty_url" if empty else "pg_url"))
