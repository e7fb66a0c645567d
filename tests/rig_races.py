"""The race rig: one race trial (several warden open processes, the daemon cycling, a Telegram
/close) judged as the race suite judges it; shared with the reliability and soak benchmarks."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import child_env, warden_cmd
from tests.fake_telegram import Call, FakeTelegram
from tests.rig_crash import (
    BTC,
    SIZE,
    WAIT,
    Agent,
    Sampler,
    agents,
    query,
    wait_for_invariants,
    write_config,
)
from tests.telegram_rig import OWNER, TOKEN

PROCESSES = 16
LATENCY_MS = 50
BUSY, REFUSED = 75, 1


@dataclass
class Opener:
    proc: subprocess.Popen[str]
    rc: int | None = None
    out: str = ""
    err: str = ""

    def json(self) -> Any:
        return json.loads(self.out) if self.out.strip() else None


@dataclass
class TrialReport:
    winners: int = 0  # opens that filled with a verified stop
    busy: int = 0  # exit 75
    refused: int = 0  # exit 1, refused by a guard
    closed: int = 0  # positions the close took away during the trial
    close_attempts: int = 0
    max_size: float = 0.0
    samples: int = 0


def race_config(root: Path, seed: int, telegram_url: str) -> Path:
    config = write_config(
        root,
        faults={"seed": seed, "latency_ms": LATENCY_MS},
        # a candle every 2 s: cycles on the symbol go on throughout, yet leave the lease free
        # for most of the time (with the latency a cycle takes a few hundred ms)
        replay_seconds=2.0,
        strategies=("btc",),
        watchdog=3.0,
        verify_delay=0.1,
    )
    # a stop 10% under the replayed price stays valid while the price moves during a trial
    text = config.read_text().replace("max_open_positions = 4", "max_stop_percent = 25.0")
    text += f'[telegram]\napi_base_url = "{telegram_url}"\npoll_timeout = 0.5\n'
    config.write_text(text)
    return config


def last_price(db: Path, symbol: str) -> float:
    [(last,)] = query(db, "SELECT last FROM paper_market WHERE symbol = ?", symbol)
    return float(last)


def _text(call: Call) -> str:
    return str(call.params.get("text", ""))


class TelegramCloser(threading.Thread):
    """The owner's /close: the fake Bot API server runs in this thread's own event loop (it is
    not thread-safe); after ``go`` and ``delay``, /close BTC is sent and its "Close" button
    pressed, again until a position was closed (or ``stop``, or a deadline)."""

    def __init__(self, delay: float) -> None:
        super().__init__(daemon=True)
        self.delay = delay
        self.ready = threading.Event()  # the server listens: ``url`` is set
        self.go = threading.Event()
        self.done = threading.Event()  # no more /close (the server still serves the bot)
        self.stop = threading.Event()  # the server may stop: the daemon is gone
        self.url = ""
        self.closed = 0
        self.attempts = 0
        self.replies: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc
        finally:
            self.ready.set()
            self.done.set()

    async def _wait(self, event: threading.Event, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not event.is_set() and not self.stop.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return event.is_set()

    async def _main(self) -> None:
        fake = await FakeTelegram(TOKEN).start()
        self.url = fake.base_url
        self.ready.set()
        try:
            await fake.wait_for(lambda calls: any(c.method == "getUpdates" for c in calls), WAIT)
            if not await self._wait(self.go, WAIT):
                return
            await self._wait(threading.Event(), self.delay)
            deadline = time.monotonic() + WAIT / 2  # not forever if nothing is ever opened
            while not self.stop.is_set() and not self.closed and time.monotonic() < deadline:
                await self._close_once(fake)
                await asyncio.sleep(0.1)
            self.done.set()
            await self._wait(self.stop, 10 * WAIT)
        finally:
            await fake.stop()

    async def _close_once(self, fake: FakeTelegram) -> None:
        self.attempts += 1
        n = len(fake.calls)
        fake.command(OWNER, f"/close {BTC}")

        def reply(calls: list[Call]) -> Call | None:  # alerts go to the owner too: skip them
            return next(
                (
                    c
                    for c in calls[n:]
                    if c.method == "sendMessage"
                    and ("Close at market" in _text(c) or "nothing to close" in _text(c))
                ),
                None,
            )

        ask: Call = await fake.wait_for(reply, WAIT)
        if "nothing to close" in _text(ask):
            return
        [data] = [
            b["callback_data"]
            for row in ask.params["reply_markup"]["inline_keyboard"]
            for b in row
            if "Close" in b["text"]
        ]
        m = len(fake.calls)
        fake.press(OWNER, OWNER, int(ask.result["message_id"]), data)

        def result(calls: list[Call]) -> Call | None:
            return next(
                (
                    c
                    for c in calls[m:]
                    if c.method == "sendMessage"
                    and any(
                        k in _text(c) for k in ("closed: closed", "nothing was done", "stopped")
                    )
                ),
                None,
            )

        done: Call = await fake.wait_for(result, WAIT)
        self.replies.append(_text(done))
        self.closed += _text(done).count("closed: closed")


def race_trial(root: Path, seed: int, processes: int = PROCESSES) -> TrialReport:
    """One trial on a fresh account; raises AssertionError when an invariant breaks."""
    report = TrialReport()
    openers: list[Opener] = []
    closer = TelegramCloser(delay=1.0)
    closer.start()
    try:
        closer.ready.wait(WAIT)
        assert closer.error is None and closer.url, closer.error
        config = race_config(root, seed, closer.url)
        db = root / "warden.db"
        telegram = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_ALLOWED_USER_IDS": str(OWNER)}
        with agents() as started, Sampler(db, interval=0.01) as sampler:
            agent = Agent(config, "run", env=telegram)
            started.append(agent)
            agent.wait_for("reconcile.done")
            agent.wait_for("Telegram control on")
            stop = round(last_price(db, BTC) * 0.9, 1)
            args = ["--config", str(config), "open", BTC, "long", "--size", str(SIZE)]
            args += ["--stop", str(stop), "--yes", "--json"]
            try:
                for _ in range(processes):
                    openers.append(
                        Opener(
                            subprocess.Popen(
                                warden_cmd(*args),
                                cwd=root,
                                env=child_env(),
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE,
                                text=True,
                            )
                        )
                    )
                closer.go.set()
                for o in openers:
                    o.out, o.err = o.proc.communicate(timeout=WAIT)
                    o.rc = o.proc.returncode
                closer.done.wait(WAIT)
            finally:
                for o in openers:
                    if o.proc.poll() is None:
                        o.proc.kill()
                        o.proc.wait(timeout=30)
            # the daemon goes on guarding: whatever is left has its one verified live stop
            wait_for_invariants(config)
            assert agent.terminate() == 0, agent.text()[-3000:]
            assert TOKEN not in agent.text()
            report.max_size = sampler.max_size.get(BTC, 0.0)
            report.samples = sampler.samples
    finally:
        closer.stop.set()
        closer.join(timeout=WAIT)
    assert closer.error is None, repr(closer.error)
    report.closed, report.close_attempts = closer.closed, closer.attempts

    codes = sorted(o.rc for o in openers if o.rc is not None)
    assert set(codes) <= {0, REFUSED, BUSY}, [(o.rc, o.err[-1500:]) for o in openers]
    for o in openers:
        doc = o.json()
        if o.rc == 0:
            [result] = doc["results"]
            assert (result["outcome"], result["size"]) == ("protected", SIZE), doc
            report.winners += 1
        elif o.rc == BUSY:
            assert "busy" in o.err and "held by" in o.err, o.err[-1500:]
            report.busy += 1
        else:
            # refused before anything was sent: by the guards, before or under the lease
            assert doc is None or doc["results"][0]["outcome"] == "refused", doc
            assert doc is not None or "refused" in o.err, o.err[-1500:]
            report.refused += 1
    # every loser's refusal is on record; a busy lease in the lease's own record too
    [(refusals,)] = query(
        db,
        "SELECT COUNT(*) FROM refusal WHERE action = 'open' AND purpose IN ('cli', 'cli open')",
    )
    [(lease_refusals,)] = query(db, "SELECT COUNT(*) FROM lease_refusal WHERE purpose = 'cli open'")
    assert refusals == report.busy + report.refused, (refusals, codes)
    assert lease_refusals == report.busy, (lease_refusals, codes)
    # each winner sent exactly one entry; nobody else sent one
    [(cli_entries,)] = query(
        db,
        "SELECT COUNT(*) FROM intent WHERE kind = 'entry' AND purpose = 'cli open' "
        "AND status = 'filled'",
    )
    [(all_cli_intents,)] = query(
        db, "SELECT COUNT(*) FROM intent WHERE kind = 'entry' AND purpose = 'cli open'"
    )
    assert cli_entries == all_cli_intents == report.winners, (cli_entries, all_cli_intents)
    assert report.max_size <= SIZE * (1 + 1e-9), f"position of {report.max_size} seen"
    return report
