"""Operating Warden: the warden CLI run in a child process on the test's own database
(./warden.db), shared by the ops and deployment suites."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import child_env, warden_cmd


def warden(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    # ./warden.db unless the test says otherwise (with no config the demo would use its own
    # ./warden-demo.db)
    return subprocess.run(
        warden_cmd(*args),
        cwd=cwd,
        env=env or child_env(WARDEN_DB=str(cwd / "warden.db")),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
