"""`warden run`, `warden cycle --once` and `warden pause`/`resume` through the REAL CLI in child
processes sharing one SQLite file. Children are always killed and reaped in ``finally``.

One test runs the true embedded default (no config file, a candle every 1.5 s); the others use
a config that replicates it at a faster pace (``fast_demo_config``).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from bot.config import load_config
from bot.exchanges import build_paper_exchange
from storage.cycle_store import CycleStore
from storage.db import Database
from storage.journal_store import JournalStore
from tests.rig_cli_processes import (
    BTC,
    Proc,
    guarded_positions,
    procs,
    warden,
    warden_json,
)
from trading.journal import IntentKind, IntentStatus
from trading.models import OrderSide, StopState
from trading.paper import PaperExchange

pytestmark = pytest.mark.slow  # real OS processes

__all__ = ["procs"]  # the fixture, from tests/rig_cli_processes.py

# on the bundled data, with 122 candles closed, the 20-bar breakout goes short BTC
ENTRY_WARMUP = 122


def fast_demo_config(root: Path, seconds_per_candle: float = 0.3) -> Path:
    """The embedded default (bot/config/demo.py), at a faster pace."""
    path = root / "warden.toml"
    path.write_text(
        f'[storage]\npath = "{root / "warden.db"}"\n'
        "[guardian]\nverify_delay_seconds = 0.1\nwatchdog_seconds = 2.0\n"
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
    return path


def cycle_config(
    root: Path, *, exchanges: tuple[str, ...] = ("paper",), strategies: bool = True
) -> Path:
    """Paper replay on the bundled data where the first cycle enters, one strategy per
    exchange (named momo, momo_<exchange> for the others), a short verification delay."""
    text = f'[storage]\npath = "{root / "warden.db"}"\n[guardian]\nverify_delay_seconds = 0.1\n'
    for name in exchanges:
        text += (
            f'[exchanges.{name}]\nkind = "paper"\n'
            f"[exchanges.{name}.replay]\n"
            f'data = "bundled"\nseconds_per_candle = 60.0\nwarmup_candles = {ENTRY_WARMUP}\n'
        )
    for name in exchanges if strategies else ():
        text += (
            "[[strategies]]\n"
            f'name = "{"momo" if name == "paper" else "momo_" + name}"\n'
            f'kind = "momentum_breakout"\nexchange = "{name}"\nsymbols = ["{BTC}"]\n'
        )
    path = root / "warden.toml"
    path.write_text(text, encoding="utf-8")
    return path


def no_leases(cwd: Path, *config: str) -> None:
    assert warden_json(cwd, *config, "lock")["leases"] == []


# --- the embedded default, as the README's first command runs it -------------------------------


def test_embedded_default_runs_with_no_config_and_stops_cleanly_on_sigint(
    tmp_path: Path, procs: list[Proc]
) -> None:
    run = Proc(tmp_path, "run", "run")
    procs.append(run)
    run.wait_for("<built-in defaults>", "Ctrl-C stops", timeout=30)
    # an entry whose stop is read back live, the demo's silent stop failure caught and repaired,
    # and the running equity / P&L
    run.wait_for(
        "read back live after 2 attempts",
        "stop_placement_failed",
        "failCode 1000",
        "re-placed and verified live",
        "equity",
        "P&L",
        timeout=45,
    )
    time.sleep(1.0)
    run.signal(signal.SIGINT)
    assert run.finish() == 0, run.output()[-3000:]
    out = run.output()
    assert "warden: stopped;" in run.stdout()
    assert "[ALERT INFO]" in out and "entered short" in out
    assert "Traceback" not in out
    assert not (tmp_path / "warden.toml").exists()
    no_leases(tmp_path)
    positions = guarded_positions(tmp_path)
    assert positions, "the demo's BTC short is still open this early"


def test_run_stops_cleanly_on_sigterm(tmp_path: Path, procs: list[Proc]) -> None:
    config = fast_demo_config(tmp_path)
    run = Proc(tmp_path, "run", "--config", str(config), "run")
    procs.append(run)
    run.wait_for("Ctrl-C stops", timeout=30)
    run.wait_for("read back live", "failCode 1000", "P&L", timeout=45)
    run.signal(signal.SIGTERM)
    assert run.finish() == 0, run.output()[-3000:]
    assert "warden: stopped;" in run.stdout()
    assert "daemon.stopped" in run.output()
    no_leases(tmp_path, "--config", str(config))
    assert guarded_positions(tmp_path, "--config", str(config))


# --- two daemons on one account ---------------------------------------------------------------


def test_a_second_agent_on_one_database_is_refused_and_the_first_trades_alone(
    tmp_path: Path, procs: list[Proc]
) -> None:
    """One agent per database (issue 13): the second `warden run` exits 75 naming the holder
    instead of trading the shared account beside the first; the first never doubles."""
    config = fast_demo_config(tmp_path, seconds_per_candle=0.2)
    first = Proc(tmp_path, "first", "--config", str(config), "run")
    procs.append(first)
    first.wait_for("Ctrl-C stops", timeout=30)
    second = Proc(tmp_path, "second", "--config", str(config), "run")
    procs.append(second)
    assert second.finish() == 75, second.output()[-3000:]
    assert f":{first.proc.pid}:" in second.output(), second.output()[-2000:]
    assert "--standby" in second.output()
    deadline = time.monotonic() + 45
    while "entered" not in first.output():
        assert time.monotonic() < deadline, first.output()[-2000:]
        assert first.proc.poll() is None
        time.sleep(0.1)
    time.sleep(3.0)
    first.signal(signal.SIGINT)
    assert first.finish() == 0, first.output()[-3000:]
    no_leases(tmp_path, "--config", str(config))
    guarded_positions(tmp_path, "--config", str(config))
    entries, records = asyncio.run(_check_no_double(config))
    assert entries >= 1, "the run was too short to say anything"
    assert {r.scope for r in records} == {"paper:main"}


async def _check_no_double(config_path: Path) -> tuple[int, list[Any]]:
    """Replay every fill of the shared account: an entry only ever opens a flat symbol (never
    adds), and each open position has exactly one live stop of its full size."""
    config = load_config(config_path)
    db = await Database.open(config.storage.path)
    try:
        ex = build_paper_exchange(config, "paper", db)
        assert isinstance(ex, PaperExchange)
        net: dict[str, float] = {}
        entries = 0
        for t in await ex.trades():
            signed = t.size if t.side is OrderSide.BUY else -t.size
            before = net.get(t.symbol, 0.0)
            if not t.reduce_only:
                entries += 1
                assert abs(before) < 1e-12, f"{t.symbol}: entry {t} added to {before}"
            net[t.symbol] = before + signed
        stops = await ex.open_stops()
        positions = await ex.positions()
        for p in positions:
            signed = p.size if p.side.value == "long" else -p.size
            assert net[p.symbol] == pytest.approx(signed)
            mine = [s for s in stops if s.symbol == p.symbol]
            assert len(mine) == 1, (p, mine)
            assert mine[0].state is StopState.LIVE and mine[0].size == p.size
        assert {s.symbol for s in stops} <= {p.symbol for p in positions}
        journal = JournalStore(db)
        filled = [
            i
            for i in await journal.intents(None, 1000)
            if i.kind is IntentKind.ENTRY and i.status is IntentStatus.FILLED
        ]
        assert len(filled) == entries  # every entry on the exchange is one of Warden's intents
        return entries, await CycleStore(db).recent(None, 1000)
    finally:
        await db.close()


# --- warden cycle --once ----------------------------------------------------------------------


def test_cycle_once_runs_the_strategy_and_prints_its_outcome(tmp_path: Path) -> None:
    config = cycle_config(tmp_path)
    res = warden(tmp_path, "--config", str(config), "cycle", "--once", "--json")
    assert res.returncode == 0, res.stderr
    (cycle,) = json.loads(res.stdout)["cycles"]
    assert cycle["strategy"] == "momo" and cycle["status"] == "done"
    assert cycle["outcome"] == "entered", cycle
    assert "broke the 20-bar low" in cycle["detail"] and "live" in cycle["detail"]
    (pos,) = guarded_positions(tmp_path, "--config", str(config))
    assert pos["symbol"] == BTC and pos["side"] == "short"
    no_leases(tmp_path, "--config", str(config))
    # the next manual cycle sees the position and adds nothing
    (cycle,) = warden_json(tmp_path, "--config", str(config), "cycle", "--once")["cycles"]
    assert cycle["outcome"] == "hold"
    assert [p["size"] for p in guarded_positions(tmp_path, "--config", str(config))] == [
        pos["size"]
    ]


def test_cycle_once_exits_75_naming_the_holder_while_the_lease_is_held(
    tmp_path: Path, procs: list[Proc]
) -> None:
    config = cycle_config(tmp_path)
    hold = Proc(
        tmp_path,
        "hold",
        "--config",
        str(config),
        "lock",
        "--hold",
        "30",
        "--purpose",
        "maintenance by hand",
    )
    procs.append(hold)
    hold.wait_for("holding paper:main", timeout=30)
    res = warden(tmp_path, "--config", str(config), "cycle", "--once", "--json")
    assert res.returncode == 75, (res.stdout, res.stderr)
    assert f":{hold.proc.pid}:" in res.stderr and "busy" in res.stderr
    assert "(maintenance by hand, held" in res.stderr
    (cycle,) = json.loads(res.stdout)["cycles"]
    assert cycle["status"] == "busy" and cycle["outcome"] == "busy"
    hold.signal(signal.SIGINT)
    assert hold.finish() == 0
    # nothing was sent while it was busy: no position until a cycle actually runs
    assert guarded_positions(tmp_path, "--config", str(config)) == []
    res = warden(tmp_path, "--config", str(config), "cycle", "--once")
    assert res.returncode == 0 and "momo: entered" in res.stdout, (res.stdout, res.stderr)


def test_cycle_once_usage_errors_exit_2(tmp_path: Path) -> None:
    config = cycle_config(tmp_path)
    res = warden(tmp_path, "--config", str(config), "cycle", "--once", "--strategy", "nosuch")
    assert res.returncode == 2
    assert "--strategy nosuch: not configured (strategies: momo)" in res.stderr
    bare_dir = tmp_path / "bare"
    bare_dir.mkdir()
    bare = cycle_config(bare_dir, strategies=False)
    res = warden(bare_dir, "--config", str(bare), "cycle", "--once")
    assert res.returncode == 2
    assert "no [[strategies]] configured" in res.stderr
    assert not (tmp_path / "bare" / "warden.db").exists()


# --- warden pause / resume --------------------------------------------------------------------


def test_pause_holds_entries_back_and_resume_restores_them(tmp_path: Path) -> None:
    cfg = ("--config", str(cycle_config(tmp_path)))
    res = warden(tmp_path, *cfg, "pause", "--reason", "news at 14:00")
    assert res.returncode == 0 and "paused all exchanges" in res.stdout, res.stderr
    status = warden_json(tmp_path, *cfg, "status")
    assert status["paused"] is True and status["paused_by_exchange"] == {"paper": True}
    (cycle,) = warden_json(tmp_path, *cfg, "cycle", "--once")["cycles"]
    assert cycle["outcome"] == "refused"
    assert "entries held back (paused: news at 14:00)" in cycle["detail"]  # the reason given
    assert warden_json(tmp_path, *cfg, "status")["positions"] == []

    res = warden(tmp_path, *cfg, "resume")
    assert res.returncode == 0 and "resumed all exchanges" in res.stdout
    assert warden_json(tmp_path, *cfg, "status")["paused"] is False
    (cycle,) = warden_json(tmp_path, *cfg, "cycle", "--once")["cycles"]
    assert cycle["outcome"] == "entered"
    assert len(guarded_positions(tmp_path, *cfg)) == 1


def test_pause_and_resume_are_scoped_by_exchange(tmp_path: Path) -> None:
    cfg = ("--config", str(cycle_config(tmp_path, exchanges=("paper", "other"))))
    res = warden(tmp_path, *cfg, "pause", "--exchange", "other")
    assert res.returncode == 0 and "paused other:main" in res.stdout, res.stderr
    status = warden_json(tmp_path, *cfg, "status")
    assert status["paused"] is True
    assert status["paused_by_exchange"] == {"paper": False, "other": True}
    (cycle,) = warden_json(tmp_path, *cfg, "cycle", "--once", "--strategy", "momo_other")["cycles"]
    assert cycle["outcome"] == "refused" and "paused" in cycle["detail"]
    (cycle,) = warden_json(tmp_path, *cfg, "cycle", "--once", "--strategy", "momo")["cycles"]
    assert cycle["outcome"] == "entered"

    # a global pause outlives one exchange's resume, and says so
    assert warden(tmp_path, *cfg, "pause").returncode == 0
    res = warden(tmp_path, *cfg, "resume", "--exchange", "paper")
    assert res.returncode == 0 and "still paused" in res.stdout
    status = warden_json(tmp_path, *cfg, "status")
    assert status["paused_by_exchange"] == {"paper": True, "other": True}

    # `resume` without --exchange resumes every exchange, also `other`, paused on its own
    res = warden(tmp_path, *cfg, "resume")
    assert res.returncode == 0 and "resumed all exchanges" in res.stdout
    status = warden_json(tmp_path, *cfg, "status")
    assert status["paused"] is False
    assert status["paused_by_exchange"] == {"paper": False, "other": False}
    (cycle,) = warden_json(tmp_path, *cfg, "cycle", "--once", "--strategy", "momo_other")["cycles"]
    assert cycle["outcome"] == "entered"
    positions = guarded_positions(tmp_path, *cfg)
    assert sorted(p["exchange"] for p in positions) == ["other", "paper"]

    res = warden(tmp_path, *cfg, "pause", "--exchange", "nosuch")
    assert res.returncode == 2 and "--exchange nosuch: not configured" in res.stderr
