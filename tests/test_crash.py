"""Crash safety with REAL processes: SIGKILL at each named crash point, then a restart.

For every crash point of ``trading.crashpoints`` a `warden open` process is killed there
(``WARDEN_CRASH_AT``), then `warden run` (guarding only, a 1 s watchdog) starts on the same
database. Within a generous poll it must hold: no duplicate position (exactly the intended size,
or none), every position has exactly one live stop read back and recorded as verified, no
intent left pending or unknown, no intent lost, and the dead holder's lease taken over (not
waited out). The daemon is then stopped with SIGTERM, cleanly.

Then `warden run` on a fast replay (both strategies, silently failing stops) is SIGKILLed at
seeded random moments and restarted each time, with a last clean run: after every restart the
same invariants hold, and no position was ever larger than one entry (sampled throughout).

The scenario functions live in ``tests/rig_crash.py``; ``benchmarks/reliability.py`` runs them
many more times. Children are always killed and reaped in ``finally``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import child_env
from tests.rig_crash import (
    CASES,
    WAIT,
    Agent,
    agents,
    crash_and_recover,
    query,
    random_kills,
)
from trading import crashpoints
from trading.crashpoints import ENV as CRASH_ENV

# --- configs -----------------------------------------------------------------------------------


# --- processes ---------------------------------------------------------------------------------


# --- the exchange and the journal, read straight from the shared database ----------------------


# --- a. each named crash point -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("point", list(CASES))
def test_sigkill_at_a_crash_point_then_restart_recovers(tmp_path: Path, point: str) -> None:
    result = crash_and_recover(tmp_path, point)
    assert result.point == point


@pytest.mark.slow
@pytest.mark.parametrize("point", ["during_emergency_close", "close_after_close_sent"])
def test_a_later_restart_records_no_exit_twice(tmp_path: Path, point: str) -> None:
    """The exits and incidents written at the first restart are not written again."""
    crash_and_recover(tmp_path, point)
    db = tmp_path / "warden.db"
    rows = "SELECT (SELECT COUNT(*) FROM exit), (SELECT COUNT(*) FROM incident)"
    before = query(db, rows)
    with agents() as started:
        agent = Agent(tmp_path / "warden.toml", "run-again")
        started.append(agent)
        agent.wait_for("reconcile.done")
        assert agent.terminate() == 0, agent.text()[-3000:]
    assert query(db, rows) == before == [(1, len(CASES[point].incidents))]


EMERGENCY_CASES = [
    "emergency_after_intent_stored",
    "after_emergency_close_sent",
    "during_emergency_close",
    "after_emergency_record",
]


@pytest.mark.slow
@pytest.mark.parametrize("point", EMERGENCY_CASES)
def test_the_emergency_close_alert_survives_a_sigkill_at_every_point(
    tmp_path: Path, point: str
) -> None:
    """`warden open` whose stops all fail silently is killed at each point of its emergency
    close (order stored, sent, filled and settled, recorded); after `warden run` restarts, the
    position is flat, no intent is unresolved (``crash_and_recover``), and the emergency
    close's critical alert is in the outbox exactly once, with its exit and incident."""
    crash_and_recover(tmp_path, point)
    db = tmp_path / "warden.db"
    alerts = query(
        db,
        "SELECT severity, text FROM alert_outbox WHERE key LIKE 'incident:%:emergency_close'",
    )
    assert len(alerts) == 1, alerts
    [(severity, text)] = alerts
    assert severity == "critical" and text.startswith("emergency_close paper:main BTC/USDT:USDT")
    [(exits, closes)] = query(
        db,
        "SELECT (SELECT COUNT(*) FROM exit), "
        "(SELECT COUNT(*) FROM incident WHERE kind = 'emergency_close')",
    )
    assert (exits, closes) == (1, 1)


# --- b. random SIGKILLs of the daemon during a replay ------------------------------------------


@pytest.mark.slow
def test_random_sigkills_during_a_replay_run(tmp_path: Path) -> None:
    report = random_kills(tmp_path, kills=4, seed=11)
    assert report.kills == report.survived == 4
    assert report.samples > 50
    assert report.entries > 0  # it did trade


# --- c. the crash point facility itself ---------------------------------------------------------


def test_crash_at_parses_a_name_and_an_optional_count() -> None:
    assert crashpoints.parse(None) is None
    assert crashpoints.parse("  ") is None
    assert crashpoints.parse("after_stop_sent") == ("after_stop_sent", 1)
    assert crashpoints.parse("after_intent_stored:2") == ("after_intent_stored", 2)
    for bad in ("after_stop_snet", "after_stop_sent:0", "after_stop_sent:x", "after_stop_sent:"):
        with pytest.raises(ValueError, match=CRASH_ENV):
            crashpoints.parse(bad)


@pytest.mark.slow
@pytest.mark.parametrize(("target", "survives"), [("", 3), ("during_verification:2", 1)])
def test_a_crash_point_kills_only_when_armed_and_on_its_count(target: str, survives: int) -> None:
    code = (
        "from trading.crashpoints import crash_point\n"
        "for _ in range(3):\n"
        "    crash_point('after_stop_sent')\n"  # another point: never fires
        "    crash_point('during_verification')\n"
        "    print('alive', flush=True)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        env=child_env(**{CRASH_ENV: target}),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert res.stdout.split() == ["alive"] * survives
    assert res.returncode == (0 if survives == 3 else -signal.SIGKILL)
