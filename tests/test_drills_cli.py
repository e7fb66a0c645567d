"""The CLI of the execution core in real child processes: `warden drill`, `warden open`,
`warden status --json`, `warden close`, `warden paper price`."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.drills import DRILLS
from tests.conftest import child_env, warden_cmd

pytestmark = pytest.mark.slow  # real OS processes

BTC = "BTC/USDT:USDT"
TIMEOUT = 90
VERIFY_DELAY = 0.2


def write_config(root: Path) -> Path:
    path = root / "warden.toml"
    path.write_text(
        f'[storage]\npath = "{root / "warden.db"}"\n'
        '[logging]\nlevel = "ERROR"\n'
        f"[guardian]\nverify_delay_seconds = {VERIFY_DELAY}\nwatchdog_seconds = 1\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path)


def start(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        warden_cmd("--config", str(config), *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=config.parent,
    )


def finish(procs: list[subprocess.Popen[str]]) -> list[subprocess.CompletedProcess[str]]:
    done: list[subprocess.CompletedProcess[str]] = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=TIMEOUT)
            done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return done


def warden(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    [done] = finish([start(config, *args)])
    return done


def status(config: Path) -> dict[str, Any]:
    out = warden(config, "status", "--json")
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def test_every_drill_holds_and_an_unknown_drill_is_a_usage_error(config: Path) -> None:
    runs = finish([start(config, "drill", name) for name in DRILLS])
    for name, run in zip(DRILLS, runs, strict=True):
        assert run.returncode == 0, f"{name}:\n{run.stdout}\n{run.stderr}"
        assert f"drill {name}: safety net HELD" in run.stdout, run.stdout
        assert "FAIL " not in run.stdout
    by_name = dict(zip(DRILLS, runs, strict=True))
    # the drills run with the user's guardian timings: read back 0.2 s after placement
    found = re.search(
        r"silent failure detected ([0-9.]+)s after placement", by_name["silent-stop"].stdout
    )
    assert found is not None, by_name["silent-stop"].stdout
    assert VERIFY_DELAY <= float(found.group(1)) <= VERIFY_DELAY + 1.5
    assert "attributed to an execution fault" in by_name["stop-overrun"].stdout
    assert "watchdog" in by_name["stop-removed"].stdout
    assert "exit codes [0, " in by_name["double-open"].stdout

    unknown = warden(config, "drill", "flash-crash")
    assert unknown.returncode == 2
    assert "unknown drill" in unknown.stderr and "silent-stop" in unknown.stderr
    # the drills ran on throwaway databases: the user's account was never touched
    assert not (config.parent / "warden.db").exists()


def test_open_then_status_shows_the_verified_stop(config: Path) -> None:
    out = warden(config, "open", BTC, "long", "--size", "0.001", "--stop", "65600", "--yes")
    assert out.returncode == 0, out.stderr
    assert "protected" in out.stdout

    data = status(config)

    [pos] = data["positions"]
    assert (pos["exchange"], pos["symbol"], pos["side"], pos["size"]) == (
        "paper",
        BTC,
        "long",
        0.001,
    )
    assert pos["entry_price"] == 69094.5
    stop = pos["stop"]
    assert (stop["state"], stop["trigger_price"], stop["size"]) == ("live", 65600.0, 0.001)
    assert stop["verified_at"] is not None and stop["verified_at"].endswith("Z")
    assert data["paused"] is False
    assert data["leases"] == []  # the open released its lease on exit
    assert data["errors"] == []


BAD_OPENS = {
    "unknown symbol": (["DOGE/USDT:USDT", "long", "--size", "1", "--stop", "0.1"], "unknown"),
    "size below minimum": ([BTC, "long", "--size", "0.00001", "--stop", "65600"], "minimum"),
    "stop on the wrong side": ([BTC, "long", "--size", "0.001", "--stop", "70000"], "below"),
    "short stop below": ([BTC, "short", "--size", "0.001", "--stop", "68000"], "above"),
    "size not a number": ([BTC, "long", "--size", "abc", "--stop", "65600"], "not a number"),
    "stop not a number": ([BTC, "long", "--size", "0.001", "--stop", "x"], "not a number"),
    "size nan": ([BTC, "long", "--size", "nan", "--stop", "65600"], "finite"),
    "negative stop": ([BTC, "long", "--size", "0.001", "--stop", "-1"], "positive"),
}


def test_bad_open_arguments_exit_2_and_send_nothing(config: Path) -> None:
    procs = [start(config, "open", *args, "--yes") for args, _ in BAD_OPENS.values()]
    for (name, (_, words)), out in zip(BAD_OPENS.items(), finish(procs), strict=True):
        assert out.returncode == 2, f"{name}: {out.returncode} {out.stdout} {out.stderr}"
        assert words in out.stderr, f"{name}: {out.stderr}"
        assert "Traceback" not in out.stderr
    data = status(config)
    assert data["positions"] == []
    close = warden(config, "close", "all", "--yes", "--json")
    assert close.returncode == 0 and json.loads(close.stdout)["results"][0]["outcome"] == "nothing"


def test_close_closes_the_position_and_its_stop(config: Path) -> None:
    out = warden(config, "open", BTC, "long", "--size", "0.001", "--stop", "65600", "--yes")
    assert out.returncode == 0, out.stderr

    closed = warden(config, "close", BTC, "--yes", "--json")

    assert closed.returncode == 0, closed.stderr
    [result] = json.loads(closed.stdout)["results"]
    assert (result["outcome"], result["size"], result["fill_price"]) == ("closed", 0.001, 69025.5)
    assert status(config)["positions"] == []
    again = warden(config, "close", BTC, "--yes")
    assert again.returncode == 0 and "no open position" in again.stdout


def test_paper_price_moves_the_market_and_fires_the_stop(config: Path) -> None:
    out = warden(config, "open", BTC, "long", "--size", "0.001", "--stop", "65600", "--yes")
    assert out.returncode == 0, out.stderr

    quiet = warden(config, "paper", "price", BTC, "67000")
    assert quiet.returncode == 0, quiet.stderr
    assert "last price 67000" in quiet.stdout and "no stop triggered" in quiet.stdout
    assert status(config)["positions"][0]["stop"]["state"] == "live"

    moved = warden(config, "paper", "price", BTC, "65000")

    assert moved.returncode == 0, moved.stderr
    assert "last price 65000" in moved.stdout
    assert "triggered" in moved.stdout and "filled at 65567.2" in moved.stdout
    assert status(config)["positions"] == []
    unknown = warden(config, "paper", "price", "DOGE/USDT:USDT", "1")
    assert unknown.returncode == 2
