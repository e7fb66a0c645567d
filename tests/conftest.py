"""Shared fixtures. Tests run offline; each gets its own database file and working folder."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from storage.db import Database

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
