"""/close and /open through the real client and the fake Bot API: a confirmation shows what
will be done, acts once, expires, can be canceled; a confirmed action waits a bounded time for
the lease and says who holds it; read-only /status is answered meanwhile."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.telegram_rig import OWNER, SCOPE, Rig, lease_held_elsewhere, running_bot
from trading.journal import IntentKind


async def test_close_confirm_pressed_twice_acts_once(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as rig:
        await rig.open_position()
        ask = await rig.ask("/close BTCUSDT")
        text = ask.params["text"]
        assert (
            "Close at market (reduce-only)?" in text and "• LONG 0.01 <b>BTC/USDT:USDT</b>" in text
        )
        assert "Expires in 5 s." in text
        n = len(rig.fake.calls)
        rig.press(ask, "Close")
        rig.press(ask, "Close")
        answers = await rig.fake.wait_for(
            lambda calls: (
                [c for c in calls[n:] if c.method == "answerCallbackQuery"][1:]
                and [c.params["text"] for c in calls[n:] if c.method == "answerCallbackQuery"]
            )
        )
        assert sorted(answers) == ["already confirmed: it acts only once", "confirmed"]
        result = await rig.fake.next_message(OWNER, n)
        assert "✅ <b>BTC/USDT:USDT</b>: closed: closed long 0.01 at" in result.params["text"]
        await asyncio.sleep(0.2)
        closes = [i for i in await rig.acct.journal.intents() if i.kind is IntentKind.CLOSE]
        assert len(closes) == 1
        assert len(await rig.acct.journal.exits(SCOPE)) == 1
        assert await rig.acct.exchange.positions() == []
        assert len(rig.fake.texts(OWNER)) == 2  # the question and one result


async def test_close_expired_confirmation_does_nothing_and_says_so(tmp_path: Path) -> None:
    async with running_bot(tmp_path, confirm_timeout_seconds=0.4) as rig:
        await rig.open_position()
        ask = await rig.ask("/close all")
        msg_id = ask.result["message_id"]
        edited = await rig.fake.wait_for(
            lambda calls: [c for c in calls if c.method == "editMessageText"], timeout=5
        )
        assert int(edited[0].params["message_id"]) == msg_id
        assert "expired: nothing was done" in edited[0].params["text"]
        n = len(rig.fake.calls)
        rig.press(ask, "Close")
        assert await rig.answer(n) == "expired: nothing was done"
        await asyncio.sleep(0.2)
        assert len(await rig.acct.exchange.positions()) == 1
        assert not [i for i in await rig.acct.journal.intents() if i.kind is IntentKind.CLOSE]


async def test_cancel_does_nothing(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as rig:
        await rig.open_position()
        ask = await rig.ask("/close btc")
        n = len(rig.fake.calls)
        rig.press(ask, "Cancel")
        assert await rig.answer(n) == "canceled"
        n = len(rig.fake.calls)
        rig.press(ask, "Close")
        assert await rig.answer(n) == "already canceled: nothing was done"
        assert len(await rig.acct.exchange.positions()) == 1


async def test_status_answered_while_the_lease_is_held_and_close_reports_busy(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path, lease_wait_seconds=1.5) as rig:
        await rig.open_position()
        ask = await rig.ask("/close btc")
        async with lease_held_elsewhere(tmp_path / "warden.db"):
            n = len(rig.fake.calls)
            rig.press(ask, "Close")  # waits up to 1.5 s for the lease
            await rig.answer(n)
            started = time.monotonic()
            status = await rig.reply_text("/status")
            assert time.monotonic() - started < 1.0  # not queued behind the waiting close
            assert "🔒 paper:main: scheduled cycle btc_momentum" in status
            busy = await rig.fake.next_message(OWNER, len(rig.fake.calls))
            assert "busy, held by" in busy.params["text"]
            assert "scheduled cycle btc_momentum" in busy.params["text"]
            assert "nothing was done" in busy.params["text"]
            assert "busy, held by" in await rig.reply_text("/cycle")
        assert len(await rig.acct.exchange.positions()) == 1


async def test_open_without_stop_uses_the_default_stop_and_is_verified(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as rig:
        ask = await rig.ask("/open eth short 0.5")
        text = ask.params["text"]
        assert "Open SHORT 0.5 ETH/USDT:USDT</b> on <b>paper</b>" in text
        assert "(default: risk.max_stop_percent 10%): 10.00% away" in text
        n = len(rig.fake.calls)
        rig.press(ask, "Open")
        result = await rig.fake.next_message(OWNER, n)
        assert "ETH/USDT:USDT</b>: protected: short 0.5 at" in result.params["text"]
        [p] = await rig.acct.exchange.positions()
        [s] = await rig.acct.exchange.open_stops()
        assert p.size == 0.5 and s.size == 0.5 and s.trigger_price <= 1950 * 1.1
        assert "refused: a short position of 0.5" in await _confirm_open(rig, "/open eth short 0.5")
        rig.daemon.reconciled.discard("paper")  # start-up reconciliation failed: no entries
        assert "not reconciled yet" in await _confirm_open(rig, "/open btc long 0.01")


async def _confirm_open(rig: Rig, command: str) -> str:
    ask = await rig.ask(command)
    if "reply_markup" not in ask.params:
        return str(ask.params["text"])
    n = len(rig.fake.calls)
    rig.press(ask, "Open")
    return str((await rig.fake.next_message(OWNER, n)).params["text"])
