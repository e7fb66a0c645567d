"""The small things users hit (issue 13, item 8), each through the real `warden` process:
--version, symbol shorthands, drill --help, declining a confirmation, backup/restore paths,
download without network, a misspelt config key, doctor with Telegram asked for."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import pty
import subprocess
from pathlib import Path

import pytest

from bot.drills import DRILLS
from bot.symbols import SymbolError, resolve_symbol
from bot.telegram.args import UsageError
from bot.telegram.args import resolve_symbol as telegram_resolve
from storage.db import Database
from tests.conftest import child_env, warden_cmd

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def write_config(folder: Path, extra: str = "") -> Path:
    path = folder / "warden.toml"
    path.write_text(
        f'[storage]\npath = "{folder / "warden.db"}"\n[logging]\nlevel = "ERROR"\n'
        f"[guardian]\nverify_delay_seconds = 0.2\n{extra}",
        encoding="utf-8",
    )
    return path


def warden(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        warden_cmd(*args),
        cwd=folder,
        env=child_env(WARDEN_CONFIG=str(folder / "warden.toml"), **env),
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.mark.slow
def test_version_is_the_installed_distributions(tmp_path: Path) -> None:
    out = warden(tmp_path, "--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"warden {importlib.metadata.version('warden')}\n"


@pytest.mark.slow
def test_drill_help_lists_the_drills(tmp_path: Path) -> None:
    out = warden(tmp_path, "drill", "--help")
    assert out.returncode == 0
    flat = " ".join(out.stdout.split())
    assert "drills: " + ", ".join(DRILLS) in flat


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("btc", BTC),
        ("BTCUSDT", BTC),
        ("btc/usdt:usdt", BTC),
        ("BTC-USDT-SWAP", BTC),  # OKX's instrument id
        ("eth", ETH),
        ("ETH-USDT", ETH),
    ],
)
def test_one_symbol_parser_for_cli_and_telegram(typed: str, meant: str) -> None:
    known = [BTC, ETH]
    assert resolve_symbol(typed, known) == meant
    assert telegram_resolve("open", typed, known) == meant


def test_ambiguous_or_unknown_shorthand_names_the_candidates() -> None:
    known = [BTC, "BTC/USDC:USDC", ETH]
    with pytest.raises(SymbolError, match="btc matches several symbols: BTC/USDC:USDC, BTC/USDT"):
        resolve_symbol("btc", known)
    assert resolve_symbol("btcusdc", known) == "BTC/USDC:USDC"
    with pytest.raises(SymbolError, match=r"unknown symbol doge \(known: BTC/USDC:USDC, BTC/"):
        resolve_symbol("doge", known)
    with pytest.raises(UsageError, match="unknown symbol swap"):
        telegram_resolve("close", "swap", known)


@pytest.mark.slow
def test_cli_takes_the_shorthands(tmp_path: Path) -> None:
    write_config(tmp_path)
    bad = warden(tmp_path, "open", "doge", "long", "--size", "1", "--stop", "1", "--yes")
    assert bad.returncode == 2
    assert f"unknown symbol doge (known: {BTC}, {ETH}); nothing was sent" in bad.stderr
    out = warden(tmp_path, "close", "ethusdt", "--yes")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{ETH}: nothing: no open position\n"


@pytest.mark.slow
def test_declining_a_confirmation_says_nothing_was_sent(tmp_path: Path) -> None:
    """On a terminal `open` asks; "n" sends nothing and says so (exit 1)."""
    write_config(tmp_path)
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            warden_cmd("open", "btc", "long", "--size", "0.001", "--stop", "65600"),
            cwd=tmp_path,
            env=child_env(WARDEN_CONFIG=str(tmp_path / "warden.toml")),
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(master, b"n\n")
        out, err = proc.communicate(timeout=90)
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 1, err
    assert f"open long 0.001 {BTC} on paper" in out
    assert "warden open: not confirmed; nothing was sent" in err
    status = warden(tmp_path, "status", "--json")
    assert '"positions": []' in status.stdout, status.stdout + status.stderr


def make_db(path: Path) -> None:
    async def make() -> None:
        await (await Database.open(path)).close()

    asyncio.run(make())


@pytest.mark.slow
def test_backup_never_overwrites_without_force(tmp_path: Path) -> None:
    write_config(tmp_path)
    make_db(tmp_path / "warden.db")
    assert warden(tmp_path, "backup", "snap.db").returncode == 0
    before = (tmp_path / "snap.db").read_bytes()
    (tmp_path / "snap.db").write_bytes(b"an older backup")
    out = warden(tmp_path, "backup", "snap.db")
    assert out.returncode == 2
    assert "snap.db exists: not overwritten (--force replaces it" in out.stderr
    assert (tmp_path / "snap.db").read_bytes() == b"an older backup"
    out = warden(tmp_path, "backup", "snap.db", "--force")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "snap.db").read_bytes()[:16] == before[:16] == b"SQLite format 3\x00"


@pytest.mark.slow
def test_restore_on_a_folder_names_the_newest_backup(tmp_path: Path) -> None:
    write_config(tmp_path)
    folder = tmp_path / "backups"
    folder.mkdir()
    out = warden(tmp_path, "restore", "backups", "--yes")
    assert out.returncode == 2
    assert "backups is a folder: restore needs a backup file (there is no .db file in it)" in (
        out.stderr
    )
    make_db(folder / "warden-20261201T000000Z.db")
    make_db(folder / "warden-20261202T000000Z.db")
    os.utime(folder / "warden-20261201T000000Z.db", (1_000_000_000, 1_000_000_000))
    out = warden(tmp_path, "restore", "backups", "--yes")
    assert out.returncode == 2
    assert (
        "warden restore: backups is a folder: restore needs a backup file (newest here: "
        "backups/warden-20261202T000000Z.db)"
    ) in out.stderr
    assert not (tmp_path / "warden.db").exists()  # nothing restored


@pytest.mark.slow
def test_download_without_network_is_a_network_error(tmp_path: Path) -> None:
    write_config(tmp_path)
    # nothing listens on port 9 of this host: the connection is refused at once
    out = warden(
        tmp_path, "download", "btc", "--exchange", "okx", "--api-url", "http://127.0.0.1:9"
    )
    assert out.returncode == 1, out.stderr
    assert "network error" in out.stderr and "no file written" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warden.toml"]


@pytest.mark.slow
def test_a_misspelt_config_key_gets_the_closest_known_one(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        (
            "[risk]\nmax_levrage = 3\n[ris]\n"
            '[exchanges.paper]\nkind = "paper"\n[exchanges.paper.faults]\nseeed = 1\n'
        ),
    )
    out = warden(tmp_path, "status")
    assert out.returncode == 2
    assert "  risk.max_levrage: unknown key (did you mean max_leverage?)" in out.stderr
    assert "  exchanges.paper.faults.seeed: unknown key (did you mean seed?)" in out.stderr
    assert "  ris: unknown key (did you mean risk?)" in out.stderr


@pytest.mark.slow
def test_doctor_fails_on_an_empty_token_when_telegram_is_configured(tmp_path: Path) -> None:
    write_config(tmp_path)
    out = warden(tmp_path, "doctor")  # no [telegram]: the terminal gets the alerts
    assert out.returncode == 0, out.stdout
    assert "[warn] telegram: no TELEGRAM_BOT_TOKEN" in out.stdout
    write_config(tmp_path, "[telegram]\nrealert_seconds = 300\n")
    (tmp_path / ".env").write_text("TELEGRAM_BOT_TOKEN=\nTELEGRAM_ALLOWED_USER_IDS=\n")
    out = warden(tmp_path, "doctor")
    assert out.returncode == 1
    assert "[fail] telegram: [telegram] is configured but TELEGRAM_BOT_TOKEN is empty" in out.stdout
    out = warden(
        tmp_path, "doctor", TELEGRAM_BOT_TOKEN="123456:abcdef", TELEGRAM_ALLOWED_USER_IDS="42"
    )
    assert out.returncode == 0, out.stdout
    assert "[  ok] telegram: token set, 1 allowed user id(s)" in out.stdout


@pytest.mark.slow
def test_pnl_says_which_files_it_wrote(tmp_path: Path) -> None:
    write_config(tmp_path)
    make_db(tmp_path / "warden.db")
    out = warden(tmp_path, "pnl", "--csv", "t.csv", "--png", "e.png")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("wrote t.csv\nwrote e.png\n")
    assert (tmp_path / "t.csv").is_file() and (tmp_path / "e.png").is_file()
    # with --json the lines go to stderr: stdout stays one JSON document
    out = warden(tmp_path, "pnl", "--csv", "t2.csv", "--png", "e2.png", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["trades"] == []
    assert "wrote t2.csv\nwrote e2.png\n" in out.stderr
