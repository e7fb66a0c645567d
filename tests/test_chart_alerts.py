"""Pictures in Telegram, through the real python-telegram-bot Application and the fake Bot API:
the position chart an emergency-close or stop-repair alert carries (sendPhoto, the alert as
caption), the text alone when the chart cannot be drawn or the photo is refused, the caption
limit, /chart, and /status's Refresh button."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.charts.style import png_size
from tests.telegram_rig import BTC, OWNER, SCOPE, STRANGER, Rig, running_bot
from trading.journal import Attribution
from trading.models import PositionSide


async def _stop_removed_and_repaired(rig: Rig) -> None:
    """A position whose stop vanished outside Warden: the guardian re-places it (a stop repair
    incident, critical alert)."""
    await rig.open_position()
    [stop] = await rig.acct.exchange.open_stops()
    await rig.acct.exchange.cancel_stop(BTC, stop.id)
    async with rig.daemon.leases.hold(SCOPE, "watchdog") as lease:
        await rig.acct.guardian.reconcile(lease)


def _photos(rig: Rig) -> list[Any]:
    return rig.fake.sent("sendPhoto", OWNER)


async def test_a_stop_repair_alert_carries_the_position_chart(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as rig:
        await _stop_removed_and_repaired(rig)
        due = await rig.daemon.outbox.due()
        repair = [a for a in due if "unprotected_position" in a.text]
        assert [(a.chart.scope, a.chart.symbol) for a in repair if a.chart] == [(SCOPE, BTC)]
        assert all(a.chart is None for a in due if a not in repair)  # the rest: text only
        await rig.deliver_all()
        [photo] = _photos(rig)
        caption = rig.fake.caption(photo)
        assert caption.startswith("🚨 CRITICAL") and "unprotected_position paper:main" in caption
        assert png_size(photo.params["photo"]) == (1280, 720)
        assert not any("unprotected_position" in t for t in rig.fake.texts(OWNER))  # once
        # the acknowledge button is on the photo and answers there (this one was resolved,
        # so acknowledged, when the new stop read back live)
        n = len(rig.fake.calls)
        rig.press(photo, "Acknowledge")
        assert await rig.answer(n) == "already acknowledged"
        await rig.acct.journal.open_incident(
            SCOPE, BTC, "emergency_close_failed", Attribution.EXECUTION, "could NOT be closed"
        )
        await rig.deliver_all()
        [_, failed] = _photos(rig)
        n = len(rig.fake.calls)
        rig.press(failed, "Acknowledge")
        assert await rig.answer(n) == "acknowledged"


async def test_an_emergency_close_alert_carries_the_chart(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as rig:
        await rig.open_position()
        [stop] = await rig.acct.exchange.open_stops()
        await rig.acct.exchange.cancel_stop(BTC, stop.id)
        await rig.acct.exchange.set_price(BTC, 65_000.0)  # the level passed meanwhile
        async with rig.daemon.leases.hold(SCOPE, "watchdog") as lease:
            await rig.acct.guardian.reconcile(lease)
        assert await rig.acct.exchange.positions() == []
        await rig.deliver_all()
        [photo] = [p for p in _photos(rig) if "emergency_close" in rig.fake.caption(p)]
        assert "stop level 65600" in rig.fake.caption(photo)


async def test_a_chart_that_cannot_be_drawn_leaves_the_text_alone(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as rig:

        async def broken(scope: str, symbol: str) -> bytes | None:
            raise RuntimeError("matplotlib exploded")

        rig.handle.notifier.chart = broken
        await _stop_removed_and_repaired(rig)
        await rig.deliver_all()
        assert _photos(rig) == []
        assert sum("unprotected_position" in t for t in rig.fake.texts(OWNER)) == 1
        # an account the daemon does not run: no chart, the text goes
        await rig.acct.journal.open_incident(
            "gone:main", BTC, "emergency_close", Attribution.EXECUTION, "from an old config"
        )
        rig.handle.notifier.chart = None
        await rig.deliver_all()
        assert any("gone:main" in t for t in rig.fake.texts(OWNER))


async def test_a_refused_or_failed_photo_sends_the_text_alone(tmp_path: Path) -> None:
    for status in (400, 500):
        (tmp_path / str(status)).mkdir()
        async with running_bot(tmp_path / str(status)) as rig:
            rig.fake.fail(status, methods=("sendPhoto",), seconds=60)
            await _stop_removed_and_repaired(rig)
            await rig.deliver_all()
            assert rig.fake.sent("sendPhoto") == []
            texts = [t for t in rig.fake.texts(OWNER) if "unprotected_position" in t]
            assert len(texts) == 1, status  # the alert went, once, as text
            [msg] = [c for c in rig.fake.sent() if "unprotected_position" in c.params["text"]]
            assert "reply_markup" in msg.params  # still acknowledgeable
            assert await rig.daemon.outbox.undelivered_count() == 0


async def test_a_text_longer_than_a_caption_goes_first_then_the_photo(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as rig:
        await rig.open_position()
        long_detail = "why: " + "x" * 1500
        await rig.acct.journal.open_incident(
            SCOPE, BTC, "stop_placement_failed", Attribution.EXECUTION, long_detail
        )
        await rig.deliver_all()
        calls = [c for c in rig.fake.delivered(OWNER) if "stop_placement_failed" in str(c.params)]
        assert [c.method for c in calls] == ["sendMessage", "sendPhoto"]
        text, photo = calls
        assert long_detail in text.params["text"] and "reply_markup" in text.params
        caption = rig.fake.caption(photo)
        assert caption.startswith("🚨 CRITICAL") and "stop_placement_failed" in caption
        assert caption.endswith("… (truncated)") and len(photo.params["caption"]) <= 1024


# --- /chart ---------------------------------------------------------------------------------------


async def test_chart_command_sends_the_position_chart(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as rig:
        await rig.open_position(side=PositionSide.LONG)
        n = len(rig.fake.calls)
        rig.fake.command(OWNER, "/chart btc 6")
        photo = await rig.fake.next_photo(OWNER, n)
        assert rig.fake.caption(photo) == "paper BTC/USDT:USDT · last 6 h (UTC)"
        assert png_size(photo.params["photo"]) == (1280, 720)

        assert "HOURS must be at most 720" in await rig.reply_text("/chart btc 10000")
        assert "HOURS 'x' is not a number" in await rig.reply_text("/chart btc x")
        assert "unknown symbol doge" in await rig.reply_text("/chart doge")
        assert "usage: <code>/chart SYMBOL [HOURS] [@EXCHANGE]</code>" in await rig.reply_text(
            "/chart"
        )
        n = len(rig.fake.calls)
        rig.fake.command(STRANGER, "/chart btc")
        rig.fake.command(OWNER, "/help")  # the next answer is to the owner's /help
        await rig.fake.next_message(OWNER, n)
        assert [c for c in rig.fake.calls[n:] if int(c.params.get("chat_id", 0)) == STRANGER] == []
        assert len(rig.fake.sent("sendPhoto")) == 1


# --- /status Refresh ------------------------------------------------------------------------------


async def test_status_refresh_edits_the_message_in_place(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as rig:
        status = await rig.ask("/status")
        assert "no positions" in status.params["text"]
        assert list(rig.buttons(status)) == ["🔄 Refresh"]
        await rig.open_position()

        n = len(rig.fake.calls)
        rig.press(status, "Refresh", user=STRANGER)  # the gate stops it: nothing changes
        rig.press(status, "Refresh")
        assert await rig.answer(n) == "refreshed"
        edit = await rig.fake.wait_for(
            lambda calls: next((c for c in calls[n:] if c.method == "editMessageText"), None)
        )
        assert [c.method for c in rig.fake.calls[n:]].count("editMessageText") == 1
        assert int(edit.params["message_id"]) == int(status.result["message_id"])
        assert "<b>BTC/USDT:USDT</b> LONG 0.01" in edit.params["text"]
        assert edit.params["reply_markup"]["inline_keyboard"][0][0]["text"] == "🔄 Refresh"
        msg = rig.fake.messages[(OWNER, int(status.result["message_id"]))]
        assert "BTC/USDT:USDT LONG 0.01" in msg["text"]  # the message itself now says so
        assert rig.fake.sent("sendMessage")[-1] is status  # no new message
