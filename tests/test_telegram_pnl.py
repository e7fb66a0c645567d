"""Telegram /pnl shows `warden pnl`'s realised figure (net of the entry and the exit fee), and
/open refused while paused names the reason `warden pause --reason` gave. The real
python-telegram-bot Application against the local fake Bot API; `warden pnl --json` and
`warden pause` as real processes on the same database."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import child_env, warden_cmd
from tests.telegram_rig import BTC, ETH, OWNER, SCOPE, running_bot
from trading.adapters.kinds import KINDS
from trading.models import PositionSide

REALISED = re.compile(
    r"paper: realised ([+-][\d,]+\.\d\d) after fees ([\d,.]+) · (\d+) closed trade\(s\)"
)


async def warden(cwd: Path, *args: str) -> tuple[int, str, str]:
    # the fake Bot API serves from this test's event loop: the child must not block it
    proc = await asyncio.create_subprocess_exec(
        *warden_cmd(*args),
        cwd=cwd,
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


def _config(tmp_path: Path) -> None:
    (tmp_path / "warden.toml").write_text(
        '[storage]\npath = "warden.db"\n[exchanges.paper]\nkind = "paper"\n'
    )


async def _round_trips(rig: Any) -> None:
    """A losing long on BTC and a winning short on ETH, each closed by hand: four fills, each
    paying the paper exchange's taker fee."""
    paper = rig.acct.exchange
    await rig.open_position(BTC, PositionSide.LONG, 0.01)
    await paper.set_price(BTC, 68_500.0)
    await rig.open_position(ETH, PositionSide.SHORT, 0.5)
    await paper.set_price(ETH, 1_900.0)
    async with rig.daemon.leases.hold(SCOPE, "test close") as lease:
        for symbol in (BTC, ETH):
            [result] = await rig.acct.executor.close(lease, symbol, "manual", "test")
            assert result.ok, result.detail


async def _pnl_caption(rig: Any) -> str:
    n = len(rig.fake.calls)
    rig.fake.command(OWNER, "/pnl")
    photo = await rig.fake.next_photo(OWNER, n)  # the equity chart, the text as caption
    return str(rig.fake.caption(photo))


@pytest.mark.slow
async def test_pnl_in_telegram_equals_warden_pnl_json(tmp_path: Path) -> None:
    _config(tmp_path)
    async with running_bot(tmp_path) as rig:
        await _round_trips(rig)
        caption = await _pnl_caption(rig)
        code, out, err = await warden(tmp_path, "pnl", "--json")
        assert code == 0, err
        doc = json.loads(out)
        exits = await rig.acct.journal.exits(SCOPE)

    match = REALISED.search(caption)
    assert match is not None, caption
    shown, fees, count = match.group(1), float(match.group(2).replace(",", "")), match.group(3)
    totals = doc["totals"]
    assert totals["closed_trades"] == int(count) == 2
    assert shown == f"{totals['net_pnl']:+,.2f}"
    assert fees == pytest.approx(totals["fees"], abs=1e-8)
    # both fees of each trade: the entry's and the exit's (4 fills)
    assert totals["fees"] > sum(e.fee for e in exits) > 0
    for symbol in (BTC, ETH):
        [trade] = [t for t in doc["trades"] if t["symbol"] == symbol]
        assert f"{symbol}: {trade['net_pnl']:+,.2f} (1)" in caption


async def test_a_kind_without_fills_falls_back_to_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paper = KINDS["paper"]
    no_fills = dataclasses.replace(paper.capabilities, fills=False)
    monkeypatch.setitem(KINDS, "paper", dataclasses.replace(paper, capabilities=no_fills))
    async with running_bot(tmp_path) as rig:
        await _round_trips(rig)
        caption = await _pnl_caption(rig)
        exits = await rig.acct.journal.exits(SCOPE)
    match = REALISED.search(caption)
    assert match is not None, caption
    assert match.group(1) == f"{sum(e.pnl for e in exits):+,.2f}"
    assert float(match.group(2).replace(",", "")) == pytest.approx(sum(e.fee for e in exits))


@pytest.mark.slow
async def test_open_refused_while_paused_names_the_reason(tmp_path: Path) -> None:
    _config(tmp_path)
    async with running_bot(tmp_path) as rig:
        code, _, err = await warden(tmp_path, "pause", "--reason", "FOMC at 18:00 & CPI")
        assert code == 0, err
        reply = await rig.reply_text("/open btc long 0.01 65000")
        assert "is paused (FOMC at 18:00 &amp; CPI); /resume ends it; nothing was sent" in reply
        assert await rig.acct.exchange.positions() == []

        code, _, err = await warden(tmp_path, "resume")
        assert code == 0, err
        await rig.acct.journal.set_paused(SCOPE, True, "")
        reply = await rig.reply_text("/open btc long 0.01 65000")
        assert "is paused (no reason given)" in reply
