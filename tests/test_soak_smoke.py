"""The soak harness (benchmarks/soak.py) at its --quick size, with real processes: each part
runs end to end and judges what it ran. The full run is the benchmark's, not CI's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, child_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def soak(tmp_path: Path, *args: str) -> dict[str, object]:
    results = tmp_path / "soak.json"
    argv = [str(ROOT / "benchmarks" / "soak.py"), *args, "--quick", "--results", str(results)]
    res = subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    doc: dict[str, object] = json.loads(results.read_text(encoding="utf-8"))
    return doc


def test_quick_race_part_runs_persistent_racers_without_a_double(tmp_path: Path) -> None:
    """2 trials of 4 persistent racers running `warden open`'s own main(), the daemon and a
    Telegram /close: every racer answered every trial with a documented exit code, the
    trials were judged clean (refusals on record, one entry per winner), no double."""
    doc = soak(tmp_path, "races")
    [part] = doc["race_parts"]  # type: ignore[misc]
    assert part["trials"] == 2 and part["ok"] == 2, part["failures"]
    assert part["doubles"] == 0 and 0 < part["max_size"] <= 0.001
    # every racer's `warden open` reached a decision each trial (who wins depends on timing:
    # the daemon's strategy may hold the lease or the position first on a loaded machine)
    assert part["winners"] + part["busy"] + part["refused"] == 2 * 4
    assert part["other_codes"] == {}
    assert part["telegram_closes"] == 2 and part["samples"] > 20
    assert part["cpu_seconds"] > 0


def test_quick_outages_and_bad_inputs_lose_no_alert_and_send_no_order(tmp_path: Path) -> None:
    """The three outage scenarios for a few seconds each, and one bad-input property at its CI
    size: no order sent during an outage, no alert delivered twice, the inputs all handled."""
    doc = soak(tmp_path, "outages")
    [run] = doc["outage_runs"]  # type: ignore[misc]
    kinds = [o["name"].split(" ")[0] for o in run["outages"]]
    assert kinds == ["exchange", "Telegram", "database"]
    for o in run["outages"]:
        assert o["orders_during"] == 0 and o["twice"] == 0, o
        assert not o["out_of_order"], o
    assert not run["fuzz"]["failed"]
    assert sum(run["fuzz"]["tried"].values()) > 0
