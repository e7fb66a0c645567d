"""An active/standby pair on PostgreSQL (bot/agent.py, storage/agent_lease.py): real `warden run
--standby` processes against the test cluster's real server, each claiming a host of its own
(``WARDEN_AGENT_HOST``), so the standby never judges the active's pid: it takes over only when the
agent lease expires by the database's clock, as across machines.

Four ways to lose the active: SIGKILL while a strategy cycle holds the account, SIGKILL between an
entry's stored intent and its outcome, SIGSTOP until the standby took over then SIGCONT, and a
partition (its role refused new logins and its connections ended with ``pg_terminate_backend``,
then let back in). Each ends the same way: one position per symbol of the size its entry asked
for, every position with a live stop of its full size read back from the exchange, no intent
left unresolved, and every alert in the outbox delivered, each exactly once across both agents'
output. An old active that comes back steps down (a critical alert, delivered by the new one)
and stands by again. Nothing here is timed: the waits only bound a hung process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

import storage.lease as lease_module
from bot.agent import HOST_ENV, AgentBusy, AgentSeat
from bot.drills.failover import delivered_texts
from bot.drills.pg_cluster import Cluster
from storage.db import Database
from tests.rig_cli_processes import (
    BTC,
    Proc,
    guarded_positions,
    procs,
    roles,
    wait_until,
    warden_json,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
__all__ = ["procs"]

HOST_A, HOST_B = "host-a", "host-b"


def pair_config(path: Path, url: str, *, latency_ms: int = 0, ttl: float = 3.0) -> tuple[str, str]:
    """The demo's shape (paper replay of the bundled data, two strategies on one account, stop
    failures the watchdog repairs) stored in PostgreSQL, with a short lease and watchdog."""
    path.write_text(
        f'[storage]\nurl = "{url}"\n'
        "[guardian]\nverify_delay_seconds = 0.1\nwatchdog_seconds = 1\n"
        f"[lease]\nttl_seconds = {ttl}\nheartbeat_seconds = {ttl / 3:g}\n"
        "[scheduler]\nmisfire_grace_seconds = 30\n"
        '[exchanges.paper]\nkind = "paper"\n'
        "[exchanges.paper.faults]\nseed = 7\nstop_silent_fail = 1\nstop_silent_fail_rate = 0.15\n"
        f"latency_ms = {latency_ms}\n"
        "[exchanges.paper.replay]\n"
        'data = "bundled"\nseconds_per_candle = 0.3\nwarmup_candles = 120\n'
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


def query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return list(conn.execute(sql, args).fetchall())


def agent(cwd: Path, name: str, host: str, cfg: tuple[str, str], mp: pytest.MonkeyPatch) -> Proc:
    """`warden run --standby` claiming ``host`` (the child copies the environment when made)."""
    mp.setenv(HOST_ENV, host)
    try:
        return Proc(cwd, name, *cfg, "run", "--standby")
    finally:
        mp.delenv(HOST_ENV)


def start_pair(
    tmp_path: Path,
    procs: list[Proc],
    mp: pytest.MonkeyPatch,
    cfg_a: tuple[str, str],
    cfg_b: tuple[str, str] | None = None,
) -> tuple[Proc, Proc]:
    active = agent(tmp_path, "a", HOST_A, cfg_a, mp)
    procs.append(active)
    active.wait_for("Ctrl-C stops", "reconcile.done", timeout=60)
    standby = agent(tmp_path, "b", HOST_B, cfg_b or cfg_a, mp)
    procs.append(standby)
    standby.wait_for("warden: standby: the active agent is", timeout=60)
    assert f"{HOST_A}:{active.proc.pid} " in standby.stdout()
    return active, standby


def held_by(url: str, proc: Proc, purpose_like: str) -> bool:
    rows = query(
        url,
        "SELECT 1 FROM lease WHERE owner LIKE %s AND purpose LIKE %s",
        f"%:{proc.proc.pid}:%",
        purpose_like,
    )
    return bool(rows)


def took_over(new: Proc, old: Proc) -> None:
    new.wait_for("took over from", "reconcile.done", timeout=90)
    text = new.stdout()
    assert f"{HOST_B}:{new.proc.pid} took over from {HOST_A}:{old.proc.pid} (holder expired)" in (
        text
    ), text[-3000:]


def judge(
    tmp_path: Path, cfg: tuple[str, str], url: str, agents: list[Proc]
) -> list[dict[str, Any]]:
    """After every agent stopped: nothing doubled, nothing unprotected, every alert once."""
    positions = guarded_positions(tmp_path, *cfg)  # every position: a live verified stop
    symbols = Counter(p["symbol"] for p in positions)
    assert all(n == 1 for n in symbols.values()), positions
    for p in positions:
        [(size,)] = query(
            url,
            "SELECT size FROM intent WHERE kind = 'entry' AND symbol = %s AND status = 'filled' "
            "ORDER BY id DESC LIMIT 1",
            p["symbol"],
        )
        assert p["size"] == pytest.approx(size), (p, size)  # one entry's size, not two
    assert query(url, "SELECT id, kind FROM intent WHERE status = 'pending'") == []
    rows = query(url, "SELECT text, delivered_at FROM alert_outbox ORDER BY id")
    assert [t for t, at in rows if at is None] == []
    expected = Counter(str(t).splitlines()[0] for t, _at in rows)
    printed = delivered_texts(*(a.output() for a in agents))
    assert printed == expected, (printed - expected, expected - printed)
    takeovers = [t for t in expected if "took over from" in t]
    assert len(takeovers) == 1, takeovers
    return positions


def stop_all(*agents: Proc) -> None:
    for a in agents:
        if a.proc.poll() is None:
            a.signal(signal.SIGINT)
    for a in agents:
        if a.proc.returncode is None:
            code = a.finish()
            assert code == 0, a.output()[-3000:]
            assert "Traceback" not in a.output()


def test_sigkill_mid_cycle_standby_takes_over(
    tmp_path: Path, procs: list[Proc], pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = pair_config(tmp_path / "warden.toml", pg_url, latency_ms=100)
    active, standby = start_pair(tmp_path, procs, monkeypatch, cfg)
    # a strategy cycle holds the account: the kill lands inside it
    wait_until(lambda: held_by(pg_url, active, "%cycle%"), "a cycle of the active agent runs")
    active.proc.send_signal(signal.SIGKILL)
    assert active.finish() == -signal.SIGKILL
    took_over(standby, active)
    wait_until(lambda: roles(tmp_path, cfg) == {standby.proc.pid: "active"}, "standby active")
    standby.wait_for("[ALERT CRITICAL]", timeout=30)
    stop_all(standby)
    judge(tmp_path, cfg, pg_url, [active, standby])


def test_sigkill_mid_open_leaves_one_protected_position(
    tmp_path: Path, procs: list[Proc], pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = pair_config(tmp_path / "warden.toml", pg_url, latency_ms=300)
    active, standby = start_pair(tmp_path, procs, monkeypatch, cfg)

    def entry_in_flight() -> list[tuple[Any, ...]]:
        return query(
            pg_url, "SELECT id, symbol FROM intent WHERE kind = 'entry' AND status = 'pending'"
        )

    [(intent_id, symbol)] = wait_until(entry_in_flight, "an entry stored, not yet resolved")
    active.proc.send_signal(signal.SIGKILL)
    assert active.finish() == -signal.SIGKILL
    took_over(standby, active)
    # the new active resolved the entry the old one left in flight (from the exchange's record)
    wait_until(
        lambda: (
            query(pg_url, "SELECT status FROM intent WHERE id = %s", intent_id)[0][0] != "pending"
        ),
        "the interrupted entry resolved",
    )
    standby.wait_for("[ALERT CRITICAL]", timeout=30)
    stop_all(standby)
    positions = judge(tmp_path, cfg, pg_url, [active, standby])
    [(status,)] = query(pg_url, "SELECT status FROM intent WHERE id = %s", intent_id)
    if status == "filled":  # the order reached the exchange before the kill: it is guarded
        assert symbol in {p["symbol"] for p in positions}, positions


def test_sigstop_past_the_lease_then_sigcont_steps_down(
    tmp_path: Path, procs: list[Proc], pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = pair_config(tmp_path / "warden.toml", pg_url)
    active, standby = start_pair(tmp_path, procs, monkeypatch, cfg)
    active.signal(signal.SIGSTOP)
    try:
        took_over(standby, active)
    finally:
        active.signal(signal.SIGCONT)
    # its next fenced write or check finds the token stale: it steps down and stands by
    active.wait_for("stepped down", "back to standby", timeout=60)
    assert "agent.lost" in active.output()
    want = {standby.proc.pid: "active", active.proc.pid: "standby"}
    wait_until(lambda: roles(tmp_path, cfg) == want, "roles swapped")
    wait_until(
        lambda: any(
            "stepped down" in t and at is not None
            for t, at in query(pg_url, "SELECT text, delivered_at FROM alert_outbox")
        ),
        "the step-down alert delivered by the new active",
    )
    stop_all(standby, active)
    judge(tmp_path, cfg, pg_url, [active, standby])
    down = [a for a in delivered_texts(standby.output()) if "stepped down" in a]
    assert len(down) == 1 and f"{HOST_A}:{active.proc.pid}" in down[0], down


@contextlib.contextmanager
def partitionable_role(pg_cluster: Cluster) -> Iterator[str]:
    """A login role for host A only: refusing it new logins and ending its sessions cuts host A
    off the database, as a network partition would, while host B keeps its own role."""
    role = f"warden_host_a_{os.getpid()}"
    with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN SUPERUSER")
    try:
        yield role
    finally:
        with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_partitioned_active_comes_back_and_steps_down(
    tmp_path: Path,
    procs: list[Proc],
    pg_url: str,
    pg_cluster: Cluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with partitionable_role(pg_cluster) as role:
        url_a = pg_url.replace(f"postgresql://{pg_cluster.superuser}@", f"postgresql://{role}@")
        assert url_a != pg_url
        cfg_a = pair_config(tmp_path / "a.toml", url_a)
        cfg = pair_config(tmp_path / "warden.toml", pg_url)
        active, standby = start_pair(tmp_path, procs, monkeypatch, cfg_a, cfg)
        with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
            admin.execute(f"ALTER ROLE {role} NOLOGIN")
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            ).fetchall()
        assert ended, "host A had a session to end"
        try:
            took_over(standby, active)
        finally:
            with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
                admin.execute(f"ALTER ROLE {role} LOGIN")
        active.wait_for("stepped down", "back to standby", timeout=60)
        want = {standby.proc.pid: "active", active.proc.pid: "standby"}
        wait_until(lambda: roles(tmp_path, cfg) == want, "roles swapped")
        stop_all(standby, active)
        judge(tmp_path, cfg, pg_url, [active, standby])
        assert warden_json(tmp_path, *cfg, "lock")["leases"] == []


def drill_config(path: Path) -> tuple[str, str]:
    path.write_text(
        "[lease]\nttl_seconds = 3\nheartbeat_seconds = 1\n"
        "[guardian]\nwatchdog_seconds = 1\nverify_delay_seconds = 0.1\n",
        encoding="utf-8",
    )
    return "--config", str(path)


def test_drill_failover_holds_and_prints_the_timings(
    tmp_path: Path, procs: list[Proc], pg_cluster: Cluster
) -> None:
    """The drill starts its own cluster from the same binaries the tests found."""
    drill = Proc(tmp_path, "drill", *drill_config(tmp_path / "warden.toml"), "drill", "failover")
    procs.append(drill)
    assert drill.finish(timeout=180) == 0, drill.output()[-4000:]
    out = drill.stdout()
    assert "drill failover: safety net HELD" in out and "FAIL " not in out
    assert "kill -> takeover" in out and "(budget: TTL + one watchdog period = 4s)" in out
    assert "each alert delivered exactly once across both agents" in out
    assert not (tmp_path / "warden.db").exists()  # the user's store was never touched


def test_drill_failover_without_server_binaries_names_what_is_missing(
    tmp_path: Path, procs: list[Proc], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PG_BINDIR", str(tmp_path / "no-postgres"))
    drill = Proc(tmp_path, "drill", *drill_config(tmp_path / "warden.toml"), "drill", "failover")
    procs.append(drill)
    assert drill.finish() == 1, drill.output()[-4000:]
    out = drill.stdout()
    assert "FAIL a throwaway PostgreSQL cluster could not be started" in out
    assert "PostgreSQL server binaries not found" in out and "PG_BINDIR" in out
    assert "safety net FAILED" in out


async def test_a_standby_whose_clock_runs_late_still_takes_over_an_expired_lease(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Expiry is judged by the server's clock in the standby's look as in its claim: a standby
    host an hour behind would otherwise wait an hour for a lease that expired long ago."""
    active_db, standby_db = await Database.open(pg_url), await Database.open(pg_url)
    try:
        monkeypatch.setenv(HOST_ENV, HOST_A)
        active = AgentSeat(active_db, ttl=0.5, heartbeat=0.2)
        await active.claim()
        monkeypatch.setenv(HOST_ENV, HOST_B)
        real = time.time
        monkeypatch.setattr(lease_module, "time", SimpleNamespace(time=lambda: real() - 3600))
        standby = AgentSeat(standby_db, ttl=0.5, heartbeat=0.2)
        with pytest.raises(AgentBusy):
            await standby.claim()
        # the active never beats (no office): its lease lapses on the server's clock
        stop = asyncio.Event()
        assert await asyncio.wait_for(standby.stand_by(stop), timeout=60) is True
        assert standby.took_over is not None and standby.took_over.owner == active.owner
        assert standby.takeover_reason == "expired"
        assert not await active.still_active()
        assert active.lost_reason is not None and f"{HOST_B}:" in active.lost_reason
    finally:
        await active_db.close()
        await standby_db.close()


async def test_a_standby_outlives_its_connection_being_killed(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A standby whose session is ended (a server restart, a blip) keeps standing by: its next
    look connects again, and it still takes over when the active's lease expires."""
    active_db, standby_db = await Database.open(pg_url), await Database.open(pg_url)
    try:
        monkeypatch.setenv(HOST_ENV, HOST_A)
        active = AgentSeat(active_db, ttl=3.0, heartbeat=1.0)
        await active.claim()
        monkeypatch.setenv(HOST_ENV, HOST_B)
        standby = AgentSeat(standby_db, ttl=3.0, heartbeat=0.2)
        async with standby_db.read() as conn:
            row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
        assert row is not None
        stop = asyncio.Event()
        waiting = asyncio.create_task(standby.stand_by(stop))
        await asyncio.sleep(0.5)  # it is looking, the active's lease still runs
        assert not waiting.done()
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (int(row[0]),))
        assert await asyncio.wait_for(waiting, timeout=60) is True
        assert standby.took_over is not None and standby.takeover_reason == "expired"
        assert "agent.standby_read_failed" in caplog.text
    finally:
        await active_db.close()
        await standby_db.close()
