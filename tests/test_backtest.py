"""Backtests: the same fills as the live path on the same candles, known metrics, the CLI."""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.config.load import load_config
from bot.config.schema import FaultsConfig
from bot.cycles import build_runs
from bot.exchanges import paper_settings
from bot.progress import ProgressBar
from bot.services import build_account, risk_limits, stop_policy
from storage.db import Database
from storage.held_lease import LeaseManager
from storage.lease import LeaseStore
from trading.backtest import AccountSpec, SymbolData, backtest_settings, run_backtest
from trading.backtest.memory_paper import MemoryPaperStore
from trading.backtest.metrics import Drawdown, Ledger, exposure, max_drawdown, win_rate
from trading.cycle import run_cycle
from trading.marketdata import read_bundled, write_candles
from trading.models import Candle, OrderSide, PositionSide
from trading.paper import PaperExchange, Trade

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
WARMUP, STEPS = 40, 200


async def no_sleep(_: float) -> None:
    return None


def fill_key(t: Trade) -> tuple[Any, ...]:
    return (t.symbol, t.side, t.size, t.price, round(t.fee, 9), t.reduce_only, t.stop_id is None)


async def live_fills(db: Database, faults: bool) -> list[tuple[Any, ...]]:
    """The daemon's replay tick by hand: SQLite paper exchange and journal, the real lease."""
    config = load_config(None)  # the embedded demo: two strategies on one paper account
    if not faults:
        paper = config.exchanges["paper"].model_copy(update={"faults": FaultsConfig()})
        config = config.model_copy(update={"exchanges": {"paper": paper}})
    acct = build_account(config, "paper", db, sleep=no_sleep)
    ex = acct.exchange
    assert isinstance(ex, PaperExchange)
    for symbol in (BTC, ETH):
        candles = read_bundled(symbol)[: WARMUP + STEPS]
        await ex.load_candles(symbol, candles, timeframe="30m", warmup=WARMUP)
    leases = LeaseManager(LeaseStore(db), ttl=30, heartbeat=5)
    runs = build_runs(config)
    for _ in range(STEPS):
        for symbol in (BTC, ETH):
            await ex.advance(symbol)
        for run in runs:
            async with leases.hold(acct.scope, run.purpose) as lease:
                await run_cycle(
                    lease, run, ex, acct.executor, acct.guardian, acct.journal, acct.scope
                )
    return [fill_key(t) for t in await ex.trades()]


async def backtest_fills(faults: bool) -> tuple[list[tuple[Any, ...]], Any]:
    config = load_config(None)
    settings = backtest_settings(paper_settings(config.exchanges["paper"]), faults)
    data = {s: SymbolData(read_bundled(s)[: WARMUP + STEPS], WARMUP) for s in (BTC, ETH)}
    spec = AccountSpec("paper", settings, tuple(build_runs(config)), data)
    stores: list[MemoryPaperStore] = []
    real_init = MemoryPaperStore.__init__

    def spy(self: MemoryPaperStore) -> None:
        real_init(self)
        stores.append(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MemoryPaperStore, "__init__", spy)
        result = await run_backtest([spec], risk_limits(config), stop_policy(config))
    trades = await stores[0].book("paper").trades(None, None)
    return [fill_key(t) for t in trades], result


@pytest.mark.parametrize("faults", [False, True], ids=["clean", "faults"])
async def test_backtest_fills_equal_the_live_path(db: Database, faults: bool) -> None:
    """The "cannot drift apart" proof: same candles, same fills, price for price."""
    live = await live_fills(db, faults)
    simulated, result = await backtest_fills(faults)
    assert simulated == live
    reasons = {t.exit_reason for t in result.trips}
    assert len(result.trips) >= 10 and {"stop_loss", "signal"} <= reasons
    assert {t.strategy for t in result.trips} == {"btc_momentum", "eth_bollinger"}
    if faults:  # the demo's silent stop failures were caught and repaired in the backtest too
        assert result.incidents >= 1


# -- metrics on hand-made series ---------------------------------------------------------------


def test_max_drawdown_money_and_percent() -> None:
    assert max_drawdown([100, 120, 90, 130, 104, 140]) == (30, 25.0)
    assert max_drawdown([100, 101, 102]) == (0.0, 0.0)
    dd = Drawdown()
    for v in (1000, 800, 1200, 1100):
        dd.update(v)
    assert (dd.worst, dd.worst_pct) == (200, 20.0)


def _trade(side: OrderSide, size: float, price: float, pnl: float, ts: float, **kw: Any) -> Trade:
    return Trade(f"o{ts}", BTC, side, size, price, 1.0, pnl, kw.get("reduce", False), ts, None)


def test_ledger_round_trips_win_rate_and_fees() -> None:
    ledger = Ledger("paper")
    buy, sell = OrderSide.BUY, OrderSide.SELL
    ledger.fill(_trade(buy, 1, 100, 0, 1), "a", "")
    ledger.fill(_trade(sell, 1, 110, 10, 2, reduce=True), "a", "signal")  # +10 -2 fees = +8
    ledger.fill(_trade(sell, 2, 100, 0, 3), "b", "")
    ledger.fill(_trade(buy, 1, 104, -4, 4, reduce=True), "b", "stop_loss")
    ledger.fill(_trade(buy, 1, 106, -6, 5, reduce=True), "b", "stop_loss")  # -10 -3 fees = -13
    ledger.fill(_trade(buy, 1, 100, 0, 6), "a", "")  # still open
    first, second = ledger.trips
    assert (first.strategy, first.side, first.pnl, first.fees, first.exit_reason) == (
        "a",
        PositionSide.LONG,
        8.0,
        2.0,
        "signal",
    )
    assert (second.size, second.exit_price, second.pnl, second.exit_reason) == (
        2,
        105,
        -13,
        "stop_loss",
    )
    assert win_rate(ledger.trips) == 0.5  # a fraction, as warden pnl's
    assert win_rate([]) is None
    assert ledger.realized == {"a": 7.0, "b": -13.0}
    assert ledger.fees == {"a": 3.0, "b": 3.0}
    [still] = ledger.open_trips()
    assert (still.exit_at, still.exit_reason) == (None, None)
    assert exposure(3, 12) == 25.0 and exposure(0, 0) == 0.0


def _ramp(n: int, start_ts: float = 1_767_225_600.0) -> list[Candle]:
    """Up 1% a candle, then a 25% drop: one breakout long, stopped out on the last candle."""
    out, price = [], 100.0
    for i in range(n):
        nxt = price * (0.75 if i == n - 1 else 1.01)
        hi, lo = max(price, nxt) * 1.001, min(price, nxt) * 0.999
        out.append(Candle(start_ts + i * 1800, price, round(hi, 4), round(lo, 4), nxt, 1.0))
        price = nxt
    return out


async def test_engine_metrics_on_a_known_series() -> None:
    config = load_config(None)
    [run] = [r for r in build_runs(config) if r.name == "btc_momentum"]
    settings = backtest_settings(paper_settings(config.exchanges["paper"]), False)
    settings = replace(settings, taker_fee=0.0, slippage_bps=0.0)
    candles = _ramp(40)
    spec = AccountSpec("paper", settings, (run,), {BTC: SymbolData(candles)})
    res = await run_backtest([spec], risk_limits(config), stop_policy(config))
    [trip] = [t for t in res.trips if t.closed]
    [then] = [t for t in res.trips if not t.closed]  # the drop is a downside breakout
    assert then.side is PositionSide.SHORT and then.entry_at > trip.exit_at
    assert (trip.side, trip.exit_reason, trip.fees) == (PositionSide.LONG, "stop_loss", 0.0)
    # entered on the close of the first candle that can break out (lookback candles seen)
    entry_index = run.strategy.lookback - 1
    assert trip.entry_price == pytest.approx(candles[entry_index].close, abs=0.1)
    assert trip.entry_at == pytest.approx(candles[entry_index].ts + 1800, abs=1)
    assert trip.exit_at == pytest.approx(candles[-1].ts + 1800, abs=1)
    # risk sizing: 1% of 10,000 lost at the stop, which filled at its level (no fee, no slip);
    # the stop is rounded to the 0.1 price step, about 3 away: within a few percent of 100
    assert trip.pnl == pytest.approx((trip.exit_price - trip.entry_price) * trip.size)
    assert trip.pnl == pytest.approx(-100, rel=0.03)
    total = res.total
    assert (total.trades, total.wins, total.win_rate, total.open_positions) == (1, 0, 0.0, 1)
    # the short was entered at the last close (rounded to the price step), no fee: marked there
    marked = (then.entry_price - candles[-1].close) * then.size
    assert total.net_pnl == pytest.approx(trip.pnl + marked)
    assert total.end_equity == pytest.approx(10_000 + trip.pnl + marked)
    # a position is open after every candle from the entry candle on (the last: the short)
    assert total.exposure_pct == pytest.approx((40 - entry_index) / 40 * 100)
    peak = max(v for _, v in res.curve)
    assert total.max_drawdown == pytest.approx(peak - res.curve[-1][1])
    assert res.strategies[0].max_drawdown == pytest.approx(total.max_drawdown)


# -- the command line --------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["backtest", *args])
    out, err = capsys.readouterr()
    return code, out, err


SUMMARY_KEYS = {
    "trades",
    "closed_trades",
    "open_trades",
    "wins",
    "losses",
    "win_rate",
    "net_pnl",
    "fees",
    "max_drawdown",
    "max_drawdown_pct",
    "exposure_pct",
    "start_equity",
    "end_equity",
    "candles",
}


def test_cli_json_shape_and_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    png = tmp_path / "equity.png"
    code, out, _ = run_cli(
        capsys, "--json", "--to", "2026-01-20", "--balance", "5000", "--png", str(png)
    )
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {
        "from",
        "to",
        "candles",
        "seconds",
        "faults",
        "data",
        "strategies",
        "total",
        "notes",
        "incidents",
        "errors",
        "trades",
        "png",
    }
    assert (doc["from"], doc["to"], doc["candles"]) == (
        "2026-01-01T00:00:00Z",
        "2026-01-20T00:00:00Z",
        19 * 48,
    )
    assert [s["name"] for s in doc["strategies"]] == ["btc_momentum", "eth_bollinger"]
    for s in doc["strategies"]:
        assert set(s) >= SUMMARY_KEYS and s["start_equity"] == 5000
    assert set(doc["total"]) == SUMMARY_KEYS
    assert all(d["synthetic"] for d in doc["data"])
    total = doc["total"]
    assert total["trades"] == sum(s["trades"] for s in doc["strategies"]) > 0
    assert total["net_pnl"] == pytest.approx(sum(s["net_pnl"] for s in doc["strategies"]), abs=1e-4)
    assert total["trades"] == sum(1 for t in doc["trades"] if t["exit_at"] is not None)
    assert set(doc["trades"][0]) == {
        "strategy",
        "exchange",
        "symbol",
        "side",
        "size",
        "entry_at",
        "entry_price",
        "exit_at",
        "exit_price",
        "exit_reason",
        "pnl",
        "fees",
    }
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 800 and height >= 400  # matplotlib's chart (tests/test_charts.py: content)
    assert struct.unpack(">I", data[29:33])[0] == zlib.crc32(data[12:29])
    assert data.endswith(b"IEND\xaeB`\x82")
    assert doc["png"] == str(png)


def test_cli_text_report(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "--strategy", "eth_bollinger", "--to", "2026-01-10")
    assert code == 0 and err == ""
    assert "eth_bollinger" in out and "btc_momentum" not in out
    assert "SYNTHETIC" in out and "total" in out


def test_cli_one_file_and_symbol(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    csv = tmp_path / "eth.csv"
    write_candles(csv, read_bundled(ETH)[:300])
    code, out, _ = run_cli(
        capsys, "--json", "--strategy", "btc_momentum", "--symbol", ETH, "--data", str(csv)
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["strategies"][0]["symbols"] == [ETH] and doc["candles"] == 300
    assert doc["data"][0]["synthetic"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "nope"], "--strategy nope: not configured"),
        (["--symbol", "SOL/USDT:USDT"], "unknown symbol SOL/USDT:USDT"),
        (["--from", "2026-02-01", "--to", "2026-01-01"], "is not before --to"),
        (["--from", "2027-01-01"], "no BTC/USDT:USDT candles in the chosen range"),
        (["--from", "soon"], "--from 'soon': not a date"),
        (["--data", "missing-folder"], "--data missing-folder: no such file or folder"),
        (["--data", "bad.csv", "--strategy", "btc_momentum"], "bad.csv:3: "),
        (["--data", "bad.csv"], "one file holds one symbol's candles"),
    ],
)
def test_cli_bad_input_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "bad.csv").write_text(
        "timestamp,open,high,low,close,volume\n"
        "2026-01-01T00:00:00Z,1,2,0.5,1.5,1\n"
        "2026-01-01T00:30:00Z,1,2,0.5,abc,1\n"
    )
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and out == ""
    assert message in err


def test_cli_without_strategies_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "warden.toml").write_text('[exchanges.paper]\nkind = "paper"\n')
    code, _, err = run_cli(capsys)
    assert code == 2 and "no [[strategies]] configured" in err


def test_cli_real_exchange_kind_is_simulated_with_inferred_markets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A strategy configured on OKX backtests offline on downloaded files (here: the bundled
    ETH candles under another name): paper defaults, market rules inferred from the data."""
    (tmp_path / "data").mkdir()
    write_candles(tmp_path / "data" / "SOL-USDT-USDT_30m.csv", read_bundled(ETH)[:400])
    (tmp_path / "warden.toml").write_text(
        '[exchanges.okx]\nkind = "okx"\n\n[[strategies]]\nname = "sol"\n'
        'kind = "bollinger"\nexchange = "okx"\nsymbols = ["SOL/USDT:USDT"]\n'
    )
    code, out, _ = run_cli(capsys, "--json", "--data", "data")
    assert code == 0
    doc = json.loads(out)
    assert doc["total"]["trades"] > 0 and doc["candles"] == 400
    assert any("simulated with the paper exchange's defaults" in n for n in doc["notes"])
    assert any("price step 0.01, size step and minimum 0.001" in n for n in doc["notes"])


def test_progress_bar_draws_only_when_asked() -> None:
    stream = io.StringIO()
    bar = ProgressBar("backtest", "candles", stream, enabled=True)
    for done in (0, 500, 501, 1000):
        bar.update(done, 1000)
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 3  # 0%, 50%, 100%: 501 is still 50%, not redrawn
    assert "100% 1,000/1,000 candles" in text and text.endswith("\n")
    quiet = io.StringIO()
    off = ProgressBar("backtest", "candles", quiet)  # a StringIO is not a terminal
    off.update(5, 10)
    off.close()
    assert quiet.getvalue() == ""
