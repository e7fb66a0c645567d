"""`warden ... --json | head -1`: a reader that goes away is not an internal error. Real
processes and real pipes: the child writes into a pipe whose reading end is closed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import child_env, warden_cmd

pytestmark = pytest.mark.slow  # real OS processes

BROKEN_PIPE = 141  # bot.cli.BROKEN_PIPE: 128 + SIGPIPE, what a shell reports for `yes | head -1`


def _closed_reader(tmp_path: Path, *args: str) -> tuple[int, str]:
    """Run warden with its stdout on a pipe nobody reads any more (closed before it writes)."""
    proc = subprocess.Popen(
        warden_cmd(*args),
        cwd=tmp_path,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first byte
    err = proc.stderr.read().decode()
    return proc.wait(timeout=120), err


def test_a_closed_pipe_exits_quietly_with_141(tmp_path: Path) -> None:
    code, err = _closed_reader(tmp_path, "doctor", "--json")
    assert code == BROKEN_PIPE, err
    assert err == ""  # no "internal error: BrokenPipeError", no "Exception ignored"


def test_a_standalone_command_on_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    code, err = _closed_reader(tmp_path, "init", "--dir", str(tmp_path / "new"), "--yes")
    assert code == BROKEN_PIPE, err
    assert err == ""
    assert (tmp_path / "new" / "warden.toml").is_file()  # the work was done before the print


def test_head_1_reads_one_line_and_warden_says_nothing_more(tmp_path: Path) -> None:
    # the whole bundled backtest's JSON (about 94 KB) is larger than a pipe's buffer (64 KB on
    # Linux): head exits while warden still writes
    shell = " ".join(warden_cmd("backtest", "--json"))
    out = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {shell} | head -1"],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.stdout == "{\n"
    assert "internal error" not in out.stderr and "BrokenPipeError" not in out.stderr, out.stderr
    assert out.stderr == ""
    assert out.returncode == BROKEN_PIPE  # pipefail: the output was cut short
