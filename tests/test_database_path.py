"""Commands act on the database you meant (real CLI processes).

Read-only commands never create a database: on a missing one they name the path and exit 2
(`health`: 1, not healthy) with no file made. A relative ``[storage] path`` is the config file's
folder's, not the working folder's. Every read-only command names the database it used.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import child_env, warden_cmd

pytestmark = pytest.mark.slow  # real OS processes

READ_ONLY = [("status",), ("audit",), ("pnl",), ("lock",), ("health",)]


def warden(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        warden_cmd(*args),
        cwd=cwd,
        env=child_env(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def every_file(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def live_config(root: Path) -> Path:
    """A config in its own folder naming its database relatively, as `warden init --dir`."""
    folder = root / "live"
    folder.mkdir()
    config = folder / "warden.toml"
    config.write_text('[storage]\npath = "./state.db"\n[logging]\nlevel = "ERROR"\n')
    return config


@pytest.mark.parametrize("json_flag", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("argv", READ_ONLY, ids=lambda a: a[0])
def test_read_only_commands_on_a_missing_database_create_nothing(
    tmp_path: Path, argv: tuple[str, ...], json_flag: bool
) -> None:
    config = live_config(tmp_path)
    before = every_file(tmp_path)
    expected = tmp_path / "live" / "state.db"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    out = warden(elsewhere, "--config", str(config), *argv, *(["--json"] if json_flag else []))

    assert every_file(tmp_path) == sorted([*before, "elsewhere"])  # no database, -wal, -shm
    words = (
        f"database {expected} does not exist (nothing was created); the path comes from "
        f"[storage] path in {config}"
    )
    if argv[0] == "health":
        # a probe: "not healthy" is exit 1, as a container HEALTHCHECK expects
        assert out.returncode == 1, out.stderr
        if json_flag:
            report = json.loads(out.stdout)
            assert report["ok"] is False and report["database"] == str(expected)
            assert words in report["detail"]
        else:
            assert out.stdout.splitlines()[0] == f"database: {expected}"
            assert words in out.stdout
    else:
        assert out.returncode == 2, (out.stdout, out.stderr)
        assert out.stdout == ""
        assert out.stderr.strip().startswith(f"warden: {words}"), out.stderr


def test_warden_db_and_the_demo_name_their_origin(tmp_path: Path) -> None:
    out = warden(tmp_path, "status", WARDEN_DB="nowhere.db")
    assert out.returncode == 2
    assert f"database {tmp_path / 'nowhere.db'} does not exist (nothing was created); " in (
        out.stderr
    )
    assert "comes from $WARDEN_DB" in out.stderr
    out = warden(tmp_path, "audit")
    assert out.returncode == 2
    assert f"database {tmp_path / 'warden-demo.db'} does not exist" in out.stderr
    assert "the built-in demo (no config file)" in out.stderr
    assert every_file(tmp_path) == []


def test_a_relative_storage_path_is_the_config_folders_and_every_command_names_it(
    tmp_path: Path,
) -> None:
    config = live_config(tmp_path)
    expected = tmp_path / "live" / "state.db"
    other = tmp_path / "other"
    other.mkdir()
    cfg = ("--config", str(config))

    # a command that writes creates it, next to the config, not in the working folder
    made = warden(other, *cfg, "pause", "--reason", "checking paths")
    assert made.returncode == 0, made.stderr
    assert expected.is_file() and every_file(other) == []

    for argv in READ_ONLY:
        as_json = warden(other, *cfg, *argv, "--json")
        assert json.loads(as_json.stdout)["database"] == str(expected), (argv, as_json.stderr)
        text = warden(other, *cfg, *argv)
        assert text.returncode in (0, 1), (argv, text.stderr)  # health: no agent runs -> 1
        named = [line for line in text.stdout.splitlines() if str(expected) in line]
        assert len(named) == 1, (argv, text.stdout)  # named once
    # the same database from its own folder, through ./warden.toml found there
    status = warden(tmp_path / "live", "status", "--json")
    assert json.loads(status.stdout)["paused"] is True
    assert json.loads(status.stdout)["database"] == str(expected)
    assert every_file(other) == []


def test_demo_state_stays_out_of_a_later_init_in_the_same_folder(tmp_path: Path) -> None:
    """The demo (no config) trades on ./warden-demo.db with its fault injection on; `warden
    init --exchange paper` here starts clean on ./warden.db."""
    demo = warden(tmp_path, "open", "BTC/USDT:USDT", "long", "--size", "0.001", "--stop", "65000")
    assert demo.returncode == 2 and "--yes" in demo.stderr  # no terminal: needs --yes
    demo = warden(
        tmp_path, "open", "BTC/USDT:USDT", "long", "--size", "0.001", "--stop", "65000", "--yes"
    )
    assert demo.returncode == 0, demo.stderr
    assert "acknowledged, exchange shows failed (failCode 1000)" in demo.stdout  # demo faults
    assert [
        p["symbol"] for p in json.loads(warden(tmp_path, "status", "--json").stdout)["positions"]
    ] == ["BTC/USDT:USDT"]

    assert warden(tmp_path, "init", "--exchange", "paper", "--yes").returncode == 0
    assert not (tmp_path / "warden.db").exists()
    doctor = warden(tmp_path, "doctor")
    assert doctor.returncode == 0 and "paper faults" not in doctor.stdout, doctor.stdout
    pause = warden(tmp_path, "pause")  # the first write creates the new database
    assert pause.returncode == 0, pause.stderr
    mine = json.loads(warden(tmp_path, "status", "--json").stdout)
    assert mine["database"] == str(tmp_path / "warden.db")
    assert mine["positions"] == []  # not the demo's BTC position
    faults = json.loads(warden(tmp_path, "paper", "faults", "--json").stdout)
    assert faults["faults"]["stop_silent_fail_rate"] == 0.0 and faults["drift"] == []
    audit = warden(tmp_path, "audit", "--json")
    assert audit.returncode == 0 and json.loads(audit.stdout)["findings"] == []
