"""Accounting (`warden pnl`): trades from the exchange's fills, every loss attributed.

The ledger below is played once on the paper exchange (taker fee 0.0005, slippage 5 bps,
prices rounded to the step) through Warden's real executor, guardian, journal and lease:

1. the post-mortem's double-open: BTC long 0.00095 filled at 69,060 by Warden, another
   0.00095 added outside Warden, stopped out 5.03% lower (trigger 65,619.1, fill 65,586.3);
2. the post-mortem's silent stop: ETH short 0.3 at 1,949.03, stop 1,983.41 failed (failCode
   1000), the market passed the level (2,006.02), emergency close at 2,007.02;
3. a plain stop-out (manual long ETH 0.3 at 2,007.02, stop 1,990 filled at 1,989.01);
4. a winning exit on signal (BTC long 0.001, 65,632.8 -> 66,966.5);
5. a round trip entirely outside Warden (ETH short 0.1, 1,984.01 -> 1,991.00);
and a position still open at the end (not a trade yet).
"""

from __future__ import annotations

import asyncio
import csv
import json
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.config import Config
from bot.services import build_account
from bot.summary import collect_daily_summary, daily_summary
from storage.db import Database
from tests.conftest import child_env, warden_cmd
from tests.rig_executor import BTC, BUY, ETH, LONG, SCOPE, SELL, SHORT, Rig, build_rig
from trading.accounting import (
    CSV_FIELDS,
    Trade,
    account_trades,
    build_trades,
    in_period,
    round_trips,
    summarize,
    totals,
)
from trading.attribution import ExitNote, FaultKind, JournalView, Label, strategy_of
from trading.journal import Attribution, Incident, Intent, IntentKind, IntentStatus
from trading.models import Fill, OrderSide

ENTRY_1, EXIT_1, SIZE_1 = 69_060.0, 65_586.3, 0.0019
STOP_1 = 65_619.1  # fills 5.03% below the entry: 65,619.1 x (1 - 5 bps) = 65,586.3
FEES_1 = 0.0005 * 0.00095 * ENTRY_1 * 2 + 0.0005 * SIZE_1 * EXIT_1
NET_1 = (EXIT_1 - ENTRY_1) * SIZE_1 - FEES_1  # -6.72794...
ETH_STOP, ETH_OVERRUN = 1983.41, 2006.02
ENTRY_2, EXIT_2 = 1949.03, 2007.02  # 1,950 less 5 bps; 2,006.02 plus 5 bps
NET_2 = -(EXIT_2 - ENTRY_2) * 0.3 - 0.0005 * 0.3 * (ENTRY_2 + EXIT_2)
ENTRY_3, EXIT_3 = 2007.02, 1989.01
NET_3 = (EXIT_3 - ENTRY_3) * 0.3 - 0.0005 * 0.3 * (ENTRY_3 + EXIT_3)
ENTRY_4, EXIT_4 = 65_632.8, 66_966.5
NET_4 = (EXIT_4 - ENTRY_4) * 0.001 - 0.0005 * 0.001 * (ENTRY_4 + EXIT_4)
ENTRY_5, EXIT_5 = 1984.01, 1991.0
NET_5 = -(EXIT_5 - ENTRY_5) * 0.1 - 0.0005 * 0.1 * (ENTRY_5 + EXIT_5)


@dataclass(frozen=True)
class Ledger:
    db_path: Path
    trades: list[Trade]
    mark: float  # between trades 3 and 4


async def play(db_path: Path) -> Ledger:
    db = await Database.open(db_path)
    jumps: list[tuple[str, float]] = []
    holder: list[Rig] = []

    async def market_moves_while_verifying(seconds: float) -> None:
        await asyncio.sleep(seconds)
        if jumps:
            await holder[0].paper.set_price(*jumps.pop())

    try:
        rig = build_rig(db, keeper_sleep=market_moves_while_verifying)
        holder.append(rig)
        paper = rig.paper
        # 1. double-open: Warden's entry, then the same entry from outside; the guardian
        #    resizes the stop to the whole position, which the market then takes out
        await paper.set_price(BTC, 69_025.5)
        assert (await rig.open(BTC, LONG, 0.00095, STOP_1, "cycle btc_momentum")).size
        await paper.place_market_order(BTC, BUY, 0.00095, "manualexecutor1")
        await rig.reconcile()
        [fired] = await paper.set_price(BTC, 65_600.0)
        assert fired.fill is not None and fired.fill.average_price == EXIT_1
        # 2. silent stop failure, level passed while verifying: emergency close
        await paper.set_faults(stop_silent_fail=1)
        jumps.append((ETH, ETH_OVERRUN))
        res = await rig.open(ETH, SHORT, 0.3, ETH_STOP, "cycle eth_bollinger")
        assert res.outcome.value == "emergency_closed", res.detail
        # 3. a plain stop-out
        await rig.open(ETH, LONG, 0.3, 1990.0, "cli open")
        [fired] = await paper.set_price(ETH, 1985.0)
        assert fired.fill is not None and fired.fill.average_price == EXIT_3
        mark = time.time()
        # 4. a win, closed on the strategy's signal
        await rig.open(BTC, LONG, 0.001, 62_000.0, "cycle btc_momentum")
        await paper.set_price(BTC, 67_000.0)
        async with rig.lease("cycle btc_momentum") as lease:
            await rig.executor.close(lease, BTC, "signal", "cycle btc_momentum")
        # 5. outside Warden entirely
        await paper.place_market_order(ETH, SELL, 0.1, "otherbot1")
        await paper.set_price(ETH, 1990.0)
        await paper.place_market_order(ETH, BUY, 0.1, "otherbot2", reduce_only=True)
        # still open
        await rig.open(BTC, LONG, 0.001, 62_000.0, "cycle btc_momentum")
        trades = await account_trades("paper", rig.exchange, rig.journal, SCOPE, 10.0)
    finally:
        await db.close()
    return Ledger(db_path, trades, mark)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    yield asyncio.run(play(tmp_path_factory.mktemp("ledger") / "warden.db"))


def by_strategy(ledger: Ledger) -> dict[str, list[Trade]]:
    out: dict[str, list[Trade]] = {}
    for t in ledger.trades:
        out.setdefault(t.strategy, []).append(t)
    return out


def test_five_closed_trades_in_closing_order(ledger: Ledger) -> None:
    assert [(t.strategy, t.symbol, t.side.value, t.exit_reason) for t in ledger.trades] == [
        ("btc_momentum", BTC, "long", "stop_loss"),
        ("eth_bollinger", ETH, "short", "emergency(stop level already passed)"),
        ("manual", ETH, "long", "stop_loss"),
        ("btc_momentum", BTC, "long", "signal"),
        ("external", ETH, "short", "external"),
    ]
    for t in ledger.trades:
        assert t.opened_at <= t.closed_at and t.holding_seconds >= 0
        assert t.net_pnl == pytest.approx(t.gross_pnl - t.fees - t.funding)


def test_double_open_loss_is_half_execution(ledger: Ledger) -> None:
    t = ledger.trades[0]
    assert (t.size, t.warden_size, t.entry_price, t.exit_price) == (
        SIZE_1,
        0.00095,
        ENTRY_1,
        EXIT_1,
    )
    assert t.gross_pnl == pytest.approx(-6.60003)  # 0.0019 x 3,473.7: the post-mortem's 6.60
    assert t.fees == pytest.approx(FEES_1)
    assert t.net_pnl == pytest.approx(NET_1)
    assert -t.net_pnl == pytest.approx(6.63, abs=0.1)  # the post-mortem's $6.63
    assert t.attribution is Label.MIXED
    [fault] = t.faults
    assert fault.kind is FaultKind.EXTRA_SIZE
    assert t.execution_cost == pytest.approx(-NET_1 / 2)  # 3.36: the duplicate's share
    assert t.strategy_loss == pytest.approx(-NET_1 / 2)  # 3.36: what the stop was for
    assert -t.gross_pnl / 2 == pytest.approx(3.30, abs=0.01)  # the post-mortem's ~$3.30


def test_silent_stop_emergency_close_costs_the_overrun_beyond_the_level(ledger: Ledger) -> None:
    t = ledger.trades[1]
    assert (t.size, t.entry_price, t.exit_price) == (0.3, ENTRY_2, EXIT_2)
    assert t.net_pnl == pytest.approx(NET_2)
    [fault] = t.faults
    assert fault.kind is FaultKind.EMERGENCY_CLOSE
    assert t.execution_cost == pytest.approx((EXIT_2 - ETH_STOP) * 0.3)  # 7.083
    assert t.strategy_loss == pytest.approx(-NET_2 - (EXIT_2 - ETH_STOP) * 0.3)
    assert t.attribution is Label.MIXED


def test_plain_stop_out_is_strategy_with_no_execution_cost(ledger: Ledger) -> None:
    t = ledger.trades[2]
    assert (t.strategy, t.entry_price, t.exit_price) == ("manual", ENTRY_3, EXIT_3)
    assert t.net_pnl == pytest.approx(NET_3)
    assert (t.faults, t.execution_cost, t.attribution) == ((), 0.0, Label.STRATEGY)
    assert t.strategy_loss == pytest.approx(-NET_3)


def test_win_and_external_trade(ledger: Ledger) -> None:
    win, ext = ledger.trades[3], ledger.trades[4]
    assert (win.entry_price, win.exit_price, win.attribution) == (ENTRY_4, EXIT_4, Label.NONE)
    assert win.net_pnl == pytest.approx(NET_4) and win.win
    assert (ext.warden_size, ext.entry_price, ext.exit_price) == (0.0, ENTRY_5, EXIT_5)
    assert ext.net_pnl == pytest.approx(NET_5)
    assert (ext.attribution, ext.strategy_loss) == (Label.EXTERNAL, 0.0)
    assert ext.external_loss == pytest.approx(-NET_5)


def test_table_per_exchange_and_strategy(ledger: Ledger) -> None:
    rows = {r.strategy: r for r in summarize(ledger.trades)}
    assert list(rows) == ["btc_momentum", "eth_bollinger", "external", "manual"]
    btc = rows["btc_momentum"]
    assert (btc.exchange, btc.trades, btc.wins, btc.win_rate) == ("paper", 2, 1, 0.5)
    assert btc.net_pnl == pytest.approx(NET_1 + NET_4)
    assert btc.execution_cost == pytest.approx(-NET_1 / 2)
    assert btc.fees == pytest.approx(FEES_1 + 0.0005 * 0.001 * (ENTRY_4 + EXIT_4))
    eth = rows["eth_bollinger"]
    assert (eth.trades, eth.wins, eth.win_rate) == (1, 0, 0.0)
    assert eth.execution_cost == pytest.approx((EXIT_2 - ETH_STOP) * 0.3)
    assert rows["manual"].execution_cost == 0.0
    assert rows["external"].external_loss == pytest.approx(-NET_5)
    total = totals(ledger.trades)
    assert (total.trades, total.wins, total.win_rate) == (5, 1, 0.2)
    assert total.net_pnl == pytest.approx(NET_1 + NET_2 + NET_3 + NET_4 + NET_5)
    assert total.execution_cost == pytest.approx(-NET_1 / 2 + (EXIT_2 - ETH_STOP) * 0.3)
    assert total.as_json()["execution_cost"] == pytest.approx(10.44697199)


def test_period_filter(ledger: Ledger) -> None:
    later = in_period(ledger.trades, ledger.mark)
    assert [t.strategy for t in later] == ["btc_momentum", "external"]
    assert in_period(ledger.trades, None, ledger.mark) == ledger.trades[:3]
    assert in_period(ledger.trades, time.time() + 60) == []


async def test_slippage_beyond_the_bound_is_execution_cost(ledger: Ledger) -> None:
    """With a 2 bps bound the 5 bps of a stop's fill beyond 2 bps is execution cost; on the
    doubled trade only Warden's half of it (the duplicate's whole loss is already charged)."""
    db = await Database.open(ledger.db_path)
    try:
        acct = build_account(Config(), "paper", db)
        trades = await account_trades("paper", acct.exchange, acct.journal, acct.scope, 2.0)
    finally:
        await db.close()
    doubled, plain = trades[0], trades[2]
    slip_1 = ((STOP_1 - EXIT_1) - STOP_1 * 2e-4) * SIZE_1 / 2
    assert [f.kind for f in doubled.faults] == [FaultKind.EXTRA_SIZE, FaultKind.STOP_SLIPPAGE]
    assert doubled.faults[1].cost == pytest.approx(slip_1)  # 0.01869
    assert doubled.execution_cost == pytest.approx(-NET_1 / 2 + slip_1)
    [fault] = plain.faults
    assert fault.cost == pytest.approx(((1990.0 - EXIT_3) - 1990.0 * 2e-4) * 0.3)  # 0.1776
    assert plain.attribution is Label.MIXED
    assert plain.strategy_loss == pytest.approx(-NET_3 - fault.cost)


async def test_daily_summary_of_the_accounts(ledger: Ledger) -> None:
    db = await Database.open(ledger.db_path)
    try:
        acct = build_account(Config(), "paper", db)
        text = await collect_daily_summary([acct], time.time() + 1)
    finally:
        await db.close()
    assert "net of fees over 5 closed trade(s) (1 won, 4 lost; open positions not included)" in text
    assert f"P&L {NET_1 + NET_2 + NET_3 + NET_4 + NET_5:+,.2f} USDT" in text
    assert "Execution-fault cost 10.45 USDT (emergency_close 7.08, extra_size 3.36)" in text
    assert "paper btc_momentum: 2 closed trade(s), win rate 50%" in text
    assert "Open positions (1):" in text
    assert f"paper {BTC} long 0.001 @ 67033.5" in text and "stop 62000 live, full size" in text
    quiet = daily_summary(ledger.trades, [], time.time() + 10, time.time() + 20)
    assert "No trades closed." in quiet and "No open positions." in quiet


# --- the real CLI -----------------------------------------------------------------------------


def warden_pnl(ledger: Ledger, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = folder / "warden.toml"
    config.write_text(f'[storage]\npath = "{ledger.db_path}"\n[logging]\nlevel = "ERROR"\n')
    return subprocess.run(
        warden_cmd("--config", str(config), "pnl", *args),
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=folder,
        timeout=60,
    )


@pytest.mark.slow
def test_warden_pnl_json_csv_and_png(ledger: Ledger, tmp_path: Path) -> None:
    out = warden_pnl(
        ledger, tmp_path, "--json", "--days", "1", "--csv", "t.csv", "--png", "equity.png"
    )

    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report) == {
        "database",
        "trades",
        "summary",
        "totals",
        "since",
        "slippage_bound_bps",
        "errors",
    }
    assert report["database"] == str(ledger.db_path)
    assert report["errors"] == [] and report["slippage_bound_bps"] == 10.0
    assert [list(t) for t in report["trades"]] == [list(CSV_FIELDS)] * 5
    first = report["trades"][0]
    assert (first["strategy"], first["exit_reason"], first["attribution"]) == (
        "btc_momentum",
        "stop_loss",
        "mixed",
    )
    assert first["execution_cost"] == pytest.approx(-NET_1 / 2, abs=1e-6)
    assert first["faults"][0]["kind"] == "extra_size"
    assert [(r["strategy"], r["trades"], r["wins"]) for r in report["summary"]] == [
        ("btc_momentum", 2, 1),
        ("eth_bollinger", 1, 0),
        ("external", 1, 0),
        ("manual", 1, 0),
    ]
    assert report["totals"]["trades"] == 5 and report["totals"]["win_rate"] == 0.2
    assert report["totals"]["execution_cost"] == pytest.approx(10.44697199, abs=1e-6)

    with (tmp_path / "t.csv").open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(CSV_FIELDS) and len(rows) == 6
    assert rows[2][CSV_FIELDS.index("exit_reason")] == "emergency(stop level already passed)"
    assert rows[2][CSV_FIELDS.index("faults")] == "emergency_close 7.08"

    png = (tmp_path / "equity.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert width > 100 and height > 100


@pytest.mark.slow
def test_warden_pnl_period_filter_and_text(ledger: Ledger, tmp_path: Path) -> None:
    future = warden_pnl(ledger, tmp_path, "--json", "--since", "2999-01-01")
    assert future.returncode == 0, future.stderr
    report = json.loads(future.stdout)
    assert (report["trades"], report["summary"], report["totals"]["trades"]) == ([], [], 0)
    assert report["since"] == "2999-01-01T00:00:00Z"

    text = warden_pnl(ledger, tmp_path, "--since", "2000-01-01T00:00:00")
    assert text.returncode == 0, text.stderr
    assert "emergency_close 7.08" in text.stdout and "btc_momentum" in text.stdout
    assert text.stdout.strip().splitlines()[-1].split()[:3] == ["all", "all", "5"]

    bad = warden_pnl(ledger, tmp_path, "--since", "last tuesday")
    assert bad.returncode == 2 and "--since 'last tuesday' is not a date" in bad.stderr
    both = warden_pnl(ledger, tmp_path, "--since", "2000-01-01", "--days", "3")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


# --- the rules on hand-made fills -------------------------------------------------------------


def fill(
    side: OrderSide,
    size: float,
    price: float,
    ts: float,
    client_id: str | None = None,
    stop_id: str | None = None,
    funding: float = 0.0,
) -> Fill:
    fee = 0.0005 * size * price
    return Fill(BTC, str(ts), side, size, price, fee, ts, False, client_id, stop_id, funding)


def intent(client_id: str, kind: IntentKind, purpose: str, stop: float | None = None) -> Intent:
    return Intent(
        1, SCOPE, kind, BTC, BUY, 1.0, client_id, IntentStatus.FILLED, stop, purpose, 1.0, 1.0, 10.0
    )


def view(
    *intents: Intent,
    exits: tuple[ExitNote, ...] = (),
    incidents: tuple[Incident, ...] = (),
    decision_prices: dict[str, float] | None = None,
) -> JournalView:
    mine = {i.client_id: i for i in intents}
    return JournalView(mine, {}, exits, incidents, decision_prices or {})


def test_a_flip_closes_one_trade_and_opens_the_next() -> None:
    fills = [
        fill(BUY, 1.0, 100.0, 1),
        fill(SELL, 0.4, 110.0, 2),
        fill(SELL, 1.0, 120.0, 3),  # closes 0.6 of the long, opens a 0.4 short
        fill(BUY, 0.4, 115.0, 4),
        fill(BUY, 0.2, 115.0, 5),  # still open
    ]
    closed, still_open = round_trips(fills)
    assert [(t.side, [p.size for p in t.entries], [p.size for p in t.exits]) for t in closed] == [
        (LONG, [1.0], [0.4, pytest.approx(0.6)]),
        (SHORT, [pytest.approx(0.4)], [0.4]),
    ]
    [long_, short] = build_trades("paper", fills, view(), 10.0)
    assert long_.exit_price == pytest.approx((0.4 * 110 + 0.6 * 120) / 1.0)
    assert long_.gross_pnl == pytest.approx(0.4 * 10 + 0.6 * 20)
    # the flip's fee is split by size between the two trades
    assert long_.fees == pytest.approx(0.0005 * (100 + 0.4 * 110 + 0.6 * 120))
    assert short.gross_pnl == pytest.approx(0.4 * (120 - 115))
    assert short.fees == pytest.approx(0.0005 * (0.4 * 120 + 0.4 * 115))
    assert [t.side for t in still_open] == [LONG]


def test_funding_counts_in_net_pnl() -> None:
    fills = [fill(BUY, 1.0, 100.0, 1, funding=0.3), fill(SELL, 1.0, 101.0, 2, funding=-0.1)]
    [t] = build_trades("paper", fills, view(), 10.0)
    assert t.funding == pytest.approx(0.2)
    assert t.net_pnl == pytest.approx(1.0 - 0.0005 * 201 - 0.2)


def test_strategy_names_and_exit_reasons_from_the_journal() -> None:
    assert strategy_of("cycle btc_momentum") == "btc_momentum"
    assert [strategy_of(p) for p in ("cli open", "telegram /open", "cycle ")] == ["manual"] * 3
    entry = intent("e1", IntentKind.ENTRY, "telegram /open")
    close = intent("c1", IntentKind.CLOSE, "cli close")
    fills = [fill(BUY, 1.0, 100.0, 1, "e1"), fill(SELL, 1.0, 99.0, 2, "c1")]
    [t] = build_trades("paper", fills, view(entry, close), 10.0)
    assert (t.strategy, t.exit_reason, t.attribution) == ("manual", "manual", Label.STRATEGY)
    # the exit row written with the close; a stop-loss row (the guardian noticing an earlier
    # stop's firing) written nearer in time is not the close's
    notes = (ExitNote(BTC, "signal", 10.5), ExitNote(BTC, "stop_loss", 10.1))
    noted = view(entry, close, exits=notes)
    assert build_trades("paper", fills, noted, 10.0)[0].exit_reason == "signal"
    stray_stop = [fill(BUY, 1.0, 100.0, 1, "e1"), fill(SELL, 1.0, 99.0, 2, stop_id="s9")]
    assert build_trades("paper", stray_stop, view(entry), 10.0)[0].exit_reason == "external"


def test_entry_slippage_beyond_the_decision_price() -> None:
    entry = intent("e1", IntentKind.ENTRY, "cycle trend")
    fills = [fill(BUY, 2.0, 100.5, 1, "e1"), fill(SELL, 2.0, 99.0, 2)]
    [t] = build_trades("paper", fills, view(entry, decision_prices={"e1": 100.0}), 10.0)
    [fault] = t.faults
    assert fault.kind is FaultKind.ENTRY_SLIPPAGE
    assert fault.cost == pytest.approx((0.5 - 100.0 * 10 / 1e4) * 2.0)  # 50 bps, bound 10
    assert t.exit_reason == "external"


def test_emergency_close_without_an_incident_uses_the_stop_level() -> None:
    entry = intent("e1", IntentKind.ENTRY, "cycle trend", stop=95.0)
    emergency = intent("x1", IntentKind.EMERGENCY_CLOSE, "emergency close: no live stop")
    fills = [fill(BUY, 1.0, 100.0, 1, "e1"), fill(SELL, 1.0, 93.0, 2, "x1")]
    [t] = build_trades("paper", fills, view(entry, emergency), 10.0)
    assert t.exit_reason == "emergency(no live stop)"
    assert t.execution_cost == pytest.approx(2.0)  # (95 - 93) x 1
    # an incident attributed elsewhere (external) is no execution fault of Warden's
    external = Incident(
        7, SCOPE, BTC, "emergency_close", Attribution.EXTERNAL, 2.0, "", 10.2, None, 10.2
    )
    [t] = build_trades("paper", fills, view(entry, emergency, incidents=(external,)), 10.0)
    assert (t.execution_cost, t.attribution) == (0.0, Label.STRATEGY)
