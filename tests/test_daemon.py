"""The daemon (bot/daemon.py) in this process: real scheduler, real database, the real paper
exchange replaying scripted candles (tests/test_cycles.PATH), the real lease.

Start-up reconciliation gates entries; a failing reconciliation alerts and is retried by the
watchdog job; a graceful stop lets the cycle in flight finish; skipped runs are counted.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import bot.services
from bot.agent import AgentSeat
from bot.daemon import Daemon, _last_run_time
from bot.exchanges import paper_settings
from bot.notify import TerminalNotifier
from storage.agent_lease import AGENT_SCOPE
from storage.db import Database
from storage.held_lease import LeaseManager
from storage.journal_store import JournalStore
from storage.lease import LeaseStore
from storage.paper_store import PaperStore
from tests.rig_cycles import (
    ENTRY_BAR,
    ETH,
    PATH,
    SCOPE,
    WARMUP,
    _paper,
    make_config,
    strategy,
    write_path_csv,
)
from trading.errors import NetworkError
from trading.journal import IntentKind, IntentStatus, StopStatus
from trading.models import OrderSide, Position, StopOrder, StopState
from trading.orders import OrderSender
from trading.paper import PaperExchange


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 20.0, what: str = ""
) -> None:
    """Poll ``check`` until it holds; the timeout is generous (only for waiting)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)


def replay_config(db_path: Path, data: Path, *, seconds_per_candle: float, **kw: Any) -> Any:
    write_path_csv(data)
    return make_config(
        db_path,
        [strategy("momo")],
        replay={
            "data": str(data),
            "seconds_per_candle": seconds_per_candle,
            "warmup_candles": WARMUP,
        },
        **kw,
    )


def logged(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    """The fields of each ``name`` event logged so far (``trading.logfmt.event``)."""
    return [r.__dict__.get("fields", {}) for r in caplog.records if r.getMessage() == name]


def quiet() -> TerminalNotifier:
    return TerminalNotifier(io.StringIO())


def paper(daemon: Daemon) -> PaperExchange:
    ex = daemon.accounts["paper"].exchange
    assert isinstance(ex, PaperExchange)
    return ex


async def cursor(ex: PaperExchange) -> float:
    (last,) = await ex.candles(ETH, "30m", limit=1)
    return last.ts


async def alerts(db: Database) -> list[tuple[str, str]]:
    async with db.read() as conn:
        cur = await conn.execute("SELECT severity, text FROM alert_outbox ORDER BY id")
        return [(r[0], r[1]) for r in await cur.fetchall()]


async def assert_every_position_guarded(ex: PaperExchange, db: Database) -> list[Position]:
    """Each position has exactly one live reduce-only stop of its full size, read back live."""
    positions = await ex.positions()
    stops: list[StopOrder] = await ex.open_stops()
    journal = JournalStore(db)
    for p in positions:
        mine = [s for s in stops if s.symbol == p.symbol]
        assert len(mine) == 1, (p, mine)
        (s,) = mine
        assert s.state is StopState.LIVE and s.reduce_only and s.size == p.size
        assert s.side is p.side.exit_side
        recs = await journal.stops_for(SCOPE, p.symbol)
        assert any(r.exchange_id == s.id and r.verified_at is not None for r in recs), recs
    assert {s.symbol for s in stops} <= {p.symbol for p in positions}
    return positions


# --- (a) start-up reconciliation resolves, guards, then allows entries ------------------------


async def test_startup_resolves_unknown_intent_by_client_id_guards_then_allows_entries(
    db: Database, db_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = replay_config(db_path, tmp_path / "data", seconds_per_candle=3600.0)
    # a previous run: its entry filled, but the answer was lost (timeout) and it died before
    # resolving it: the intent is left `unknown` and the position has no stop
    acct = bot.services.build_account(config, "paper", db)
    ex = acct.exchange
    assert isinstance(ex, PaperExchange)
    await ex.load_candles(ETH, PATH, timeframe="30m", warmup=WARMUP)
    await ex.set_faults(entry_timeout_after_fill=1)
    leases = LeaseManager(LeaseStore(db))
    sender = OrderSender(ex, acct.journal, resolve_attempts=0)  # died before resolving
    async with leases.hold(SCOPE, "cycle momo") as lease:
        sent = await sender.send(
            lease,
            IntentKind.ENTRY,
            ETH,
            OrderSide.BUY,
            1.0,
            reduce_only=False,
            purpose="cycle momo",
            stop_price=1960.0,
        )
    assert sent.status is IntentStatus.UNKNOWN
    (unknown,) = await acct.journal.unresolved_intents(SCOPE)
    (pos,) = await ex.positions()
    assert pos.size == 1.0 and await ex.open_stops() == []

    daemon = Daemon(config, db, quiet())
    assert [r.entries_allowed for r in daemon.runners["paper"]] == [False]
    caplog.set_level(logging.INFO, logger="warden.daemon")
    await daemon.start()
    try:
        assert daemon.reconciled == {"paper"}
        assert [r.entries_allowed for r in daemon.runners["paper"]] == [True]
        # resolved by its client id, not resent: still one order, one position of 1.0
        (intent,) = [i for i in await acct.journal.intents(SCOPE) if i.id == unknown.id]
        assert intent.status is IntentStatus.FILLED
        assert await acct.journal.unresolved_intents(SCOPE) == []
        assert len(await ex.trades()) == 1
        (pos,) = await assert_every_position_guarded(ex, db)
        assert pos.size == 1.0
        (stop,) = await ex.open_stops()
        assert stop.trigger_price == 1960.0  # the intent's own stop, not the default level
        recs = await acct.journal.stops_for(SCOPE, ETH)
        assert recs[0].status is StopStatus.VERIFIED
        # the intent now says which strategy owns the position
        assert await acct.journal.position_owner(SCOPE, ETH) == "cycle momo"
        assert logged(caplog, "reconcile.intent") == [
            {"scope": SCOPE, "client_id": unknown.client_id, "status": IntentStatus.FILLED}
        ]
        names = [r.getMessage() for r in caplog.records]
        assert names.index("reconcile.intent") < names.index("reconcile.done")
    finally:
        await daemon.stop()
    assert await LeaseStore(db).holders() == []


# --- (b) a failing reconciliation: no entries, an alert, retried by the watchdog ---------------


class ReadsFail(PaperExchange):
    """The exchange's stop-order endpoint does not answer (network down) while ``down``."""

    down = False

    async def open_stops(self, symbol: str | None = None) -> list[StopOrder]:
        if ReadsFail.down:
            raise NetworkError("open stops: connection reset (injected)")
        return await super().open_stops(symbol)


async def test_failed_reconciliation_blocks_entries_alerts_and_watchdog_retries(
    db: Database,
    db_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(ReadsFail, "down", True)
    monkeypatch.setattr(
        bot.services,
        "build_exchange",
        lambda config, name, db: ReadsFail(
            name, paper_settings(_paper(config, name)), PaperStore(db)
        ),
    )
    # no replay tick within the test: only the watchdog job can retry the reconciliation
    config = replay_config(
        db_path,
        tmp_path / "data",
        seconds_per_candle=3600.0,
        guardian={"verify_delay_seconds": 0.05, "watchdog_seconds": 1.0},
        scheduler={"outbox_seconds": 0.2},
    )
    caplog.set_level(logging.INFO, logger="warden.daemon")
    daemon = Daemon(config, db, quiet())
    ex = paper(daemon)
    (runner,) = daemon.runners["paper"]
    await daemon.start()
    try:
        # start() tried once, alone: the exchange did not answer -> a critical alert saying so
        ((severity, text),) = await alerts(db)
        assert severity == "critical" and "start-up reconciliation failed" in text
        assert "connection reset" in text and "no entries until it succeeds" in text
        assert daemon.reconciled == set() and not runner.entries_allowed

        # the breakout bar closes: the strategy wants in, but the account is not reconciled
        await ex.advance(ETH, ENTRY_BAR - WARMUP + 1)
        out = await runner.run("manual", wait=30.0)  # the watchdog's retries hold the lease
        assert out.report is not None, out
        (sym,) = out.report.symbols
        assert sym.decision.action.value == "enter" and sym.outcome == "refused"
        assert "not yet reconciled" in sym.detail
        assert await daemon.accounts["paper"].journal.intents(SCOPE) == []
        assert await ex.trades() == []
        assert daemon.reconciled == set()
        # the lasting condition is re-raised, not spammed
        crit = [a for a in await alerts(db) if "start-up reconciliation" in a[1]]
        assert len(crit) == 1, crit
        failed_before = len(logged(caplog, "reconcile.incomplete"))
        assert failed_before >= 1

        ReadsFail.down = False  # the exchange is back: the watchdog job retries
        await eventually(lambda: _true(daemon.reconciled == {"paper"}), what="reconciled")
        assert runner.entries_allowed
        assert await _has_alert(db, "info", "reconciled after")  # resolved, and said so
        out = await runner.run("manual", wait=30.0)
        assert out.report is not None and out.report.outcome == "entered", out
        await assert_every_position_guarded(ex, db)
    finally:
        ReadsFail.down = False
        await daemon.stop()
    assert await LeaseStore(db).holders() == []


async def _true(value: bool) -> bool:
    return value


async def _has_alert(db: Database, severity: str, needle: str) -> bool:
    return any(s == severity and needle in t for s, t in await alerts(db))


# --- (c) graceful stop ------------------------------------------------------------------------


async def test_graceful_stop_lets_the_cycle_in_flight_finish_and_releases_leases(
    db: Database, db_path: Path, tmp_path: Path
) -> None:
    config = replay_config(
        db_path,
        tmp_path / "data",
        seconds_per_candle=0.3,
        faults={"latency_ms": 80},
        guardian={"verify_delay_seconds": 0.2, "watchdog_seconds": 30.0},
    )
    daemon = Daemon(config, db, quiet())
    ex = paper(daemon)
    journal = daemon.accounts["paper"].journal

    async def entry_in_flight() -> bool:
        """The entry is sent (its intent exists) and its stop is not yet read back live."""
        entries = [i for i in await journal.intents(SCOPE) if i.kind is IntentKind.ENTRY]
        if not entries:
            return False
        verified = [r for r in await journal.stops_for(SCOPE, ETH) if r.verified_at]
        assert not verified, "missed the window: the stop was verified already"
        return True

    await daemon.start()
    try:
        await eventually(entry_in_flight, what="an entry in flight")
    finally:
        await daemon.stop()
    # the cycle that was entering finished: stored with its outcome, the position guarded
    records = await daemon.cycles.recent("momo")
    assert records and records[0].outcome == "entered", records
    assert all(r.ended_at is not None for r in records)
    (pos,) = await assert_every_position_guarded(ex, db)
    assert pos.symbol == ETH
    (intent,) = [i for i in await journal.intents(SCOPE) if i.kind is IntentKind.ENTRY]
    assert intent.status is IntentStatus.FILLED
    assert await LeaseStore(db).holders() == []
    # no new work after stop(): no more ticks, no more cycles
    seen, at = len(await daemon.cycles.recent("momo", 100)), await cursor(ex)
    await asyncio.sleep(1.0)
    assert len(await daemon.cycles.recent("momo", 100)) == seen
    assert await cursor(ex) == at


async def test_a_job_starting_while_stop_runs_does_no_work(
    db: Database, db_path: Path, tmp_path: Path
) -> None:
    """A run the scheduler handed over just before stop() (its task created, not yet running)
    must not start a cycle once the daemon is stopping: nobody would wait for it."""
    config = replay_config(db_path, tmp_path / "data", seconds_per_candle=3600.0)
    daemon = Daemon(config, db, quiet())
    ex = paper(daemon)
    await daemon.start()
    assert daemon.scheduler is not None
    job = daemon.scheduler.get_job("replay:paper")
    at = await cursor(ex)
    late = asyncio.get_running_loop().create_task(job.func())  # as APScheduler submits a run
    await daemon.stop()
    await late
    assert await cursor(ex) == at
    assert await daemon.cycles.recent("momo") == []
    assert await ex.trades() == []


# --- (d) skipped runs are counted and logged ---------------------------------------------------


async def test_runs_skipped_because_the_previous_one_still_runs_are_counted_and_logged(
    db: Database, db_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # every exchange call takes 60 ms: a tick (advance + cycle + guardian) takes far longer
    # than the 0.1 s between ticks, so max_instances=1 skips runs
    config = replay_config(
        db_path, tmp_path / "data", seconds_per_candle=0.1, faults={"latency_ms": 60}
    )
    caplog.set_level(logging.WARNING, logger="warden.daemon")
    daemon = Daemon(config, db, quiet())
    await daemon.start()
    try:
        await eventually(
            lambda: _true(daemon.counters["job_skipped_running"] >= 2), what="skipped runs"
        )
    finally:
        await daemon.stop()
    skipped = daemon.counters["job_skipped_running"]
    assert len(logged(caplog, "job.skipped_running")) == skipped  # each one logged
    assert logged(caplog, "job.skipped_running").count({"job": "replay:paper"}) >= 2
    # never two ticks at once: every tick that did run is one cycle record, all complete
    records = await daemon.cycles.recent("momo", 100)
    done = [r for r in records if r.outcome != "skipped_busy"]  # the watchdog had the lease
    assert done and all(r.outcome in ("hold", "entered") for r in done)
    assert daemon.counters["cycle_done"] == len(done)
    assert skipped >= 2


# --- (e) the agent lease: a daemon whose agent was taken over does nothing more ----------------


async def test_a_daemon_whose_agent_lease_was_taken_over_runs_no_job(
    db: Database, db_path: Path, tmp_path: Path
) -> None:
    config = replay_config(db_path, tmp_path / "data", seconds_per_candle=0.1)
    seat = AgentSeat(db, ttl=30.0, heartbeat=10.0)
    await seat.claim()
    daemon = Daemon(config, db, quiet(), agent=seat)
    await daemon.start()
    try:
        await eventually(
            lambda: _true(daemon.counters["cycle_done"] >= 2), what="cycles while active"
        )
        # another agent takes the store over (this one was paused past its expiry)
        async with db.write() as conn:
            await conn.execute(
                "UPDATE lease SET expires_at = ? WHERE scope = ?", (time.time() - 1, AGENT_SCOPE)
            )
        other = AgentSeat(db, ttl=30.0, heartbeat=10.0)
        await other.claim()
        await eventually(lambda: _true(seat.lost.is_set()), what="the takeover noticed")
        done = daemon.counters["cycle_done"]
        await asyncio.sleep(0.5)  # five replay ticks
        assert daemon.counters["cycle_done"] == done  # no job ran after it was noticed
    finally:
        await daemon.stop()
    assert seat.lost_reason is not None and "taken over by" in seat.lost_reason
    assert other.fence is not None and await other.still_active()


def test_the_retry_deadline_counts_from_the_scheduled_run() -> None:
    first = datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
    start = first.timestamp()
    assert _last_run_time(first, 1800, start + 3 * 1800 + 42.0) == start + 3 * 1800
    assert _last_run_time(first, 1800, start) == start
    assert _last_run_time(None, 1800, 123.0) == 123.0
    assert _last_run_time(first, 1800, start - 10) == start - 10  # not started yet: now
