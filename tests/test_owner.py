"""Who owns a position, why entries are paused, and one P&L figure (issue 13, items 6 and 7).

The CLI parts run the real `warden` in child processes on a paper exchange; the cycle part runs
the real cycle runner on a replayed path (as tests/test_cycles.py)."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config
from bot.services import build_account
from storage.db import Database
from tests.conftest import child_env, warden_cmd
from tests.rig_cycles import ENTRY_BAR, ETH, EXIT_BAR, SCOPE, build_rig, make_config, strategy
from tests.rig_executor import alerts as executor_alerts
from tests.rig_executor import build_rig as build_executor_rig
from tests.telegram_rig import SCOPE as TG_SCOPE
from tests.telegram_rig import running_bot
from trading.accounting import account_trades
from trading.models import PositionSide

BTC = "BTC/USDT:USDT"
TAKER = 0.0005  # the paper exchange's default taker fee


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "warden.toml"
    path.write_text(
        f'[storage]\npath = "{tmp_path / "warden.db"}"\n'
        '[logging]\nlevel = "ERROR"\n'
        "[guardian]\nverify_delay_seconds = 0.2\nwatchdog_seconds = 1\n",
        encoding="utf-8",
    )
    return path


def warden(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        warden_cmd("--config", str(config), *args),
        cwd=config.parent,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=90,
    )


def status(config: Path) -> dict[str, Any]:
    out = warden(config, "status", "--json")
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def alert_texts(db_path: Path, key_prefix: str) -> list[str]:
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(
            "SELECT text FROM alert_outbox WHERE key LIKE ? ORDER BY id", (key_prefix + "%",)
        ).fetchall()
    return [r[0] for r in rows]


@pytest.mark.slow
async def test_owner_pause_reason_and_the_closing_alert_agrees_with_pnl(config: Path) -> None:
    db_path = config.parent / "warden.db"
    # a shorthand as Telegram takes it; the position is a manual one
    out = warden(config, "open", "btc", "long", "--size", "0.001", "--stop", "65600", "--yes")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{BTC}: protected"), out.stdout
    (row,) = status(config)["positions"]
    assert (row["symbol"], row["owner"]) == (BTC, "manual")
    text = warden(config, "status")
    assert f"paper {BTC} long 0.001" in text.stdout and "owner: manual" in text.stdout

    # the pause reason: stored, shown in status (text and JSON) and in the refusal
    assert warden(config, "pause", "--reason", "FOMC at 20:00").returncode == 0
    data = status(config)
    assert data["paused"] is True and data["pause_reason_by_exchange"] == {"paper": "FOMC at 20:00"}
    assert "paper: PAUSED (FOMC at 20:00)" in warden(config, "status").stdout
    refused = warden(config, "open", "ETHUSDT", "long", "--size", "0.1", "--stop", "1900", "--yes")
    assert refused.returncode == 1
    assert "trading is paused (FOMC at 20:00)" in refused.stderr
    assert "nothing was sent" in refused.stderr
    assert [p["symbol"] for p in status(config)["positions"]] == [BTC]
    assert warden(config, "resume").returncode == 0
    assert status(config)["pause_reason_by_exchange"] == {"paper": None}

    # the closing alert's P&L is the trade's net P&L as `warden pnl` builds it from the fills
    assert warden(config, "paper", "price", BTC, "68000").returncode == 0
    out = warden(config, "close", "BTCUSDT", "--yes")
    assert out.returncode == 0, out.stderr
    (alert,) = alert_texts(db_path, "exit:")
    found = re.search(r"P&L ([+-][0-9.]+) after fees", alert)
    assert found is not None, alert
    db = await Database.open(db_path)
    try:
        acct = build_account(Config(), "paper", db)
        (trade,) = await account_trades("paper", acct.exchange, acct.journal, acct.scope, 10.0)
    finally:
        await db.close()
    assert found.group(1) == f"{trade.net_pnl:+.2f}"
    # both fees are in it (the paper taker fee, 0.05% of each fill's notional): the figure
    # the alert used to show, net of the exit fee only, differs by the entry fee (3 cents)
    entry_fee, exit_fee = (TAKER * trade.size * p for p in (trade.entry_price, trade.exit_price))
    assert trade.fees == pytest.approx(entry_fee + exit_fee)
    assert f"{trade.gross_pnl - exit_fee:+.2f}" != found.group(1)
    assert trade.strategy == "manual" and trade.exit_reason == "manual"


async def test_a_strategy_leaves_a_manual_position_alone_and_says_so_once(
    db: Database, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rig = await build_rig(make_config(db_path, [strategy("momo")]), db)
    async with rig.leases.hold(SCOPE, "cli open") as lease:
        res = await rig.acct.executor.open(lease, ETH, PositionSide.LONG, 1.0, 1990.0, "cli open")
    assert res.ok, res.detail
    runner = rig.runner("momo")
    caplog.set_level(logging.INFO, logger="warden.cycle")
    details = []
    for bar in range(ENTRY_BAR, EXIT_BAR + 1):
        await rig.advance_to(bar)
        out = await runner.run("replay")
        assert out.report is not None and out.report.outcome == "hold"
        details.append(out.report.summary())
    assert all("(owner: manual): left alone" in d for d in details), details
    told = [r for r in caplog.records if r.getMessage() == "cycle.position_not_owned"]
    assert len(told) == 1  # five cycles, one position: said once
    assert told[0].levelno == logging.INFO
    assert told[0].fields == {  # type: ignore[attr-defined]
        "strategy": "momo",
        "symbol": ETH,
        "owner": "manual",
        "side": "long",
        "entry_price": res.fill_price,
    }
    # another position (closed, then opened again by hand) is said again, once
    async with rig.leases.hold(SCOPE, "cli close") as lease:
        await rig.acct.executor.close(lease, ETH, "manual", "cli close")
        res = await rig.acct.executor.open(lease, ETH, PositionSide.SHORT, 1.0, 2100.0, "cli open")
    assert res.ok, res.detail
    for _ in range(2):
        out = await runner.run("replay")
        assert out.report is not None and "left alone" in out.report.summary()
    told = [r for r in caplog.records if r.getMessage() == "cycle.position_not_owned"]
    assert [r.fields["side"] for r in told] == ["long", "short"]  # type: ignore[attr-defined]


@pytest.mark.slow
async def test_telegram_status_shows_the_owner_and_the_pause_reason(tmp_path: Path) -> None:
    """The real python-telegram-bot client against the fake Bot API server."""
    async with running_bot(tmp_path) as rig:
        await rig.open_position()  # by hand
        async with rig.daemon.leases.hold(TG_SCOPE, "cycle btc_momentum") as lease:
            res = await rig.acct.executor.open(
                lease, ETH, PositionSide.SHORT, 0.1, 2_050.0, "cycle btc_momentum"
            )
        assert res.ok, res.detail
        status = await rig.reply_text("/status")
        assert f"<b>{BTC}</b> LONG 0.01 @" in status
        btc_line = next(line for line in status.splitlines() if f"<b>{BTC}</b>" in line)
        eth_line = next(line for line in status.splitlines() if f"<b>{ETH}</b>" in line)
        assert btc_line.endswith("owner: manual") and eth_line.endswith("owner: btc_momentum")
        await rig.acct.journal.set_paused("*", True, "FOMC <20:00>")
        status = await rig.reply_text("/status")
        assert "<b>paper</b> · ⏸ PAUSED (no new entries): FOMC &lt;20:00&gt;" in status


async def test_the_stop_hit_alert_agrees_with_pnl(db: Database) -> None:
    """A stop that fires on the exchange: the guardian's alert shows the trade's net P&L as
    `warden pnl` builds it (entry fee, and the stop fill's own fee and price)."""
    rig = build_executor_rig(db)
    res = await rig.open(BTC, PositionSide.LONG, 0.001, 65_600.0, "cli open")
    assert res.ok, res.detail
    fired = await rig.paper.set_price(BTC, 65_000.0)  # passes the stop: it fires
    assert len(fired) == 1
    await rig.reconcile()  # sees the stop triggered and records the exit
    (alert,) = [a["text"] for a in await executor_alerts(db) if a["key"].startswith("stop-loss:")]
    found = re.search(r"P&L ([+-][0-9.]+) after fees", alert)
    assert found is not None, alert
    (trade,) = await account_trades("paper", rig.exchange, rig.journal, SCOPE, 10.0)
    assert trade.exit_reason == "stop_loss" and trade.fees > 0
    assert found.group(1) == f"{trade.net_pnl:+.2f}"
