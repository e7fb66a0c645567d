"""The charts (bot/charts): what is plotted, checked in the figure's own data coordinates, on
hand-made inputs, on the paper exchange with the bundled replay, and through the real OKX and
Hyperliquid adapters against the local fake venues; the CLI (`warden chart`, `warden pnl --png`)
in real processes; and that nothing but drawing imports matplotlib."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import ccxt.async_support  # noqa: F401  imported once for the session, as the adapters do
import pytest
from matplotlib.collections import PathCollection
from matplotlib.dates import date2num
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bot import replay
from bot.charts.backtest import backtest_png, figure_backtest
from bot.charts.equity import equity_png, figure_equity
from bot.charts.model import (
    BacktestChartData,
    BacktestTrade,
    EquityChartData,
    EquitySeries,
    MarkKind,
    PositionChartData,
    PositionMark,
    StopMark,
    TradeMark,
)
from bot.charts.position import figure_position, position_png, stop_label, title_text
from bot.charts.series import anchored_equity
from bot.charts.sources import ChartSource, position_chart_data, timeframe_for
from bot.charts.style import png_size, to_dt
from bot.config.schema import ReplayConfig
from bot.telegram.pnl import equity_points
from storage.db import Database
from tests.conftest import ROOT, child_env, warden_cmd
from tests.rig_okx import Rig as OkxRig
from tests.rig_okx import rig  # noqa: F401  the OKX scenario fixture
from tests.telegram_rig import BTC, running_bot
from trading.executor import Outcome
from trading.journal import Exit
from trading.models import Candle, PositionSide, StopState

NOW = 1_800_000_000.0
LONG, SHORT = PositionSide.LONG, PositionSide.SHORT


def candles(n: int = 48, step: float = 1800, start_px: float = 69_000.0) -> tuple[Candle, ...]:
    out, px = [], start_px
    for i in range(n):
        close = px + (40 if i % 3 else -60)
        out.append(
            Candle(NOW - (n - i) * step, px, max(px, close) + 25, min(px, close) - 25, close, 1)
        )
        px = close
    return tuple(out)


def by_gid(fig: Figure, gid: str) -> Any:
    found = [a for ax in fig.axes for a in ax.get_children() if a.get_gid() == gid]
    assert len(found) == 1, (gid, found)
    return found[0]


def hline_y(fig: Figure, gid: str) -> float:
    line = by_gid(fig, gid)
    assert isinstance(line, Line2D)
    ys = set(line.get_ydata())  # type: ignore[arg-type]
    assert len(ys) == 1, ys  # horizontal
    return float(ys.pop())


def x_of(ts: float) -> float:
    return float(date2num(to_dt(ts)))


def position_data(**changes: Any) -> PositionChartData:
    base: dict[str, Any] = {
        "exchange": "okx",
        "symbol": BTC,
        "timeframe": "30m",
        "candles": candles(),
        "last_price": 69_420.5,
        "now": NOW,
        "position": PositionMark(LONG, 0.01, 69_100.0, 3.2, 55_000.0),
        "stop": StopMark(65_600.0, StopState.LIVE, NOW - 14),
        "trades": (
            TradeMark(NOW - 20 * 1800, 69_100.0, MarkKind.ENTRY, LONG, 0.01),
            TradeMark(NOW - 40 * 1800, 68_900.0, MarkKind.EXIT, SHORT, 0.02),
        ),
    }
    return PositionChartData(**(base | changes))


# --- the position chart -------------------------------------------------------------------------


def test_position_chart_plots_each_level_where_it_is() -> None:
    d = position_data()
    fig = figure_position(d)
    assert hline_y(fig, "stop") == 65_600.0  # in data coordinates, exactly the stop level
    assert hline_y(fig, "entry") == 69_100.0
    assert hline_y(fig, "price") == 69_420.5
    [ax] = fig.axes
    low, high = ax.get_ylim()
    assert low < 65_600.0 < 69_420.5 < high  # every level is inside the view
    assert by_gid(fig, "stop-label").get_text() == (
        "stop 65,600 · LIVE · verified live 14 s ago ("
        + time.strftime("%H:%M:%S", time.gmtime(NOW - 14))
        + " UTC)"
    )
    wicks = by_gid(fig, "wicks")
    assert len(wicks.get_segments()) == len(d.candles)
    [bars] = ax.containers
    assert [round(r.get_x() + r.get_width() / 2, 6) for r in bars] == [
        round(x_of(c.ts), 6) for c in d.candles
    ]
    entries, exits = by_gid(fig, "entrys"), by_gid(fig, "exits")
    assert isinstance(entries, PathCollection)
    assert [tuple(p) for p in entries.get_offsets()] == [(x_of(NOW - 20 * 1800), 69_100.0)]
    assert [tuple(p) for p in exits.get_offsets()] == [(x_of(NOW - 40 * 1800), 68_900.0)]
    # the liquidation is far away: written, not drawn (it would squash the candles)
    assert "liquidation 55,000" in by_gid(fig, "liquidation-label").get_text()
    assert fig.texts[0].get_text() == "okx · BTC/USDT:USDT · LONG 0.01 · uPnL +3.20"
    assert ax.get_xlabel() == "time (UTC)"
    assert png_size(position_png(d)) == (1280, 720)


def test_a_near_liquidation_is_drawn_and_a_failed_stop_says_so() -> None:
    d = position_data(
        position=PositionMark(SHORT, 0.5, 69_000.0, -12.5, 70_900.0),
        stop=StopMark(72_000.0, StopState.FAILED, None),
    )
    fig = figure_position(d)
    assert hline_y(fig, "liquidation") == 70_900.0
    assert hline_y(fig, "stop") == 72_000.0
    assert by_gid(fig, "stop-label").get_text() == "stop 72,000 · FAILED · never read back live"
    assert by_gid(fig, "stop").get_color() != by_gid(fig, "entry").get_color()
    assert title_text(d) == "okx · BTC/USDT:USDT · SHORT 0.5 · uPnL -12.50"


def test_without_a_position_the_candles_and_trades_are_still_drawn() -> None:
    d = position_data(position=None, stop=None)
    fig = figure_position(d)
    assert fig.texts[0].get_text() == "okx · BTC/USDT:USDT · no position"
    assert len(by_gid(fig, "wicks").get_segments()) == 48
    assert len(by_gid(fig, "exits").get_offsets()) == 1
    for gid in ("stop", "entry", "liquidation"):
        assert not [a for a in fig.axes[0].get_children() if a.get_gid() == gid]


def test_no_candles_and_no_price_is_still_a_picture() -> None:
    d = position_data(candles=(), timeframe=None, last_price=None, position=None, stop=None,
                      trades=())  # fmt: skip
    assert png_size(position_png(d)) == (1280, 720)


def test_a_trader_stop_is_labelled_as_theirs() -> None:
    assert stop_label(StopMark(65_000, StopState.LIVE, None, False), NOW).endswith(
        "your own (set on the venue)"
    )


@pytest.mark.parametrize(
    ("hours", "tf"), [(1, "1m"), (2.5, "1m"), (6, "5m"), (24, "15m"), (72, "30m"), (720, "1d")]
)
def test_candle_size_keeps_a_phone_readable_count(hours: float, tf: str) -> None:
    assert timeframe_for(hours) == tf


# --- equity and backtest ------------------------------------------------------------------------


def test_equity_chart_plots_the_series_pnl_computes_one_line_per_exchange() -> None:
    exits = [
        Exit(
            1, "okx:main", BTC, LONG, 0.01, 69_000.0, 65_000.0, "stop_loss", 0.0, -40.0, NOW - 3600
        ),
        Exit(2, "okx:main", BTC, LONG, 0.01, 69_000.0, 70_500.0, "signal", 0.0, 15.0, NOW - 7200),
    ]
    okx = equity_points(exits, 10_000.0, NOW - 86_400, NOW)
    assert okx == ((NOW - 86_400, 10_025.0), (NOW - 7200, 10_040.0), (NOW - 3600, 10_000.0),
                   (NOW, 10_000.0))  # fmt: skip
    paper = anchored_equity([], 5_000.0, NOW - 86_400, NOW)
    fig = figure_equity(
        EquityChartData("t", (EquitySeries("okx", okx, "USDT"), EquitySeries("paper", paper)))
    )
    for name, series in (("okx", okx), ("paper", paper)):
        line = by_gid(fig, f"equity:{name}")
        assert list(line.get_ydata()) == [v for _, v in series]
        assert list(line.get_xdata()) == [x_of(t) for t, _ in series]
    assert by_gid(fig, "drawdown:okx") is not None  # shaded below the running peak
    [ax] = fig.axes
    assert ax.get_ylabel() == "equity (USDT)" and ax.get_xlabel() == "time (UTC)"
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    # the date under the first tick and where the day changes; no two ticks read alike (the
    # old charts wrote the same date at both ends)
    days = [time.strftime("%d %b", time.gmtime(t)) for t in (NOW - 86_400, NOW)]
    assert labels[0].endswith("\n" + days[0]) and any(lb.endswith("\n" + days[1]) for lb in labels)
    assert len(labels) >= 3 and len(set(labels)) == len(labels)
    assert png_size(equity_png(EquityChartData("t", (EquitySeries("okx", okx),)))) == (1280, 720)


def test_backtest_chart_names_strategy_data_and_synthetic() -> None:
    curve = tuple((NOW + i * 1800, 10_000.0 + (i % 7) * 10 - i) for i in range(200))
    d = BacktestChartData(
        ("btc_momentum (momentum_breakout: lookback 20)",),
        ("paper BTC/USDT:USDT 30m, 2,880 candles SYNTHETIC",),
        True,
        curve,
        (BacktestTrade(NOW, NOW + 10 * 1800, 12.0), BacktestTrade(NOW, NOW + 50 * 1800, -3.0)),
    )
    fig = figure_backtest(d)
    title = fig.texts[0].get_text()
    assert "btc_momentum (momentum_breakout: lookback 20)" in title and "SYNTHETIC" in title
    assert list(by_gid(fig, "equity").get_ydata()) == [v for _, v in curve]
    assert [tuple(p) for p in by_gid(fig, "won").get_offsets()] == [
        (x_of(NOW + 10 * 1800), curve[10][1])
    ]
    assert [tuple(p) for p in by_gid(fig, "lost").get_offsets()] == [
        (x_of(NOW + 50 * 1800), curve[50][1])
    ]
    assert by_gid(fig, "drawdown") is not None
    assert png_size(backtest_png(d)) == (1280, 720)
    real = BacktestChartData(("a (b)",), ("okx BTC 1h from BTC_1h.csv",), False, curve)
    assert "SYNTHETIC" not in figure_backtest(real).texts[0].get_text()


# --- on the paper exchange with the bundled replay (the demo's data) ------------------------------


async def test_paper_replay_chart_of_an_open_position(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as bot:
        paper = bot.acct.exchange
        await replay.prepare(paper, ReplayConfig(data="bundled", warmup_candles=120), {BTC: "30m"})
        stop = round((await paper.ticker(BTC)).last * 0.95, 1)
        async with bot.daemon.leases.hold(bot.acct.scope, "test open") as lease:
            opened = await bot.acct.executor.open(lease, BTC, LONG, 0.01, stop, "test")
        assert opened.ok, opened.detail
        src = ChartSource("paper", bot.acct.scope, paper, bot.acct.journal)
        d = await position_chart_data(src, BTC, 24, timeframes=["30m"])
        # the replay serves 30m only: 15m (the size for 24 h) is refused, the strategy's used
        assert d.timeframe == "30m" and len(d.candles) == 49
        assert d.position is not None and d.position.side is LONG and d.position.size == 0.01
        assert d.stop is not None and (d.stop.level, d.stop.state) == (stop, StopState.LIVE)
        [rec] = await bot.acct.journal.stops_for(bot.acct.scope, BTC)
        assert d.stop.verified_at == rec.verified_at is not None
        assert "replayed candles (recorded dates)" in d.notes
        assert hline_y(figure_position(d), "stop") == stop


# --- through the real adapters, against the fake venues ------------------------------------------


async def _cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        *warden_cmd(*args), cwd=cwd, env=child_env(**env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return subprocess.CompletedProcess(list(args), proc.returncode or 0, out.decode(), err.decode())


@pytest.mark.slow
async def test_warden_chart_on_okx_and_hyperliquid_fakes(tmp_path: Path) -> None:
    from tests.fake_hyperliquid import FakeHyperliquid
    from tests.fake_okx import FakeOkx
    from tests.rig_exchange_wiring import SECRETS, config
    from tests.rig_hyperliquid import WALLET

    okx = await FakeOkx(demo=True).start()
    start = int(time.time() * 1000) // 900_000 * 900_000 - 100 * 900_000
    okx.candles["BTC-USDT-SWAP"] = [
        [str(start + i * 900_000), "69000", "69100", "68900", str(69_000 + i), "5", "5", "5", "1"]
        for i in range(100)
    ]
    hl = FakeHyperliquid(WALLET)
    hl._now = int(time.time() * 1000)
    hl_url = await hl.start()
    try:
        (tmp_path / "warden.toml").write_text(config(okx.url, hl_url))
        missing = await _cli(tmp_path, "chart", "btc", "--exchange", "okx", "--png",
                             str(tmp_path / "x.png"), **SECRETS)  # fmt: skip
        assert missing.returncode == 2 and "does not exist" in missing.stderr  # nothing created
        assert not (tmp_path / "warden.db").exists()
        await (await Database.open(tmp_path / "warden.db")).close()  # as the agent leaves it
        for name in ("okx", "hl"):
            png = tmp_path / f"{name}.png"
            out = await _cli(tmp_path, "chart", "btc", "--exchange", name, "--hours", "12",
                             "--png", str(png), "--json", **SECRETS)  # fmt: skip
            assert out.returncode == 0, out.stderr
            doc = json.loads(out.stdout)
            symbol = BTC if name == "okx" else "BTC/USDC:USDC"  # Hyperliquid settles in USDC
            assert doc["symbol"] == symbol and doc["exchange"] == name and doc["position"] is None
            assert doc["candles"] > 0 and doc["last_price"] > 0, doc
            assert png_size(png.read_bytes()) == (1280, 720)
            for secret in SECRETS.values():
                assert secret not in out.stdout + out.stderr
        # 12 h in 5m candles from OKX's candles endpoint (the fake serves what it holds)
        assert okx.calls("GET", "market/candles")
        assert doc["timeframe"] == "5m"
        bad = await _cli(tmp_path, "chart", "dogeusdt", "--exchange", "okx", "--png",
                         str(tmp_path / "x.png"), **SECRETS)  # fmt: skip
        assert bad.returncode == 2 and "unknown symbol dogeusdt" in bad.stderr
        hours = await _cli(tmp_path, "chart", "btc", "--exchange", "okx", "--hours", "9999",
                           "--png", str(tmp_path / "x.png"), **SECRETS)  # fmt: skip
        assert hours.returncode == 2 and "--hours" in hours.stderr
        assert not (tmp_path / "x.png").exists()
    finally:
        await okx.stop()
        await hl.stop()


async def test_okx_chart_of_a_guarded_position(rig: OkxRig) -> None:  # noqa: F811
    """The real OKX adapter (ccxt) against the fake: the stop read back live by the executor
    is the line on the chart, with the journal's verified time and the entry fill marked."""
    res = await rig.open(BTC, LONG, 0.05, 65_600.0)
    assert res.outcome is Outcome.PROTECTED, res.detail
    start = int(time.time() * 1000) // 300_000 * 300_000 - 100 * 300_000
    rig.fake.candles["BTC-USDT-SWAP"] = [
        [str(start + i * 300_000), "69000", "69100", "68900", "69050", "5", "5", "5", "1"]
        for i in range(100)
    ]
    d = await position_chart_data(ChartSource("okx", "okx:main", rig.okx, rig.journal), BTC, 6)
    assert d.timeframe == "5m" and len(d.candles) == 73  # 6 h of 5m candles, and the forming one
    assert d.position is not None and d.position.size == pytest.approx(0.05)
    assert d.stop is not None and (d.stop.level, d.stop.state) == (65_600.0, StopState.LIVE)
    [rec] = await rig.journal.stops_for("okx:main", BTC)
    assert d.stop.verified_at == rec.verified_at is not None
    assert [(t.kind, t.side) for t in d.trades] == [(MarkKind.ENTRY, LONG)]
    fig = figure_position(d)
    assert hline_y(fig, "stop") == 65_600.0 and hline_y(fig, "entry") == d.position.entry


# --- only drawing loads matplotlib ----------------------------------------------------------------


@pytest.mark.slow
def test_importing_the_agent_does_not_import_matplotlib() -> None:
    code = (
        "import sys, bot.daemon, bot.telegram, bot.cli, bot.charts.sources, bot.charts.series, "
        "bot.commands.chart, bot.commands.pnl, bot.commands.backtest, bot.telegram.chart\n"
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
        env=child_env(), timeout=120, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "False"


@pytest.mark.slow
async def test_warden_pnl_png_draws_the_equity_it_computes(tmp_path: Path) -> None:
    """`warden pnl --png` on paper, in real processes: a round trip, then the chart; the series
    it draws (pnl.equity_series) ends at the account's equity and starts one net P&L below."""
    from bot.commands.pnl import equity_series, read_balances
    from bot.config import load_config
    from bot.services import build_account
    from bot.summary import load_trades

    (tmp_path / "warden.toml").write_text('[exchanges.paper]\nkind = "paper"\n')
    for argv in (
        ("open", "btc", "long", "--size", "0.01", "--stop", "65000", "--yes"),
        ("close", "btc", "--yes"),
        ("pnl", "--png", "pnl.png", "--json"),
    ):
        out = await _cli(tmp_path, *argv)
        assert out.returncode == 0, (argv, out.stderr)
    [trade] = json.loads(out.stdout)["trades"]
    assert png_size((tmp_path / "pnl.png").read_bytes()) == (1280, 720)

    config = load_config(tmp_path / "warden.toml")
    db = await Database.open(tmp_path / "warden.db")
    try:
        acct = build_account(config, "paper", db)
        trades, errors = await load_trades([acct])
        balances = await read_balances([acct])
    finally:
        await db.close()
    assert errors == [] and len(trades) == 1
    start, now = trades[0].opened_at, time.time()
    [series] = equity_series(["paper"], trades, balances, start, now)
    equity = balances["paper"].total
    assert series.points[-1][1] == equity
    assert series.points[0][1] == pytest.approx(equity - trade["net_pnl"])
    line = by_gid(figure_equity(EquityChartData("t", (series,))), "equity:paper")
    assert list(line.get_ydata()) == [v for _, v in series.points]


@pytest.mark.parametrize(
    ("liq", "expected"), [("61234.5", 61234.5), ("", None), ("0", None), ("abc", None)]
)
def test_okx_liquidation_price_is_read_for_display_only(liq: str, expected: float | None) -> None:
    """OKX's liqPx (GET /api/v5/account/positions, "Estimated liquidation price"; "" in ccxt's
    recorded okx.json): read when it is a price; anything else is no price, never a refusal."""
    from decimal import Decimal

    from trading.adapters.okx_parse import Contract, position_from

    one = Decimal(1)
    btc = Contract(BTC, "BTC-USDT-SWAP", "BTC", "USDT", Decimal("0.01"), one, one, Decimal("0.1"))
    raw = {"pos": "5", "posSide": "net", "avgPx": "69000", "upl": "1.5", "lever": "5"}
    p = position_from(raw | {"liqPx": liq}, btc)
    assert p is not None and p.size == 0.05 and p.liquidation_price == expected
