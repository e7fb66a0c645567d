"""`warden paper faults`: the fault injection in force is the database's, shown and changed from
the CLI; a config that says otherwise is reported at start-up (`warden doctor`, `warden run`),
not only in a log line. Real CLI processes on one paper database."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path

import pytest

from bot.config import Config
from bot.exchanges import build_paper_exchange
from storage.db import Database
from tests.conftest import child_env, warden_cmd
from trading.paper import FaultSettings, FaultState, fault_drift

ARMED = """
[storage]
path = "warden.db"
[logging]
level = "ERROR"
[exchanges.paper]
kind = "paper"
[exchanges.paper.faults]
seed = 7
stop_silent_fail = 1
stop_silent_fail_rate = 0.15
"""
PLAIN = (
    '[storage]\npath = "warden.db"\n[logging]\nlevel = "ERROR"\n[exchanges.paper]\nkind = "paper"\n'
)


def warden(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        warden_cmd(*args),
        cwd=folder,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def faults_json(folder: Path, *args: str) -> dict[str, object]:
    out = warden(folder, "paper", "faults", "--json", *args)
    assert out.returncode == 0, out.stderr
    report: dict[str, object] = json.loads(out.stdout)
    return report


def seed_exchange(folder: Path) -> None:
    """Use the paper exchange once, so the config seeds its faults into the database."""

    async def go() -> None:
        db = await Database.open(folder / "warden.db")
        try:
            demo_faults = {"seed": 7, "stop_silent_fail": 1, "stop_silent_fail_rate": 0.15}
            config = Config.model_validate(
                {"exchanges": {"paper": {"kind": "paper", "faults": demo_faults}}}
            )
            await build_paper_exchange(config, "paper", db).faults()  # seeds them
        finally:
            await db.close()

    asyncio.run(go())


@pytest.mark.slow
def test_show_set_and_the_drift_from_the_config(tmp_path: Path) -> None:
    (tmp_path / "warden.toml").write_text(ARMED)
    missing = warden(tmp_path, "paper", "faults")
    assert missing.returncode == 2 and "does not exist (nothing was created)" in missing.stderr
    assert not (tmp_path / "warden.db").exists()  # never armed on a file no agent uses

    assert warden(tmp_path, "pause").returncode == 0  # the database exists, the exchange unused
    shown = faults_json(tmp_path)
    assert shown["seeded"] is False and shown["drift"] == []
    assert shown["faults"] == shown["config"]  # the config will seed it

    changed = faults_json(tmp_path, "--set", "stop_silent_fail_rate=0", "reject_rate=0.5")
    assert changed["database"] == str(tmp_path / "warden.db")
    assert changed["changed"] == {"stop_silent_fail_rate": 0.0, "reject_rate": 0.5}
    faults = changed["faults"]
    assert isinstance(faults, dict)
    assert (faults["stop_silent_fail"], faults["stop_silent_fail_rate"]) == (1, 0.0)
    assert faults["reject_rate"] == 0.5 and changed["seeded"] is True
    assert changed["drift"] == [
        {"name": "stop_silent_fail_rate", "config": 0.15, "in_force": 0.0, "seeded_with": 0.15},
        {"name": "reject_rate", "config": 0.0, "in_force": 0.5, "seeded_with": 0.0},
    ]
    # persisted: a later process reads the same values
    assert faults_json(tmp_path)["faults"] == faults

    text = warden(tmp_path, "paper", "faults")
    assert text.returncode == 0
    assert text.stdout.splitlines()[0] == f"database: {tmp_path / 'warden.db'}"
    assert "  reject_rate = 0.5" in text.stdout
    assert "reject_rate: config 0.0, in force 0.5 (database seeded with 0.0)" in text.stdout


@pytest.mark.slow
def test_bad_settings_exit_2_and_change_nothing(tmp_path: Path) -> None:
    (tmp_path / "warden.toml").write_text(ARMED)
    assert warden(tmp_path, "pause").returncode == 0
    before = faults_json(tmp_path)["faults"]
    for argv, words in [
        (("--set", "nosuch=1"), "expected KEY=VALUE with KEY one of seed, stop_silent_fail"),
        (("--set", "reject_rate"), "expected KEY=VALUE"),
        (("--set", "stop_silent_fail=1.5"), "stop_silent_fail: '1.5' is not a whole number"),
        (("--set", "reject_rate=lots"), "reject_rate: 'lots' is not a number"),
        (("--set", "reject_rate=1.5"), "reject_rate: Input should be less than or equal to 1"),
        (("--set", "reject_rate=nan"), "reject_rate: Input should be a finite number"),
        (("--set", "stop_silent_fail=-1"), "stop_silent_fail: Input should be greater than"),
        (("--set", "latency_ms=600000"), "latency_ms: Input should be less than or equal to"),
        (("--set", "reject_rate=0.1", "seed=x"), "seed: 'x' is not a whole number"),
        (("--set", "seed=" + "9" * 30), "seed: '" + "9" * 30 + "' is out of range"),
    ]:
        out = warden(tmp_path, "paper", "faults", *argv)
        assert out.returncode == 2, (argv, out.stdout, out.stderr)
        assert words in out.stderr and "nothing was changed" in out.stderr, (argv, out.stderr)
    assert faults_json(tmp_path)["faults"] == before
    (tmp_path / "warden.toml").write_text(PLAIN + '[exchanges.okx]\nkind = "okx"\n')
    out = warden(tmp_path, "paper", "faults", "--exchange", "okx")
    assert out.returncode == 2 and "okx is okx, not a paper exchange" in out.stderr


@pytest.mark.slow
def test_doctor_and_run_say_when_the_config_is_not_what_is_in_force(tmp_path: Path) -> None:
    """The issue's case: a database seeded by an armed config (the demo's 15% stop failures),
    then a config without faults. The database's values stay in force; start-up says so."""
    (tmp_path / "warden.toml").write_text(PLAIN)
    seed_exchange(tmp_path)

    doctor = warden(tmp_path, "doctor")
    assert doctor.returncode == 0, doctor.stdout  # a warning, not a failure
    [line] = [x for x in doctor.stdout.splitlines() if x.startswith("[warn] paper faults paper")]
    assert "the database's values are in force" in line
    assert "stop_silent_fail_rate: config 0.0, in force 0.15 (database seeded with 0.15)" in line
    assert "stop_silent_fail: config 0, in force 1 (database seeded with 1)" in line
    assert "seed: config 0, in force 7" in line
    assert "reject_rate" not in line  # the same on both sides: nothing to report
    report = json.loads(warden(tmp_path, "doctor", "--json").stdout)
    [check] = [c for c in report["checks"] if c["name"] == "paper faults paper"]
    assert check["status"] == "warn"

    run = subprocess.Popen(
        warden_cmd("run"),
        cwd=tmp_path,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stdout is not None
        lines = [run.stdout.readline() for _ in range(2)]
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=60)
    assert lines[0].startswith("warden: config warden.toml"), lines
    assert lines[1].startswith("warden: WARNING: paper exchange paper: fault injection"), lines
    assert "stop_silent_fail_rate: config 0.0, in force 0.15" in lines[1]

    # back in line with the config: no warning any more
    faults_json(tmp_path, "--set", "stop_silent_fail=0", "stop_silent_fail_rate=0", "seed=0")
    doctor = warden(tmp_path, "doctor")
    assert "paper faults" not in doctor.stdout, doctor.stdout


def test_a_spent_budget_is_not_drift() -> None:
    seeded = FaultSettings(seed=7, stop_silent_fail=2, stop_silent_fail_rate=0.15)
    spent = FaultState(
        FaultSettings(seed=7, stop_silent_fail=0, stop_silent_fail_rate=0.15), seeded
    )
    assert fault_drift(spent, seeded) == []
    rearmed = FaultState(
        FaultSettings(seed=7, stop_silent_fail=5, stop_silent_fail_rate=0.15), seeded
    )
    assert [d.name for d in fault_drift(rearmed, seeded)] == ["stop_silent_fail"]
    edited = FaultSettings(seed=7, stop_silent_fail=3, stop_silent_fail_rate=0.15)
    assert [d.line() for d in fault_drift(spent, edited)] == [
        "stop_silent_fail: config 3, in force 0 (database seeded with 2)"
    ]
