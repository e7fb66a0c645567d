"""Outages (issue 8): the exchange, Telegram or the database unavailable for a while, with the
real daemon (APScheduler jobs, the watchdog every second) in this process.

Time is compressed: an outage of a few seconds spans several watchdog runs, which is what
matters (every run fails, alerts are raised once, nothing is done on a guess, service resumes).
benchmarks/reliability_outage.py runs the same scenarios for minutes.

- The exchange: the fake OKX answers 503, then 429 (OKX 50011), then drops every connection;
  the real ccxt client and adapter see each the way they would see the real thing.
- Telegram: the fake Bot API answers 500, then refuses connections (a proxy in front of it is
  closed); the agent trades and guards on, and every alert arrives afterwards once, in order.
- The database: another connection holds SQLite's write lock longer than ``busy_timeout``, or
  the file may not grow (``PRAGMA max_page_count``, SQLITE_FULL). No entry can be sent without
  its stored intent; what cannot be written to the outbox reaches the log; service resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import ccxt.async_support  # noqa: F401  imported once for the session, as the adapter does
import pytest

import bot.config.secrets
import bot.services
import bot.watchdog
import storage.db
from bot.config import Config
from bot.daemon import Daemon
from bot.exchanges import paper_settings
from bot.notify import TerminalNotifier
from bot.telegram import TelegramHandle, start_telegram
from bot.watchdog import Watchdog
from storage.db import Database
from storage.lease import LeaseStore
from storage.paper_store import PaperStore
from tests.fake_okx import API_KEY, PASSPHRASE, SECRET
from tests.fake_telegram import FakeTelegram
from tests.rig_cycles import ETH, _paper, make_config
from tests.rig_outages import (
    Cuttable,
    DownOkx,
    fast_reads,
    long_path,
    okx_config,
    outbox,
    replay_daemon_config,
    telegram_alerts,
    terminal_alerts,
    write_lock_held,
)
from tests.telegram_rig import TOKEN, secrets, settings
from trading.errors import ExchangeError, NetworkError, RateLimited
from trading.journal import IntentStatus, Severity
from trading.models import Position, PositionSide, StopOrder, StopState
from trading.paper import PaperExchange

pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")

BTC = "BTC/USDT:USDT"
LONG = PositionSide.LONG
OKX_SCOPE = "okx:main"
PAPER_SCOPE = "paper:main"


# --- helpers --------------------------------------------------------------------------------


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], timeout: float = 30.0, what: str = ""
) -> None:
    """Poll ``check`` until it holds; generous, for a noisy CI (the wait is not the figure)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


async def sleep_until(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


def logged(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == name]


def fields(record: logging.LogRecord) -> dict[str, Any]:
    return dict(record.__dict__.get("fields", {}))


def set_okx_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OKX_API_KEY", API_KEY)
    monkeypatch.setenv("OKX_API_SECRET", SECRET)
    monkeypatch.setenv("OKX_API_PASSPHRASE", PASSPHRASE)
    monkeypatch.setattr(bot.config.secrets, "_process", None)  # read the environment


# --- the exchange down ------------------------------------------------------------------------


@asynccontextmanager
async def okx_daemon(
    db: Database, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[DownOkx, Daemon, io.StringIO]]:
    set_okx_keys(monkeypatch)
    fake = DownOkx(demo=True)
    await fake.start()
    stream = io.StringIO()
    try:
        daemon = Daemon(okx_config(db_path, fake.url), db, TerminalNotifier(stream))
        try:
            yield fake, daemon, stream
        finally:
            await daemon.stop()  # closes the adapters too; fine if never started
    finally:
        await fake.stop()
    assert fake.unknown == [], fake.unknown


async def test_exchange_down_no_order_on_a_guess_one_alert_then_repaired(
    db: Database, db_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="warden")
    fast_reads(monkeypatch, 0.05)
    async with okx_daemon(db, db_path, monkeypatch) as (fake, daemon, stream):
        acct = daemon.accounts["okx"]
        async with daemon.leases.hold(OKX_SCOPE, "test open") as lease:
            opened = await acct.executor.open(lease, BTC, LONG, 0.01, 65_600.0, "test")
        assert opened.ok, opened.detail
        (algo,) = fake.algo_list("live")
        await daemon.start()
        wd = daemon.watchdogs["okx"]
        await eventually(lambda: wd.stats.runs >= 1, what="a first clean watchdog run")
        orders, stops = fake.posts("trade/order"), fake.posts("trade/order-algo")
        failures_before = wd.stats.failures

        t0 = time.monotonic()
        fake.down("503")
        await asyncio.sleep(0.5)
        fake.cancel_algo_outside(algo["algoId"])  # and meanwhile the stop is removed

        async def entry_in_the_outage() -> None:
            """The exchange must be read before an entry, and cannot be: nothing is sent."""
            async with daemon.leases.hold(OKX_SCOPE, "test open in the outage", wait=30) as lease:
                with pytest.raises(ExchangeError):
                    await acct.executor.open(lease, ETH, LONG, 0.1, 1_850.0, "test")

        attempt = asyncio.create_task(entry_in_the_outage())
        await sleep_until(t0 + 2.5)
        fake.down("429")
        await sleep_until(t0 + 5.0)
        fake.down("drop")
        await sleep_until(t0 + 7.5)
        failed_runs = wd.stats.failures - failures_before
        await attempt
        fake.up()

        async def repaired() -> bool:
            texts = [a["text"] for a in await outbox(db)]
            return bool(fake.algo_list("live")) and any("reachable again" in t for t in texts)

        await eventually(repaired, what="the stop restored and the recovery alert")
        await eventually(
            lambda: len(terminal_alerts(stream)) >= 4, what="the alerts on the terminal"
        )

    # nothing was sent on a guess: every request in the outage was a read, refused
    assert {mode for mode, _, _ in fake.refused} == {"503", "429", "drop"}
    assert [r for r in fake.refused if r[1] != "GET"] == []
    # after it: the entry asked for in the outage was never sent; one stop replaced the removed
    assert fake.posts("trade/order") == orders == 1
    assert fake.posts("trade/order-algo") == stops + 1
    (live,) = fake.algo_list("live")
    assert float(live["slTriggerPx"]) == 65_600.0 and float(live["sz"]) == 1.0
    assert failed_runs >= 3, failed_runs

    alerts = await outbox(db)
    down = [a for a in alerts if a["key"] == f"watchdog-error:{OKX_SCOPE}"]
    assert len(down) == 1, down  # once, not once per failed run
    assert "cannot read the exchange" in down[0]["text"]
    back = [a for a in alerts if "reachable again" in a["text"]]
    assert len(back) == 1 and back[0]["severity"] == "info", back
    assert "failed watchdog run(s) since" in back[0]["text"], back
    incident = [a for a in alerts if "canceled outside Warden" in a["text"]]
    resolved = [a for a in alerts if a["text"].startswith(f"resolved {OKX_SCOPE} {BTC}")]
    assert len(incident) == 1 and incident[0]["severity"] == "critical"
    assert len(resolved) == 1 and "verified live" in resolved[0]["text"]
    assert down[0]["id"] < incident[0]["id"] < resolved[0]["id"] <= back[0]["id"]
    # every alert delivered once, in order
    assert all(a["delivered_at"] is not None for a in alerts)
    assert terminal_alerts(stream) == [a["text"] for a in alerts]
    assert daemon.counters["job_errors"] == 0
    assert logged(caplog, "job.failed") == []


async def test_an_entry_in_flight_when_the_exchange_goes_down_is_resolved_by_client_id(
    db: Database, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with okx_daemon(db, db_path, monkeypatch) as (fake, daemon, _stream):
        await daemon.start()
        acct = daemon.accounts["okx"]
        # the entry is executed, its answer is lost, and the exchange is down for 4 s after it
        fake.faults.lost_responses = 1
        fake.down_after_order = ("503", 4.0)
        started = time.monotonic()
        async with daemon.leases.hold(OKX_SCOPE, "test open", wait=30) as lease:
            res = await acct.executor.open(lease, BTC, LONG, 0.01, 65_600.0, "test")
        took = time.monotonic() - started
    assert res.ok, res.detail
    assert took >= 4.0  # it waited for the exchange instead of guessing
    (entry,) = fake.calls("POST", "trade/order")  # sent once, never resent
    (intent,) = [i for i in await acct.journal.intents(OKX_SCOPE) if i.kind.value == "entry"]
    assert entry.body["clOrdId"] == intent.client_id and intent.status is IntentStatus.FILLED
    lookups = [r for r in fake.refused if r[2] == "/api/v5/trade/order" and r[1] == "GET"]
    assert lookups, "the unknown outcome was asked for by client id during the outage"
    assert [r for r in fake.refused if r[1] != "GET"] == []
    assert fake.position("BTC-USDT-SWAP") == 1
    assert len(fake.algo_list("live")) == 1


class FlakyPaper(PaperExchange):
    """The paper exchange whose reads fail (network down, then rate limited) while ``down``."""

    down: str | None = None

    def _check(self) -> None:
        if FlakyPaper.down == "network":
            raise NetworkError("connection reset by peer (injected)")
        if FlakyPaper.down == "rate":
            raise RateLimited("too many requests (injected)", retry_after=0.01)

    async def positions(self, symbol: str | None = None) -> list[Position]:
        self._check()
        return await super().positions(symbol)

    async def open_stops(self, symbol: str | None = None) -> list[StopOrder]:
        self._check()
        return await super().open_stops(symbol)


async def test_a_lasting_outage_is_re_alerted_on_an_interval_not_every_run(
    db: Database, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A watchdog run every 10 s (of a fake clock) for 40 minutes of outage: the alert is
    raised at once, again after REALERT_SECONDS, and "reachable again" once at the end."""
    fast_reads(monkeypatch)
    monkeypatch.setattr(FlakyPaper, "down", None)
    monkeypatch.setattr(
        bot.services,
        "build_exchange",
        lambda config, name, db: FlakyPaper(
            name, paper_settings(_paper(config, name)), PaperStore(db)
        ),
    )
    config = make_config(db_path, [])
    daemon = Daemon(config, db, TerminalNotifier(io.StringIO()))
    acct = daemon.accounts["paper"]
    now = [1_000_000.0]
    acct.journal.clock = lambda: now[0]
    wd = Watchdog(acct, daemon.leases, 10.0)
    try:
        assert (await wd.tick()) is not None
        for i, mode in enumerate(["network", "rate"] * 120):  # 240 runs, 10 s apart
            FlakyPaper.down = mode
            now[0] += 10.0
            report = await wd.tick()
            assert report is not None and report.errors, i
        FlakyPaper.down = None
        for _ in range(3):
            now[0] += 10.0
            report = await wd.tick()
            assert report is not None and not report.errors
    finally:
        FlakyPaper.down = None
        await acct.exchange.close()
    alerts = await outbox(db)
    down = [a for a in alerts if a["key"].startswith("watchdog-error:")]
    # 2,400 s of outage, re-raised every 900 s: at 10 s, 910 s and 1,810 s
    assert [a["created_at"] - 1_000_000.0 for a in down] == [10.0, 910.0, 1810.0]
    back = [a for a in alerts if "reachable again" in a["text"]]
    assert len(back) == 1 and "240 failed watchdog run" in back[0]["text"], back
    assert len(alerts) == 4, alerts


# --- Telegram down --------------------------------------------------------------------------


@asynccontextmanager
async def daemon_with_telegram(
    config: Config, db: Database, base_url: str, fake: FakeTelegram
) -> AsyncIterator[tuple[Daemon, TelegramHandle]]:
    """What ``warden run`` does with Telegram configured: the bot first, then the daemon whose
    outbox job delivers through it; stopped commands first, then the daemon, then the bot."""
    daemon = Daemon(config, db)
    handle = await start_telegram(daemon, secrets(), settings(fake, api_base_url=base_url))
    daemon.notifier = handle.notifier
    try:
        await daemon.start()
        yield daemon, handle
    finally:
        await handle.stop_commands()
        await daemon.stop()
        await handle.stop()


async def open_and_lose_stop(daemon: Daemon) -> str:
    """A BTC long with a verified stop on the paper account, whose stop is then canceled on
    the exchange behind the agent's back. Returns the removed stop's id."""
    acct = daemon.accounts["paper"]
    async with daemon.leases.hold(PAPER_SCOPE, "test open", wait=30) as lease:
        res = await acct.executor.open(lease, BTC, LONG, 0.01, 65_600.0, "test")
    assert res.ok, res.detail
    (stop,) = await acct.exchange.open_stops(BTC)
    await acct.exchange.cancel_stop(BTC, stop.id)
    return stop.id


async def live_stops(daemon: Daemon, symbol: str) -> list[StopOrder]:
    return [
        s
        for s in await daemon.accounts["paper"].exchange.open_stops(symbol)
        if s.state is StopState.LIVE
    ]


async def test_telegram_down_trading_and_guarding_go_on_alerts_arrive_after_once_in_order(
    db: Database, db_path: Path, tmp_path: Path
) -> None:
    fake = await FakeTelegram(TOKEN).start()
    proxy = await Cuttable(fake.port).start()
    config = replay_daemon_config(db_path, tmp_path / "data", long_path(40), 0.25)
    try:
        async with daemon_with_telegram(config, db, proxy.url, fake) as (daemon, handle):
            journal = daemon.accounts["paper"].journal
            t0, n0 = time.monotonic(), len(fake.calls)
            # every call but getUpdates answered 500 (until after the cut below)
            fake.fail(500, seconds=5.0, methods=None)
            cycles_before = len(await daemon.cycles.recent("momo", 1000))
            removed = await open_and_lose_stop(daemon)
            for i in range(6):
                await journal.alert(Severity.WARNING, f"marker #{i} <&> while Telegram is down")
                await asyncio.sleep(0.3)
            await sleep_until(t0 + 4.0)
            await proxy.cut()  # now nothing answers at all: connections are refused
            for i in range(6, 10):
                await journal.alert(Severity.CRITICAL, f"marker #{i} while refused")
                await asyncio.sleep(0.3)
            await sleep_until(t0 + 8.0)
            # trading and guarding went on meanwhile
            cycles_during = len(await daemon.cycles.recent("momo", 1000)) - cycles_before
            (restored,) = await live_stops(daemon, BTC)
            sent_during = [
                c for c in fake.calls[n0:] if c.method == "sendMessage" and c.status == 200
            ]
            await proxy.restore()
            await eventually(
                lambda: _undelivered(daemon), timeout=60, what="the outbox delivered after"
            )
            failures = handle.notifier.failures
    finally:
        await proxy.stop()
        await fake.stop()
    assert sent_during == []  # nothing could be delivered during the outage
    assert failures >= 2
    assert cycles_during >= 10, cycles_during  # a cycle every 0.25 s went on
    assert restored.id != removed and restored.size == 0.01
    rows = await outbox(db)
    texts = [r["text"] for r in rows]
    assert sum("marker #" in t for t in texts) == 10
    assert any("canceled outside Warden" in t for t in texts)  # the watchdog repaired
    assert any(t.startswith("entered long") for t in texts), texts  # the strategy traded
    # every alert once, in the outbox's order
    assert telegram_alerts(fake) == texts


async def _undelivered(daemon: Daemon) -> bool:
    return await daemon.outbox.undelivered_count() == 0


# --- the database busy or full --------------------------------------------------------------


async def paper_orders(ex: PaperExchange) -> int:
    return len(await ex.trades())


async def test_database_busy_fails_closed_alerts_through_the_log_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The default wiring: the paper exchange keeps its state in the same database."""
    monkeypatch.setattr(storage.db, "BUSY_TIMEOUT_MS", 300)
    db_path = tmp_path / "warden.db"
    db = await Database.open(db_path)
    fake = await FakeTelegram(TOKEN).start()
    caplog.set_level(logging.INFO, logger="warden")
    # 10 more flat candles before the breakout (3 s of replay): it comes after the lock
    config = replay_daemon_config(
        db_path,
        tmp_path / "data",
        long_path(10, lead=10),
        0.3,
        lease={"ttl_seconds": 3.0, "heartbeat_seconds": 1.0},
    )
    try:
        async with daemon_with_telegram(config, db, fake.base_url, fake) as (daemon, _handle):
            acct = daemon.accounts["paper"]
            ex = acct.exchange
            assert isinstance(ex, PaperExchange)
            before = await paper_orders(ex)
            # Telegram refuses for a second: this alert is sent while the lock is held, when
            # its delivery cannot be recorded
            fake.fail(500, seconds=1.0, methods=None)
            await acct.journal.alert(Severity.WARNING, "queued just before the lock")
            lease = await daemon.leases.acquire(PAPER_SCOPE, "test open", wait=30)
            try:
                async with write_lock_held(db_path):
                    busy_from = time.time()
                    # an entry decided now: its intent cannot be stored, so it is not sent
                    with pytest.raises(sqlite3.OperationalError, match="locked"):
                        await acct.executor.open(lease, BTC, LONG, 0.01, 65_600.0, "test")
                    await asyncio.sleep(4.0)  # the replay reaches the breakout meanwhile
                    during = await paper_orders(ex)
                    busy_to = time.time()
            finally:
                with contextlib.suppress(Exception):
                    await lease.release()
            await eventually(lambda: _has_text(db, "writable again"), what="the recovery alert")
            await eventually(lambda: _entered(daemon), timeout=30, what="the entry after")
            await eventually(lambda: _undelivered(daemon), what="the outbox delivered")
    finally:
        await fake.stop()
        await db.close()
    assert during == before  # nothing sent while nothing could be stored
    intents = [i for i in await _intents(db_path) if busy_from <= i["created_at"] <= busy_to]
    assert intents == []
    # the log said so while the outbox could not: what failed, and the alert that was lost
    failed = logged(caplog, "watchdog.storage_failed")
    assert failed and "locked" in fields(failed[0])["error"]
    unstored = logged(caplog, "alert.not_stored")
    assert unstored and any("database" in fields(r)["text"] for r in unstored)
    assert all(r.levelno == logging.CRITICAL for r in unstored)
    # every alert reached Telegram once, in order: none was sent twice while its delivery
    # could not be recorded
    rows = await _rows(db_path)
    assert telegram_alerts(fake) == [r["text"] for r in rows]
    assert sum(t == "queued just before the lock" for t in telegram_alerts(fake)) == 1


async def _has_text(db: Database, needle: str) -> bool:
    return any(needle in a["text"] for a in await outbox(db))


async def _entered(daemon: Daemon) -> bool:
    return any(r.outcome == "entered" for r in await daemon.cycles.recent("momo", 1000))


async def _intents(db_path: Path) -> list[dict[str, Any]]:
    other = await Database.open(db_path, migrate=False)
    try:
        async with other.read() as conn:
            cur = await conn.execute("SELECT * FROM intent ORDER BY id")
            return [dict(r) for r in await cur.fetchall()]
    finally:
        await other.close()


async def _rows(db_path: Path) -> list[dict[str, Any]]:
    other = await Database.open(db_path, migrate=False)
    try:
        return await outbox(other)
    finally:
        await other.close()


FILL = {
    # table -> a minimal row (short values): once one no longer fits, no real row does
    "intent": "INSERT INTO intent(scope, kind, symbol, side, size, status, purpose, "
    "lease_token, created_at, updated_at) VALUES ('z', 'z', 'z', 'z', 0, 'z', 'z', 0, 0, 0)",
    "stop_placement": "INSERT INTO stop_placement(scope, symbol, position_side, size, "
    "trigger_price, status, lease_token, placed_at) VALUES ('z', 'z', 'z', 0, 0, 'z', 0, 0)",
    "incident": "INSERT INTO incident(scope, symbol, kind, attribution, cost, detail, "
    "opened_at, resolved_at) VALUES ('z', 'z', 'z', 'z', 0, 'z', 0, 0)",
    "alert_outbox": "INSERT INTO alert_outbox(created_at, severity, key, text, "
    "next_attempt_at, delivered_at) VALUES (0, 'z', 'z', 'z', 0, 0)",
}


async def disk_full(db: Database) -> None:
    """The database file may not grow any more (``max_page_count``), and the tables that
    matter have no room left in their pages: writes to them fail with SQLITE_FULL."""
    async with db.write() as conn:
        cur = await conn.execute("PRAGMA page_count")
        row = await cur.fetchone()
        assert row is not None
        await conn.execute(f"PRAGMA max_page_count = {int(row[0])}")
    for sql in FILL.values():
        for _ in range(10_000):
            try:
                async with db.write() as conn:
                    for _ in range(20):  # a few at a time; the failing batch rolls back
                        await conn.execute(sql)
            except sqlite3.OperationalError as exc:
                assert "full" in str(exc)
                break
        for _ in range(40):  # then one by one, to the last row that fits
            try:
                async with db.write() as conn:
                    await conn.execute(sql)
            except sqlite3.OperationalError:
                break


async def disk_has_room(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute("PRAGMA max_page_count = 1073741823")


async def test_database_full_fails_closed_alerts_through_the_log_and_recovers(
    db: Database,
    db_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The journal's database is full; the exchange (a paper exchange on its own database,
    as a real exchange would be) is not."""
    exchange_db = await Database.open(tmp_path / "exchange.db")
    monkeypatch.setattr(
        bot.services,
        "build_exchange",
        lambda config, name, db: PaperExchange(
            name, paper_settings(_paper(config, name)), PaperStore(exchange_db)
        ),
    )
    caplog.set_level(logging.INFO, logger="warden")
    config = replay_daemon_config(
        db_path,
        tmp_path / "data",
        long_path(10),
        3600.0,  # the test runs the replay job itself, candle by candle
        lease={"ttl_seconds": 3.0, "heartbeat_seconds": 1.0},
    )
    stream = io.StringIO()
    daemon = Daemon(config, db, TerminalNotifier(stream))
    ex = daemon.accounts["paper"].exchange
    assert isinstance(ex, PaperExchange)
    try:
        await daemon.start()
        assert daemon.scheduler is not None
        replay_job = daemon.scheduler.get_job("replay:paper").func
        removed = await open_and_lose_stop(daemon)
        orders = await paper_orders(ex)

        await disk_full(db)
        await replay_job()  # the breakout candle: the strategy wants in
        watchdog = daemon.watchdogs["paper"]
        failures = watchdog.stats.failures
        await eventually(
            lambda: watchdog.stats.failures >= failures + 2, what="two failed watchdog runs"
        )
        assert await paper_orders(ex) == orders  # no entry, and no stop without its record
        assert await live_stops(daemon, BTC) == []
        assert await ex.positions(ETH) == []

        await disk_has_room(db)
        await eventually(lambda: _live(daemon), what="the stop restored")
        # the next candle breaks out again: now it enters (the watchdog held off meanwhile, a
        # cycle that finds the lease busy is skipped, by design)
        daemon.scheduler.pause_job("watchdog:paper")
        await eventually(lambda: _lease_free(db), what="the watchdog's run over")
        await replay_job()
        daemon.scheduler.resume_job("watchdog:paper")
        await eventually(lambda: _has_text(db, "writable again"), what="the recovery alert")
        # after: entries again, and every position has its stop
        cycles = await daemon.cycles.recent("momo", 100)
        assert cycles[0].outcome == "entered", cycles  # the latest one
        (eth,) = await ex.positions(ETH)
        assert [s.size for s in await live_stops(daemon, ETH)] == [eth.size]
        (btc_stop,) = await live_stops(daemon, BTC)
        assert btc_stop.id != removed
    finally:
        await daemon.stop()
        await exchange_db.close()
    # the log carried what the outbox could not
    full = logged(caplog, "watchdog.storage_failed")
    assert full and "full" in fields(full[0])["error"]
    unstored = logged(caplog, "alert.not_stored")
    assert unstored and all(r.levelno == logging.CRITICAL for r in unstored)
    jobs = [r for r in logged(caplog, "job.storage_failed") if "replay" in fields(r)["job"]]
    assert jobs and "full" in fields(jobs[0])["error"], [fields(r) for r in jobs]
    assert logged(caplog, "job.failed") == []  # named, not a bare traceback
    # every alert that could be stored was delivered, once, in order
    texts = [a["text"] for a in await outbox(db) if a["key"] != "z"]
    assert terminal_alerts(stream) == texts


async def _lease_free(db: Database) -> bool:
    return await LeaseStore(db).holders() == []


async def _live(daemon: Daemon) -> bool:
    return bool(await live_stops(daemon, BTC))
