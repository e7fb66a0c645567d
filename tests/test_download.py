"""`warden download` drives the REAL ccxt clients against local fake OKX / Hyperliquid servers
that answer with the exchanges' own payload layouts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.cli import main
from bot.commands import download
from trading.marketdata import read_candles

STEP = 1800  # 30m
LISTED = 1_700_000_000 // STEP * STEP  # the fake market's first candle, by default


def price_at(ts: int) -> tuple[float, float, float, float, float]:
    """A deterministic candle for any open time: (open, high, low, close, volume)."""
    base = 60_000 + (ts // STEP % 1000) * 10.0
    o, c = base, base + (5.0 if ts // STEP % 2 else -5.0)
    return o, max(o, c) + 2.5, min(o, c) - 2.5, c, 1.25


@dataclass
class Fake:
    url: str = ""
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail: bool = False
    bad_candle: bool = False
    listed: int = LISTED  # the market's first candle

    def opens(self, lo: int, hi: int) -> list[int]:
        """Candle open times in [lo, hi], the still-forming one included (as exchanges do)."""
        now = int(time.time()) // STEP * STEP
        first = max(self.listed, (lo + STEP - 1) // STEP * STEP)
        return list(range(first, min(hi, now) + 1, STEP))


# -- OKX ---------------------------------------------------------------------------------------

INSTRUMENT = {
    "alias": "",
    "baseCcy": "",
    "category": "1",
    "ctMult": "1",
    "ctType": "linear",
    "ctVal": "0.01",
    "ctValCcy": "BTC",
    "expTime": "",
    "instFamily": "BTC-USDT",
    "instId": "BTC-USDT-SWAP",
    "instType": "SWAP",
    "lever": "100",
    "listTime": str(LISTED * 1000),
    "lotSz": "0.01",
    "maxLmtSz": "100000000",
    "maxMktSz": "10000",
    "minSz": "0.01",
    "optType": "",
    "quoteCcy": "",
    "settleCcy": "USDT",
    "state": "live",
    "stk": "",
    "tickSz": "0.1",
    "uly": "BTC-USDT",
}


def okx_app(fake: Fake) -> web.Application:
    async def instruments(request: web.Request) -> web.Response:
        fake.requests.append((request.path, dict(request.query)))
        assert request.query["instType"] == "SWAP"
        return web.json_response({"code": "0", "msg": "", "data": [INSTRUMENT]})

    async def candles(request: web.Request) -> web.Response:
        q = dict(request.query)
        fake.requests.append((request.path, q))
        if fake.fail:
            return web.Response(status=500, text="Internal Server Error")
        assert q["instId"] == "BTC-USDT-SWAP" and q["bar"] == "30m"
        # OKX: after = records older than this ts, before = newer than this ts; newest first
        before = int(q.get("before", 0)) // 1000
        after = int(q.get("after", 2**62)) // 1000
        opens = [t for t in fake.opens(before + 1, after - 1)][-int(q.get("limit", 100)) :]
        now = int(time.time())
        rows = []
        for t in reversed(opens):
            o, h, low, c, v = price_at(t)
            if fake.bad_candle:
                h = low - 1
            confirm = "1" if t + STEP <= now else "0"
            vol = [str(v * 100), str(v), str(v * c)]
            rows.append([str(t * 1000), str(o), str(h), str(low), str(c), *vol, confirm])
        return web.json_response({"code": "0", "msg": "", "data": rows})

    app = web.Application()
    app.router.add_get("/api/v5/public/instruments", instruments)
    app.router.add_get("/api/v5/market/candles", candles)
    app.router.add_get("/api/v5/market/history-candles", candles)
    return app


# -- Hyperliquid -------------------------------------------------------------------------------

SPOT_META = {
    "tokens": [
        {
            "name": "USDC",
            "szDecimals": 8,
            "weiDecimals": 8,
            "index": 0,
            "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054",
            "isCanonical": True,
            "evmContract": None,
            "fullName": None,
        }
    ],
    "universe": [],
}
PERP_META = [
    {"universe": [{"name": "BTC", "szDecimals": 5, "maxLeverage": 40, "onlyIsolated": False}]},
    [
        {
            "dayNtlVlm": "1000.0",
            "funding": "0.0000125",
            "impactPxs": ["69000.0", "69001.0"],
            "markPx": "69000.0",
            "midPx": "69000.5",
            "openInterest": "10.0",
            "oraclePx": "69000.0",
            "premium": "0.0",
            "prevDayPx": "68000.0",
        }
    ],
]


def hyperliquid_app(fake: Fake) -> web.Application:
    async def info(request: web.Request) -> web.Response:
        body = await request.json()
        fake.requests.append((request.path, body))
        if body["type"] == "spotMeta":
            return web.json_response(SPOT_META)
        if body["type"] == "metaAndAssetCtxs":
            return web.json_response(PERP_META)
        assert body["type"] == "candleSnapshot", body
        if fake.fail:
            return web.Response(status=500, text="Internal Server Error")
        req = body["req"]
        assert (req["coin"], req["interval"]) == ("BTC", "30m")
        opens = fake.opens(req["startTime"] // 1000, req["endTime"] // 1000)[:5000]
        out = []
        for t in opens:
            o, h, low, c, v = price_at(t)
            if fake.bad_candle:
                h = low - 1
            out.append(
                {
                    "t": t * 1000,
                    "T": (t + STEP) * 1000 - 1,
                    "s": "BTC",
                    "i": "30m",
                    "o": str(o),
                    "c": str(c),
                    "h": str(h),
                    "l": str(low),
                    "v": str(v),
                    "n": 12,
                }
            )
        return web.json_response(out)

    app = web.Application()
    app.router.add_post("/info", info)
    return app


@pytest.fixture(params=["okx", "hyperliquid"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, Fake]]:
    """The fake exchange on its own loop in a thread: the CLI runs its own asyncio.run()."""
    kind: str = request.param
    fake = Fake()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner: web.AppRunner | None = None

    async def start() -> None:
        nonlocal runner
        app = okx_app(fake) if kind == "okx" else hyperliquid_app(fake)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        fake.url = f"http://127.0.0.1:{port}"
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    started.wait(10)
    try:
        yield kind, fake
    finally:
        assert runner is not None
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


SYMBOL = {"okx": "BTC/USDT:USDT", "hyperliquid": "BTC/USDC:USDC"}


def cli(fake: Fake, kind: str, *args: str) -> int:
    return main(["download", SYMBOL[kind], "--exchange", kind, "--api-url", fake.url, *args])


def test_download_writes_every_closed_candle(
    server: tuple[str, Fake], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kind, fake = server
    out = tmp_path / "btc.csv"
    assert cli(fake, kind, "--days", "40", "--out", str(out)) == 0
    candles = read_candles(out, "30m")  # the replay reader accepts it
    now = int(time.time())
    start = (now - 40 * 86_400) // STEP * STEP
    forming = now // STEP * STEP
    assert [c.ts for c in candles] == list(range(start, forming, STEP))  # no gap, none forming
    for c in candles[:: len(candles) // 7]:
        assert (c.open, c.high, c.low, c.close, c.volume) == price_at(int(c.ts))
    assert out.read_text().startswith("timestamp,open,high,low,close,volume\n")
    assert f"wrote {len(candles):,} 30m candles" in capsys.readouterr().out
    paths = [p for p, _ in fake.requests]
    if kind == "okx":
        # paged by `since`: 300 a page, older pages from the history endpoint
        assert "/api/v5/market/history-candles" in paths and "/api/v5/market/candles" in paths
        pages = [q for p, q in fake.requests if p.startswith("/api/v5/market/")]
        assert len(pages) == -(-len(candles) // 300)
        assert all(q["limit"] == "300" for q in pages)
    else:
        assert [b["type"] for _, b in fake.requests].count("candleSnapshot") == 1


def test_download_default_name_and_listing_start(server: tuple[str, Fake], tmp_path: Path) -> None:
    """Asking for more days than the market has: it starts at the listing; the default file
    name is the replay file name, in the current folder."""
    kind, fake = server
    fake.listed = (int(time.time()) - 3 * 86_400) // STEP * STEP
    assert cli(fake, kind, "--days", "5") == 0
    name = "BTC-USDT-USDT_30m.csv" if kind == "okx" else "BTC-USDC-USDC_30m.csv"
    candles = read_candles(tmp_path / name, "30m")
    assert len(candles) in (3 * 48 - 1, 3 * 48)


def test_server_errors_exit_1_and_leave_no_file(
    server: tuple[str, Fake],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kind, fake = server
    monkeypatch.setattr(download, "RETRY_DELAY", 0.01)
    fake.fail = True
    out = tmp_path / "btc.csv"
    # a network failure is not a usage error: the same command may work later (exit 1)
    assert cli(fake, kind, "--days", "3", "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert "network error" in err and "no file written" in err
    assert list(tmp_path.iterdir()) == []  # no partial file, no temporary file
    candle_calls = [r for r in fake.requests if "candle" in str(r)]
    assert len(candle_calls) == download.RETRIES  # retried (a read), then gave up


def test_unknown_symbol_exits_2(
    server: tuple[str, Fake], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kind, fake = server
    code = main(["download", "DOGE/USDT:USDT", "--exchange", kind, "--api-url", fake.url])
    assert code == 2
    assert "unknown symbol" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_bad_reply_exits_2(
    server: tuple[str, Fake], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kind, fake = server
    fake.bad_candle = True
    assert cli(fake, kind, "--days", "2", "--out", str(tmp_path / "x.csv")) == 2
    err = capsys.readouterr().err
    assert "bad reply" in err and "high" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--exchange", "binance"], "--exchange binance: not an exchange kind"),
        (["--exchange", "paper"], "a paper exchange has no history to download"),
        (["--exchange", "okx", "--timeframe", "7m"], "unsupported timeframe '7m'"),
        (["--exchange", "okx", "--days", "0"], "--days 0: must be between 1 and 3650"),
        (["--exchange", "okx", "--out", "nowhere/x.csv"], "folder nowhere does not exist"),
    ],
)
def test_bad_arguments_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["download", "BTC/USDT:USDT", *args]) == 2
    assert message in capsys.readouterr().err
