"""Warden CLI processes for the run-CLI, agent-lease and failover suites: a child warden process
(Proc), the procs fixture that kills whatever a test left running, and readers for its JSON
output and the positions it guards."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.conftest import child_env, warden_cmd

BTC = "BTC/USDT:USDT"


class Proc:
    """A `warden` child process; stdout and stderr go to files that can be polled."""

    def __init__(self, cwd: Path, name: str, *args: str) -> None:
        self.out_path, self.err_path = cwd / f"{name}.out", cwd / f"{name}.err"
        self._out: IO[bytes] = open(self.out_path, "wb")  # noqa: SIM115 - closed in finish()
        self._err: IO[bytes] = open(self.err_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            warden_cmd(*args),
            cwd=cwd,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
        )

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def output(self) -> str:
        return self.stdout() + self.err_path.read_text(errors="replace")

    def wait_for(self, *needles: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            text = self.output()
            if all(n in text for n in needles):
                return
            missing = [n for n in needles if n not in text]
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"pid {self.proc.pid} (rc {self.proc.poll()}): never printed {missing}; "
                    f"output:\n{text[-4000:]}"
                )
            time.sleep(0.1)

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def finish(self, timeout: float = 60.0) -> int:
        """Wait for the exit (killing it past ``timeout``) and close the files."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        finally:
            self._out.close()
            self._err.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        self._out.close()
        self._err.close()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    try:
        yield started
    finally:
        for p in started:
            p.kill()


def warden(cwd: Path, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        warden_cmd(*args),
        cwd=cwd,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def warden_json(cwd: Path, *args: str) -> Any:
    res = warden(cwd, *args, "--json")
    assert res.returncode == 0, (args, res.returncode, res.stdout, res.stderr)
    return json.loads(res.stdout)


def guarded_positions(cwd: Path, *config: str) -> list[dict[str, Any]]:
    """`warden status --json`: every open position has a live stop of its full size."""
    status = warden_json(cwd, *config, "status")
    assert status["errors"] == []
    for p in status["positions"]:
        assert p["stop"] is not None, p
        assert p["stop"]["state"] == "live" and p["stop"]["size"] == p["size"], p
        assert p["stop"]["verified_at"] is not None, p
    return list(status["positions"])


def wait_until(check: Any, what: str, timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something truthy (waiting only; nothing is timed)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)


def roles(cwd: Path, cfg: tuple[str, str]) -> dict[int, str]:
    """`warden health --json`: pid -> role of each agent listed."""
    res = warden(cwd, *cfg, "health", "--json")
    assert res.returncode in (0, 1), res.stderr
    report = json.loads(res.stdout)
    return {int(a["owner"].split(":")[-2]): a["role"] for a in report["agents"]}
