"""The command-line contract (README): command names, options, exit codes, JSON shapes.

Everything runs the real CLI in a child process, as a user's script or cron job would.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from bot.cli import build_parser
from tests.conftest import child_env, warden_cmd

COMMANDS = [
    "run",
    "cycle",
    "open",
    "close",
    "status",
    "audit",
    "pnl",
    "chart",
    "backtest",
    "drill",
    "doctor",
    "lock",
]
TWO_EXCHANGES = '[exchanges.paper]\nkind = "paper"\n\n[exchanges.okx]\nkind = "okx"\n'


def warden(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        warden_cmd(*args), cwd=cwd, env=child_env(**env), capture_output=True, text=True, timeout=60
    )


def db_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".db" in p.name)


@pytest.mark.slow
def test_help_lists_every_command(tmp_path: Path) -> None:
    out = warden(tmp_path, "--help")
    assert out.returncode == 0, out.stderr
    listed = set(re.findall(r"^\s{4}(\w+)\s", out.stdout, flags=re.MULTILINE))
    assert set(COMMANDS) <= listed, listed
    for option in ("--config", "--env-file", "--log-level", "--log-json"):
        assert option in out.stdout
    assert "75" in out.stdout  # the exit codes are documented in the help
    assert db_files(tmp_path) == []


@pytest.mark.slow
def test_command_help_shows_its_options(tmp_path: Path) -> None:
    out = warden(tmp_path, "open", "--help")
    assert out.returncode == 0
    for option in ("--size", "--stop", "--exchange", "--yes", "--json", "--config"):
        assert option in out.stdout
    assert "{long,short}" in out.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (("frobnicate",), "invalid choice: 'frobnicate'"),
        ((), "required: COMMAND"),
        (("open", "BTC/USDT:USDT", "long", "--size", "abc", "--stop", "60000"), "--size"),
        (("open", "BTC/USDT:USDT", "long", "--size", "nan", "--stop", "60000"), "--size"),
        (("open", "BTC/USDT:USDT", "long", "--size", "-1", "--stop", "60000"), "--size"),
        (("open", "BTC/USDT:USDT", "long", "--size", "inf", "--stop", "60000"), "--size"),
        (("open", "BTC/USDT:USDT", "long", "--size", "0", "--stop", "60000"), "--size"),
        (("open", "BTC/USDT:USDT", "long", "--size", "1e999", "--stop", "60000"), "--size"),
        (("open", "BTC/USDT:USDT", "long", "--size", "0.01", "--stop", "-5"), "--stop"),
        (("open", "BTC/USDT:USDT", "long", "--size", "0.01"), "--stop"),
        (("open", "BTC/USDT:USDT", "sideways", "--size", "0.01", "--stop", "1"), "sideways"),
        (("close",), "SYMBOL|all"),
        (("cycle",), "--once"),
        (("drill",), "NAME"),
        (("lock", "--hold", "forever"), "--hold"),
        (("status", "--log-level", "LOUD"), "--log-level"),
        (("status", "--frobnicate"), "--frobnicate"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, argv: tuple[str, ...], complaint: str) -> None:
    out = warden(tmp_path, *argv)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "usage: warden" in out.stderr
    assert complaint in out.stderr, out.stderr
    assert out.stdout == ""
    assert db_files(tmp_path) == []


@pytest.mark.slow
def test_bad_config_exits_2_naming_the_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "warden.toml").write_text("[risk]\nmax_levrage = 3\nmax_leverage = 0\n")
    out = warden(tmp_path, "lock", "--json")
    assert out.returncode == 2
    assert "warden: config file warden.toml: 2 error(s)" in out.stderr
    assert "risk.max_levrage: unknown key" in out.stderr
    assert "risk.max_leverage: Input should be greater than 0 (got 0)" in out.stderr
    assert out.stdout == ""
    assert db_files(tmp_path) == []  # nothing was started


@pytest.mark.slow
def test_config_from_environment_variable_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.toml").write_text("[lease]\nttl_seconds = 1\n")
    out = warden(tmp_path, "doctor", WARDEN_CONFIG="elsewhere.toml")
    assert out.returncode == 2
    assert "elsewhere.toml" in out.stderr and "lease.ttl_seconds" in out.stderr
    out = warden(tmp_path, "doctor", "--config", "absent.toml")
    assert out.returncode == 2
    assert "config file absent.toml: not found" in out.stderr


@pytest.mark.slow
def test_unknown_exchange_names_the_configured_ones(tmp_path: Path) -> None:
    (tmp_path / "warden.toml").write_text(TWO_EXCHANGES)
    out = warden(tmp_path, "lock", "--hold", "5", "--exchange", "nosuch")
    assert out.returncode == 2
    assert "nosuch" in out.stderr
    assert "paper, okx" in out.stderr
    assert db_files(tmp_path) == []


@pytest.mark.slow
def test_exchange_is_required_when_several_are_configured(tmp_path: Path) -> None:
    (tmp_path / "warden.toml").write_text(TWO_EXCHANGES)
    out = warden(tmp_path, "lock", "--hold", "5")
    assert out.returncode == 2
    assert "--exchange" in out.stderr and "paper, okx" in out.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [
        ("--config", "custom.toml", "--log-level", "WARNING", "status", "--json"),
        ("status", "--json", "--config", "custom.toml", "--log-level", "WARNING"),
        ("--config", "custom.toml", "lock", "--json", "--log-json"),
        ("lock", "--log-json", "--json", "--config", "custom.toml"),
    ],
)
def test_global_options_before_or_after_the_command(tmp_path: Path, argv: tuple[str, ...]) -> None:
    # the custom config points at its own database: naming it proves the file was read
    (tmp_path / "custom.toml").write_text('[storage]\npath = "custom.db"\n')
    out = warden(tmp_path, *argv)
    assert out.returncode == 2
    assert f"database {tmp_path / 'custom.db'} does not exist" in out.stderr
    assert db_files(tmp_path) == []  # read-only commands create nothing
    sqlite3.connect(tmp_path / "custom.db").close()  # an empty file: migrated on open
    out = warden(tmp_path, *argv)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["leases"] == [] and report["database"] == str(tmp_path / "custom.db")
    assert db_files(tmp_path) == ["custom.db"]


@pytest.mark.slow
def test_env_file_option_after_the_command(tmp_path: Path) -> None:
    (tmp_path / "warden.toml").write_text('[exchanges.okx]\nkind = "okx"\n')
    (tmp_path / "keys.env").write_text(
        "OKX_API_KEY=k-123456\nOKX_API_SECRET=s-123456\nOKX_API_PASSPHRASE=p-123456\n"
    )
    out = warden(tmp_path, "doctor")  # ./.env does not exist
    assert out.returncode == 1
    assert "missing secrets" in out.stdout
    out = warden(tmp_path, "doctor", "--env-file", "keys.env")
    assert "missing secrets" not in out.stdout, out.stdout + out.stderr
    # with its keys, doctor goes on to probe the (here unreachable) exchange, read-only
    assert re.search(
        r"^\[fail\] exchange okx: (no answer|NetworkError|.*unreachable)", out.stdout, re.MULTILINE
    ), out.stdout
    out = warden(tmp_path, "doctor", "--env-file", "absent.env")
    assert out.returncode == 2
    assert "absent.env: not found" in out.stderr


@pytest.mark.slow
def test_doctor_json_on_defaults(tmp_path: Path) -> None:
    out = warden(tmp_path, "doctor", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] is True
    names = [c["name"] for c in report["checks"]]
    assert {"config", "exchange paper", "telegram", "database"} <= set(names)


@pytest.mark.slow
def test_doctor_json_fails_when_okx_has_no_secrets(tmp_path: Path) -> None:
    (tmp_path / "warden.toml").write_text(TWO_EXCHANGES)
    out = warden(tmp_path, "doctor", "--json", OKX_API_KEY="only-the-key")
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert set(report) == {"ok", "checks"}
    assert report["ok"] is False
    for check in report["checks"]:
        assert set(check) == {"name", "status", "detail"}
        assert check["status"] in {"ok", "warn", "fail"}
        assert isinstance(check["name"], str) and isinstance(check["detail"], str)
    by_name = {c["name"]: c for c in report["checks"]}
    okx = by_name["exchange okx"]
    assert okx["status"] == "fail"
    assert "OKX_API_SECRET" in okx["detail"] and "OKX_API_PASSPHRASE" in okx["detail"]
    assert "OKX_API_KEY" not in okx["detail"]  # it was given
    assert by_name["exchange paper"]["status"] == "ok"
    assert "only-the-key" not in out.stdout + out.stderr


@pytest.mark.slow
def test_doctor_text_exit_codes(tmp_path: Path) -> None:
    (tmp_path / "warden.toml").write_text(TWO_EXCHANGES)
    out = warden(tmp_path, "doctor")
    assert out.returncode == 1
    assert re.search(r"^\[fail\] exchange okx: okx: missing secrets", out.stdout, re.MULTILINE)
    out = warden(tmp_path, "doctor", TELEGRAM_BOT_TOKEN="1:x-token-abc")
    assert "[fail] telegram" in out.stdout  # a token without allowed users is a finding


def _handler_target(argv: tuple[str, ...]) -> tuple[str, str]:
    """The (module, function) a command line is routed to by the parser's lazy handler."""
    args = build_parser().parse_args(list(argv))
    found = inspect.getclosurevars(args.handler).nonlocals
    return found["module"], found["func"]


# one valid command line per command of the contract
EXAMPLES = [
    ("run",),
    ("cycle", "--once"),
    ("open", "BTC/USDT:USDT", "long", "--size", "0.001", "--stop", "60000", "--yes"),
    ("close", "all", "--yes"),
    ("status",),
    ("audit", "--json"),
    ("pnl",),
    ("chart", "btc", "--png", "btc.png"),
    ("backtest",),
    ("drill", "silent-stop"),
    ("doctor",),
    ("lock",),
]


def test_examples_cover_the_contract() -> None:
    assert [argv[0] for argv in EXAMPLES] == COMMANDS


@pytest.mark.parametrize("argv", EXAMPLES, ids=lambda argv: argv[0])
def test_every_command_has_a_body(argv: tuple[str, ...]) -> None:
    # a command routed to a module or function that does not exist would crash with a traceback
    module, func = _handler_target(argv)
    assert callable(getattr(importlib.import_module(f"bot.commands.{module}"), func))
