"""The outage rig: an exchange that can be cut (DownOkx, Cuttable), a Telegram outbox, a write lock
held from outside, the replay daemon's config, and readers for the alerts each leaves; shared by
the outage and bad-input suites and the outage benchmark."""

from __future__ import annotations

import asyncio
import functools
import io
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import ccxt.async_support  # noqa: F401  imported once for the session, as the adapter does
import pytest
from aiohttp import web

import trading.retry
from bot.config import Config
from storage.db import Database
from tests.fake_okx import FakeOkx
from tests.fake_telegram import FakeTelegram
from tests.rig_cycles import ETH, PATH, STEP, T0, WARMUP, make_config, strategy
from tests.telegram_rig import OWNER
from trading.marketdata import data_filename, write_candles
from trading.models import Candle


async def outbox(db: Database) -> list[dict[str, Any]]:
    async with db.read() as conn:
        cur = await conn.execute(
            "SELECT id, created_at, severity, key, text, delivered_at FROM alert_outbox ORDER BY id"
        )
        return [dict(r) for r in await cur.fetchall()]


def terminal_alerts(stream: io.StringIO) -> list[str]:
    """The alert texts the terminal notifier printed, in order (without the time and icon)."""
    out = []
    for line in stream.getvalue().splitlines():
        if line.startswith("[ALERT "):
            # "[ALERT WARNING] 12:00:00 ! text": the time, then a two-character icon
            out.append(line.split("] ", 1)[1][11:])
    return out


def fast_reads(monkeypatch: pytest.MonkeyPatch, base_delay: float = 0.0) -> None:
    """Read retries with shorter pauses (time compressed: 4 attempts in ~0.35 s instead of
    ~1.75 s), so an outage of a few seconds spans many failed watchdog runs."""
    fast = functools.partial(trading.retry.read, base_delay=base_delay)
    monkeypatch.setattr(trading.retry, "read", fast)


class DownOkx(FakeOkx):
    """The fake OKX with outages: while ``mode`` is set every request fails that way.

    "503" is a bare 503 page, "429" is OKX's rate limit (HTTP 429, code 50011), "drop" closes
    the connection without an answer. Requests refused are kept in ``refused``; the fake's own
    ``requests`` list only what it served."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.mode: str | None = None
        self.until = 0.0
        self.refused: list[tuple[str, str, str]] = []  # (mode, method, path)
        self.down_after_order: tuple[str, float] | None = None  # (mode, seconds)

    def down(self, mode: str, seconds: float | None = None) -> None:
        self.mode = mode
        self.until = time.monotonic() + seconds if seconds is not None else 0.0

    def up(self) -> None:
        self.mode = None

    def _current(self) -> str | None:
        if self.mode is not None and self.until and time.monotonic() >= self.until:
            self.mode = None
        return self.mode

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        mode = self._current()
        if mode is None:
            response = await super()._handle(request)
            order = request.method == "POST" and request.path == "/api/v5/trade/order"
            if order and self.down_after_order is not None:
                mode_after, seconds = self.down_after_order
                self.down_after_order = None
                self.down(mode_after, seconds)
            return response
        self.refused.append((mode, request.method, request.path))
        if mode == "503":
            return web.Response(status=503, text="<html>503 Service Temporarily Unavailable</html>")
        if mode == "429":
            return web.json_response({"msg": "Too Many Requests", "code": "50011"}, status=429)
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=504)

    def posts(self, path: str) -> int:
        return len(self.calls("POST", path))


def okx_config(db_path: Path, url: str) -> Config:
    return Config.model_validate(
        {
            "storage": {"path": str(db_path)},
            "guardian": {"verify_delay_seconds": 0.05, "watchdog_seconds": 1.0},
            "scheduler": {"outbox_seconds": 0.2},
            "exchanges": {"okx": {"kind": "okx", "sandbox": True, "api_url": url}},
        }
    )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()


class Cuttable:
    """A TCP proxy in front of a local server that can refuse every connection for a while:
    ``cut()`` closes its listening socket and aborts the connections it carries (so a client
    sees connections reset, then refused), ``restore()`` listens on the same port again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self) -> Cuttable:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    restore = start

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer, up_writer}
        self._open |= pair
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._open -= pair

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for w in list(self._open):
            w.transport.abort()
        if server is not None:
            await server.wait_closed()

    stop = cut


def long_path(extra_flat: int = 30, lead: int = 0) -> list[Candle]:
    """tests.test_cycles.PATH (enter on bar 10, exit on bar 14), ``lead`` more flat bars
    before the breakout and ``extra_flat`` after its end, so the replay lasts a while."""
    flat = PATH[0]
    bars = [flat] * lead + PATH + [PATH[-1]] * extra_flat
    return [
        Candle(T0 + i * STEP, c.open, c.high, c.low, c.close, c.volume) for i, c in enumerate(bars)
    ]


def replay_daemon_config(
    db_path: Path, data: Path, bars: Sequence[Candle], seconds_per_candle: float, **kw: Any
) -> Config:
    data.mkdir(parents=True, exist_ok=True)
    write_candles(data / data_filename(ETH, "30m"), bars)
    sections: dict[str, Any] = {
        "guardian": {"verify_delay_seconds": 0.05, "watchdog_seconds": 1.0},
        "scheduler": {"outbox_seconds": 0.2},
        **kw,
    }
    return make_config(
        db_path,
        [strategy("momo")],
        replay={
            "data": str(data),
            "seconds_per_candle": seconds_per_candle,
            "warmup_candles": WARMUP,
        },
        **sections,
    )


def telegram_alerts(fake: FakeTelegram, chat: int = OWNER) -> list[str]:
    """The text part of each alert the chat received (the first line is the header), a
    photo's caption included (a stop repair or emergency close carries the position chart)."""
    texts = [
        fake.caption(c) if c.method == "sendPhoto" else str(c.result["text"])
        for c in fake.delivered(chat)
    ]
    return [t.split("\n", 1)[1] for t in texts if "\n" in t]


@asynccontextmanager
async def write_lock_held(db_path: Path) -> AsyncIterator[None]:
    """Another connection (another process) holds SQLite's write lock."""
    other = await Database.open(db_path, migrate=False)
    await other._conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        await other._conn.execute("ROLLBACK")
        await other.close()
