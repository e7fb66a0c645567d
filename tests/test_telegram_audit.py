"""Telegram /audit through the real python-telegram-bot client against the fake Bot API: a
silent stop failure that was caught and repaired is shown as history, not as a finding; one
that needs the owner comes first."""

from __future__ import annotations

from pathlib import Path

from tests.telegram_rig import BTC, ETH, running_bot
from trading.models import OrderSide


async def test_audit_shows_repaired_history_as_informational(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as rig:
        await rig.acct.exchange.set_faults(stop_silent_fail=1)
        await rig.open_position()  # first stop acknowledged then failed, re-placed live

        text = await rig.reply_text("/audit")

        assert "✅ clean" in text and "finding(s)" not in text
        assert "ℹ️ informational (nothing to do):" in text
        assert "· <b>failed_stop_placement</b> paper BTC/USDT:USDT: Warden" in text
        assert "failCode 1000" in text and "repaired at" in text and "s unprotected)" in text

        # a stop placed by someone else that failed and was never replaced needs the owner
        await rig.acct.exchange.set_faults(stop_silent_fail=1)
        await rig.acct.exchange.place_stop(ETH, OrderSide.SELL, 0.01, 1_850.0, "byhand1")
        text = await rig.reply_text("/audit")

        assert "1 finding(s)" in text
        lines = text.splitlines()
        bad = next(i for i, x in enumerate(lines) if "never repaired" in x)
        assert lines[bad].startswith("⚠️ <b>failed_stop_placement</b> paper ETH/USDT:USDT")
        assert bad < lines.index("ℹ️ informational (nothing to do):")
        assert BTC in text
