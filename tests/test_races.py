"""Races with REAL processes: 16 `warden open` for one symbol at once, while the daemon runs
strategy cycles on that symbol and the owner's /close arrives through Telegram.

Every exchange call of every process takes ``LATENCY_MS`` (the paper exchange's latency fault),
as over a network, which widens the window between "no position yet" and the fill. A thread
samples the paper exchange's position throughout: it must never be larger than one entry (the
winner's 0.001, or the strategy's, sized the same). Every loser exits with a documented code
(75: the execution lease is busy; 1: refused by a safety guard, here the position that exists)
and its refusal is on record (the `refusal` table; a busy lease in `lease_refusal` too).

The /close goes through the real path: `warden run` with a bot token serves Telegram (the real
python-telegram-bot client) against the local fake Bot API server (``tests/fake_telegram.py``),
which a thread of the test runs; the owner sends /close, presses "Close", and the daemon waits
for the lease and closes. Repeated until it closed something (before that there may be nothing
to close yet).

The trial function lives in ``tests/rig_races.py``; ``benchmarks/reliability.py`` and
``benchmarks/soak.py`` run it many more times.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rig_races import PROCESSES, race_trial

pytestmark = pytest.mark.slow  # real OS processes

TRIALS = 3


def test_sixteen_opens_a_daemon_and_a_close_race_without_a_double(tmp_path: Path) -> None:
    reports = [race_trial(tmp_path / f"trial{t}", seed=t) for t in range(TRIALS)]
    assert sum(r.winners for r in reports) >= 1  # the race was real: somebody won it
    assert sum(r.busy for r in reports) >= 1  # and the lease turned somebody away
    for r in reports:
        assert r.winners + r.busy + r.refused == PROCESSES
        assert r.samples > 20
    assert sum(r.closed for r in reports) >= 1  # the /close did close a position mid-race
