"""One agent per store, and a lone agent never skips its own cycles (bot/agent.py,
storage/agent_lease.py, bot/account_gate.py).

Real `warden run` processes on one SQLite file (children killed and reaped in ``finally``): a second
agent exits 75 naming the holder; ``--standby`` takes over from a SIGKILLed agent, and from one
SIGSTOPped past its lease, which steps down when it wakes; a demo-paced lone agent records no
cycle skipped because of its own watchdog; a manual `warden lock --hold` across replay ticks is
one recorded skip, then the cycle runs once the hold is released. In-process tests pin the lease
semantics (a lapse nobody took over is not a loss; a takeover fences the beacon).
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from bot.agent import AgentBusy, AgentSeat
from storage.agent_lease import AGENT_SCOPE
from storage.daemon_beacon import Beacon, BeaconStore
from storage.db import Database
from tests.rig_cli_processes import (
    BTC,
    Proc,
    guarded_positions,
    procs,
    roles,
    wait_until,
    warden,
    warden_json,
)

__all__ = ["procs"]  # the fixture, from tests/rig_cli_processes.py


def agent_config(
    root: Path,
    *,
    seconds_per_candle: float = 0.3,
    watchdog: float = 1.0,
    ttl: float = 3.0,
    grace: float = 30.0,
) -> tuple[str, str]:
    """The demo's shape (paper replay of the bundled data, two strategies on one account, the
    silent stop failures) at a fast pace, with a short agent/execution lease TTL."""
    path = root / "warden.toml"
    path.write_text(
        f'[storage]\npath = "{root / "warden.db"}"\n'
        f"[guardian]\nverify_delay_seconds = 0.1\nwatchdog_seconds = {watchdog}\n"
        f"[lease]\nttl_seconds = {ttl}\nheartbeat_seconds = {ttl / 3:g}\n"
        f"[scheduler]\nmisfire_grace_seconds = {grace}\n"
        '[exchanges.paper]\nkind = "paper"\n'
        "[exchanges.paper.faults]\nseed = 7\nstop_silent_fail = 1\nstop_silent_fail_rate = 0.15\n"
        "[exchanges.paper.replay]\n"
        f'data = "bundled"\nseconds_per_candle = {seconds_per_candle}\nwarmup_candles = 120\n'
        "[[strategies]]\n"
        'name = "btc_momentum"\nkind = "momentum_breakout"\nexchange = "paper"\n'
        f'symbols = ["{BTC}"]\ntimeframe = "30m"\n'
        "[[strategies]]\n"
        'name = "eth_bollinger"\nkind = "bollinger"\nexchange = "paper"\n'
        'symbols = ["ETH/USDT:USDT"]\ntimeframe = "30m"\n'
        '[strategies.params]\nmode = "mean_reversion"\n',
        encoding="utf-8",
    )
    return "--config", str(path)


def query(root: Path, sql: str, *args: Any) -> list[Any]:
    conn = sqlite3.connect(root / "warden.db", timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def cycles(root: Path) -> list[tuple[str, str, str, float, float, str | None]]:
    return query(
        root,
        "SELECT strategy, trigger, outcome, started_at, ended_at, error FROM cycle ORDER BY id",
    )


def alerts(root: Path, severity: str) -> list[str]:
    rows = query(root, "SELECT text FROM alert_outbox WHERE severity = ? ORDER BY id", severity)
    return [r[0] for r in rows]


# --- one agent per store ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_second_agent_exits_75_naming_the_holder(tmp_path: Path, procs: list[Proc]) -> None:
    cfg = agent_config(tmp_path)
    first = Proc(tmp_path, "first", *cfg, "run")
    procs.append(first)
    first.wait_for("Ctrl-C stops", "reconcile.done", timeout=45)
    second = warden(tmp_path, *cfg, "run")
    assert second.returncode == 75, (second.stdout, second.stderr)
    assert "busy: another agent runs on this database" in second.stderr
    assert f":{first.proc.pid}:" in second.stderr and "active agent" in second.stderr
    assert "--standby" in second.stderr
    assert "Ctrl-C stops" not in second.stdout  # it started nothing
    assert roles(tmp_path, cfg) == {first.proc.pid: "active"}
    [[holder]] = query(tmp_path, "SELECT owner FROM lease WHERE scope = ?", AGENT_SCOPE)
    assert f":{first.proc.pid}:" in holder
    first.signal(signal.SIGINT)
    assert first.finish() == 0, first.output()[-3000:]
    # a clean stop releases the agent lease with the rest
    assert warden_json(tmp_path, *cfg, "lock")["leases"] == []


@pytest.mark.slow
def test_standby_takes_over_from_a_killed_agent_with_a_critical_alert(
    tmp_path: Path, procs: list[Proc]
) -> None:
    cfg = agent_config(tmp_path)
    active = Proc(tmp_path, "active", *cfg, "run")
    procs.append(active)
    active.wait_for("reconcile.done", timeout=45)
    standby = Proc(tmp_path, "standby", *cfg, "run", "--standby")
    procs.append(standby)
    standby.wait_for("warden: standby: the active agent is", timeout=30)
    assert f":{active.proc.pid} " in standby.stdout()
    want = {active.proc.pid: "active", standby.proc.pid: "standby"}
    wait_until(lambda: roles(tmp_path, cfg) == want, "health lists the active and the standby")
    # a standby runs nothing: no cycles, no execution lease, no alerts of its own
    assert "reconcile" not in standby.output() and "[ALERT" not in standby.output()
    held = warden_json(tmp_path, *cfg, "lock")["leases"]
    assert not [h for h in held if f":{standby.proc.pid}:" in h["owner"]], held

    active.proc.send_signal(signal.SIGKILL)
    assert active.finish() == -signal.SIGKILL
    standby.wait_for("took over from", "reconcile.done", "Ctrl-C stops", timeout=45)
    text = standby.stdout()
    assert f":{active.proc.pid} (holder process dead)" in text
    assert any(
        f":{standby.proc.pid} took over from" in a
        and f":{active.proc.pid} (holder process dead)" in a
        for a in alerts(tmp_path, "critical")
    ), alerts(tmp_path, "critical")
    standby.wait_for("[ALERT CRITICAL]", timeout=30)  # delivered by the new active agent
    wait_until(
        lambda: roles(tmp_path, cfg) == {standby.proc.pid: "active"}, "the standby is active"
    )
    assert warden(tmp_path, *cfg, "health").returncode == 0
    standby.signal(signal.SIGINT)
    assert standby.finish() == 0, standby.output()[-3000:]
    assert "Traceback" not in standby.output()
    assert warden_json(tmp_path, *cfg, "lock")["leases"] == []
    guarded_positions(tmp_path, *cfg)


@pytest.mark.slow
def test_standby_becomes_active_when_the_agent_stops_cleanly(
    tmp_path: Path, procs: list[Proc]
) -> None:
    cfg = agent_config(tmp_path)
    active = Proc(tmp_path, "active", *cfg, "run")
    procs.append(active)
    active.wait_for("reconcile.done", timeout=45)
    standby = Proc(tmp_path, "standby", *cfg, "run", "--standby")
    procs.append(standby)
    standby.wait_for("warden: standby:", timeout=30)
    active.signal(signal.SIGTERM)
    assert active.finish() == 0, active.output()[-3000:]
    standby.wait_for("is active after standing by", "reconcile.done", timeout=45)
    assert any("is active after standing by" in a for a in alerts(tmp_path, "info"))
    assert not any("took over" in a for a in alerts(tmp_path, "critical"))
    wait_until(
        lambda: roles(tmp_path, cfg) == {standby.proc.pid: "active"}, "the standby is active"
    )
    standby.signal(signal.SIGINT)
    assert standby.finish() == 0, standby.output()[-3000:]


@pytest.mark.slow
def test_an_agent_paused_past_its_lease_steps_down_for_the_standby(
    tmp_path: Path, procs: list[Proc]
) -> None:
    cfg = agent_config(tmp_path, ttl=3.0)
    active = Proc(tmp_path, "active", *cfg, "run")
    procs.append(active)
    active.wait_for("reconcile.done", timeout=45)
    standby = Proc(tmp_path, "standby", *cfg, "run", "--standby")
    procs.append(standby)
    standby.wait_for("warden: standby:", timeout=30)
    active.signal(signal.SIGSTOP)
    try:
        standby.wait_for("took over from", "reconcile.done", timeout=45)
    finally:
        active.signal(signal.SIGCONT)
    assert f":{active.proc.pid} (holder expired)" in standby.stdout()
    # woken up, it finds the agent lease taken over and steps down instead of acting beside it
    assert active.finish() == 75, active.output()[-3000:]
    out = active.output()
    assert "stepped down: the agent lease was taken over by" in out
    assert f":{standby.proc.pid} (token " in out
    assert "Traceback" not in out
    assert any("stepped down" in a for a in alerts(tmp_path, "critical"))
    assert standby.proc.poll() is None
    wait_until(
        lambda: roles(tmp_path, cfg) == {standby.proc.pid: "active"}, "the standby is active"
    )
    standby.signal(signal.SIGINT)
    assert standby.finish() == 0, standby.output()[-3000:]
    guarded_positions(tmp_path, *cfg)


# --- a lone agent never skips its own cycles ----------------------------------------------------


@pytest.mark.slow
def test_a_lone_agent_never_skips_a_cycle_because_of_its_own_watchdog(
    tmp_path: Path, procs: list[Proc]
) -> None:
    """Before the account gate, this run (a candle every 0.2 s, the watchdog every second)
    recorded about one cycle in five as skipped_busy, holder: the agent's own stop watchdog."""
    cfg = agent_config(tmp_path, seconds_per_candle=0.2, watchdog=1.0)
    run = Proc(tmp_path, "run", *cfg, "run")
    procs.append(run)
    run.wait_for("reconcile.done", timeout=45)
    wait_until(lambda: len(cycles(tmp_path)) >= 80, "80 cycles", timeout=90)
    run.signal(signal.SIGINT)
    assert run.finish() == 0, run.output()[-3000:]
    records = cycles(tmp_path)
    skipped = [r for r in records if r[2] == "skipped_busy"]
    assert skipped == [], skipped[:5]
    assert {r[0] for r in records} == {"btc_momentum", "eth_bollinger"}


@pytest.mark.slow
def test_a_manual_hold_across_replay_ticks_is_one_recorded_skip_then_the_cycle_runs(
    tmp_path: Path, procs: list[Proc]
) -> None:
    cfg = agent_config(tmp_path, seconds_per_candle=1.0, grace=30.0)
    run = Proc(tmp_path, "run", *cfg, "run")
    procs.append(run)
    run.wait_for("reconcile.done", timeout=45)
    wait_until(lambda: len(cycles(tmp_path)) >= 2, "the first cycles")
    hold = Proc(tmp_path, "hold", *cfg, "lock", "--hold", "3.5", "--purpose", "maintenance by hand")
    procs.append(hold)
    hold.wait_for("holding paper:main", timeout=30)
    assert hold.finish() == 0, hold.output()
    run.wait_for("cycle.retried", timeout=45)
    wait_until(
        lambda: any(r[2] != "skipped_busy" for r in cycles(tmp_path)[-2:]), "a cycle after it"
    )
    run.signal(signal.SIGINT)
    assert run.finish() == 0, run.output()[-3000:]
    records = cycles(tmp_path)
    skipped = [i for i, r in enumerate(records) if r[2] == "skipped_busy"]
    # the hold spanned several replay ticks: one decision was owed, recorded once, naming it
    assert len(skipped) == 1, records
    (i,) = skipped
    assert f":{hold.proc.pid}:" in (records[i][5] or "")
    assert "maintenance by hand" in (records[i][5] or "")
    # the owed cycle ran once the holder let go: the next record is a decision, after the skip
    retried = records[i + 1]
    assert retried[0] == records[i][0] and retried[1] == "replay"
    assert retried[2] in ("hold", "entered", "exited", "refused", "emergency_closed"), retried
    assert retried[3] >= records[i][4]
    assert "cycle.retried" in run.output() and "status=done" in run.output()


# --- the agent lease in this process ------------------------------------------------------------


async def _expire(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(
            "UPDATE lease SET expires_at = ? WHERE scope = ?", (time.time() - 1, AGENT_SCOPE)
        )


async def test_a_lapse_nobody_took_over_is_not_a_loss_and_a_takeover_fences_the_beacon(
    db: Database,
) -> None:
    first = AgentSeat(db, ttl=30.0, heartbeat=10.0)
    await first.claim()
    second = AgentSeat(db, ttl=30.0, heartbeat=10.0)
    try:
        await second.claim()
        raise AssertionError("a second agent claimed a held store")
    except AgentBusy as exc:
        assert exc.holder.owner == first.owner and "active agent" in str(exc)
    assert first.fence is not None
    # paused past its expiry, nobody took over: its unchanged token says it is still the agent
    await _expire(db)
    assert await first.store.extend(first.fence, 30.0) is not None
    assert await first.still_active()

    await _expire(db)
    stop = asyncio.Event()
    assert await asyncio.wait_for(second.stand_by(stop), timeout=10)
    assert second.took_over is not None and second.took_over.owner == first.owner
    assert second.takeover_reason == "expired" and "(holder expired)" in second.takeover_text()
    assert second.fence is not None and second.fence.token == first.fence.token + 1
    # the old agent: no longer active, and its beacon is not written any more
    assert not await first.still_active()
    assert first.lost_reason is not None and "taken over by" in first.lost_reason
    store = BeaconStore(db)
    now = time.time()
    beacon = Beacon(first.owner, now, now, 1.0, ("paper:main",))
    assert await store.beat(beacon, first.fence) is False
    assert await store.all() == []
    assert await store.beat(Beacon(second.owner, now, now, 1.0, ("paper:main",)), second.fence)
    assert [b.role for b in await store.all()] == ["active"]
    # releasing with a stale token changes nothing
    assert not await first.store.release(first.fence)
    assert await second.still_active()
