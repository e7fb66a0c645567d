"""One descriptor per exchange kind (trading.adapters.kinds): the secrets the config loads, the
variables `warden init` writes, the checks `warden doctor` runs, the adapter wiring builds and
the drills' real-money guard all come from it, for every kind in the registry and for a kind a
test adds."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict

from bot.cli import main
from bot.commands import doctor
from bot.commands.init import KINDS as INIT_KINDS
from bot.commands.init import env_text, secrets_for
from bot.config import Config, ConfigError
from bot.config.reference import EXCHANGE_MODELS
from bot.config.secrets import Secrets, load_secrets
from bot.context import Context
from bot.drills.live import Refused, guard_real_money
from bot.exchanges import build_exchange, kind_of
from storage.db import Database
from trading.adapters import kinds
from trading.adapters.kinds import KINDS, Capabilities, Credential, ExchangeKind
from trading.models import Balance, LeverageSetting, Market

# values in the shape each venue's adapter checks (a wallet address is 0x + 40 hex digits)
SHAPED = {
    "HYPERLIQUID_WALLET_ADDRESS": "0x" + "5a" * 20,
    "HYPERLIQUID_PRIVATE_KEY": "0x" + "4c" * 32,
}


def _secret_values(kind: ExchangeKind) -> dict[str, str]:
    return {v: SHAPED.get(v, f"value-of-{v.lower()}") for v in kind.variables}


def test_every_kind_has_a_config_table_and_an_init_choice() -> None:
    assert set(KINDS) == set(EXCHANGE_MODELS) == set(INIT_KINDS)
    for name, kind in KINDS.items():
        assert kind.name == name
        table = EXCHANGE_MODELS[name].model_fields["kind"].annotation
        assert name in getattr(table, "__args__", ()), (name, table)


@pytest.mark.parametrize("name", list(KINDS))
def test_init_writes_the_kinds_variables_into_env(name: str, tmp_path: Path) -> None:
    kind = KINDS[name]
    assert main(["init", "--dir", str(tmp_path), "--exchange", name, "--yes"]) == 0
    written = dotenv_values(tmp_path / ".env")
    assert list(written) == list(kind.variables)
    assert all(v == "" for v in written.values())  # placeholders, to fill in
    toml = (tmp_path / "warden.toml").read_text()
    # a kind with a test environment starts on it
    assert ("sandbox = true" in toml) == kind.capabilities.sandbox


@pytest.mark.parametrize("name", list(KINDS))
def test_the_config_loads_each_kinds_secrets(name: str, tmp_path: Path) -> None:
    kind = KINDS[name]
    values = _secret_values(kind)
    secrets = _load(values, tmp_path)
    assert {v: secrets.get(v) for v in kind.variables} == values
    assert set(values.values()) <= set(secrets.secret_strings())  # redacted in logs


def _load(values: dict[str, str], folder: Path) -> Secrets:
    """The secrets as the config loads them, from the environment (an empty .env beside)."""
    env = folder / "empty.env"
    env.write_text("")
    return load_secrets(env, environ=values)


def _context(config: Config, secrets: Secrets) -> Context:
    return Context(config, "<test>", secrets, argparse.Namespace(json=True, real_money=False))


@pytest.mark.parametrize("name", list(KINDS))
async def test_doctor_asks_each_kind_for_its_own_secrets(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    kind = KINDS[name]
    table: dict[str, Any] = {"kind": name}
    config = Config.model_validate({"exchanges": {"acct": table}})
    checks = {c.name: c for c in await doctor._checks(_context(config, Secrets()))}
    check = checks["exchange acct"]
    if kind.credentials:
        assert check.status == "fail"
        assert check.detail == f"{name}: missing secrets {', '.join(kind.variables)}"
    else:
        assert check.status == "ok", check


@pytest.mark.parametrize("name", list(KINDS))
async def test_wiring_builds_each_kinds_adapter_from_its_descriptor(
    name: str, db: Database, tmp_path: Path
) -> None:
    kind = KINDS[name]
    table: dict[str, Any] = {
        "kind": name,
        **({"sandbox": True} if kind.capabilities.sandbox else {}),
    }
    config = Config.model_validate({"exchanges": {"acct": table}})
    if kind.credentials:
        with pytest.raises(ConfigError) as caught:
            build_exchange(config, "acct", db, Secrets())
        assert str(caught.value) == f"exchange acct: {', '.join(kind.variables)} not set"
    secrets = _load(_secret_values(kind), tmp_path)
    exchange = build_exchange(config, "acct", db, secrets)
    try:
        assert kind_of(config.exchanges["acct"]) is kind
        module, _, factory = kind.factory.partition(":")
        assert type(exchange).__module__.split(".")[:2] == module.split(".")[:2], factory
        assert exchange.name == "acct"
    finally:
        await exchange.close()


# --- a kind added to the registry flows through -------------------------------------------------

FAKE = ExchangeKind(
    name="fake",
    title="Fake Exchange",
    credentials=(Credential("FAKE_API_KEY", "Fake Exchange API key"),),
    capabilities=Capabilities(
        attached_stops=False,
        position_tpsl=False,
        leverage_setting=True,
        sandbox=True,
        fills=True,
    ),
    factory="tests.test_exchange_kinds:build_fake",
    sandbox_name="Fake Exchange playground",
)


class FakeTable(BaseModel):
    """What a config table for the fake kind would hold."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["fake"] = "fake"
    account: str = "main"
    sandbox: bool = False
    leverage: int = 4
    margin_mode: str = "cross"


class FakeAdapter:
    """Just enough of an adapter for doctor's read-only probe."""

    built: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, name: str, key: str | None, options: dict[str, Any]) -> None:
        self.name = name
        self.key = key
        self.options = options
        self.leverage_reads: list[str] = []
        FakeAdapter.built.append({"name": name, "key": key, **options})

    async def markets(self) -> dict[str, Market]:
        return {}

    async def balance(self) -> Balance:
        return Balance("USDT", 100.0, 100.0, 0.0)

    async def positions(self, symbol: str | None = None) -> list[Any]:
        return []

    async def leverage_setting(self, symbol: str) -> LeverageSetting:
        self.leverage_reads.append(symbol)
        return LeverageSetting(symbol, 4, "cross")

    async def close(self) -> None:
        return None


def build_fake(name: str, *, secrets: kinds.SecretGetter, **options: Any) -> FakeAdapter:
    return FakeAdapter(name, secrets("FAKE_API_KEY"), options)


@pytest.fixture
def fake_kind(monkeypatch: pytest.MonkeyPatch) -> ExchangeKind:
    monkeypatch.setitem(KINDS, "fake", FAKE)
    FakeAdapter.built.clear()
    return FAKE


def _fake_config() -> Config:
    # no config model knows "fake": the registry is what is being tested, not the schema
    return Config.model_construct(
        exchanges={"f": FakeTable()},  # type: ignore[dict-item]
        strategies=[],
    )


def test_a_new_kind_is_a_secret_the_config_loads(fake_kind: ExchangeKind, tmp_path: Path) -> None:
    secrets = _load({"FAKE_API_KEY": "k-123", "UNRELATED": "x"}, tmp_path)
    assert secrets.get("FAKE_API_KEY") == "k-123"
    assert "k-123" in secrets.secret_strings()


def test_a_new_kind_is_what_init_puts_in_env(fake_kind: ExchangeKind) -> None:
    entries = [(v, d, "") for v, d in secrets_for("fake")]
    assert entries == [("FAKE_API_KEY", "Fake Exchange API key", "")]
    assert "# Fake Exchange API key\nFAKE_API_KEY=\n" in env_text(entries)


async def test_a_new_kind_is_built_by_its_factory_with_its_tables_keys(
    fake_kind: ExchangeKind, db: Database, tmp_path: Path
) -> None:
    config = _fake_config()
    with pytest.raises(ConfigError, match="FAKE_API_KEY not set"):
        build_exchange(config, "f", db, Secrets())
    secrets = _load({"FAKE_API_KEY": "k-123"}, tmp_path)
    exchange: Any = build_exchange(config, "f", db, secrets)
    assert isinstance(exchange, FakeAdapter)
    assert FakeAdapter.built == [
        {
            "name": "f",
            "key": "k-123",
            "account": "main",
            "sandbox": False,
            "leverage": 4,
            "margin_mode": "cross",
        }
    ]


async def test_doctor_runs_the_checks_a_new_kinds_capabilities_name(
    fake_kind: ExchangeKind, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = _fake_config()
    missing = {c.name: c for c in await doctor._checks(_context(config, Secrets()))}
    assert missing["exchange f"].detail == "fake: missing secrets FAKE_API_KEY"

    secrets = _load({"FAKE_API_KEY": "k-123"}, tmp_path)
    checks = {c.name: c for c in await doctor._checks(_context(config, secrets))}
    assert checks["exchange f"].status == "ok", checks["exchange f"]
    assert checks["exchange f"].detail.startswith("fake reachable: 0 markets")
    # leverage_setting is a capability of the kind: its check runs, against the table's 4x cross
    assert checks["leverage f"].data == {"leverage": 4, "margin_mode": "cross", "symbols": []}
    assert "k-123" not in repr(checks)


def test_the_drill_guard_names_a_new_kinds_test_environment(fake_kind: ExchangeKind) -> None:
    ctx = _context(_fake_config(), Secrets())
    with pytest.raises(Refused) as caught:
        guard_real_money(ctx, "f")
    assert "point it at Fake Exchange playground (sandbox = true)" in str(caught.value)
    ctx.args.real_money = True
    guard_real_money(ctx, "f")  # the trader said so


@pytest.mark.slow
def test_paper_never_imports_ccxt_to_build_its_adapter(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import asyncio, sys\n"
        "from bot.config import Config\n"
        "from bot.exchanges import build_exchange\n"
        "from storage.db import Database\n"
        "async def go():\n"
        "    db = await Database.open(':memory:')\n"
        "    ex = build_exchange(Config(), 'paper', db)\n"
        "    await ex.markets()\n"
        "    await db.close()\n"
        "asyncio.run(go())\n"
        "print('ccxt' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        check=True,
    )
    assert out.stdout.strip() == "False", out.stderr
