"""Telegram control through the real python-telegram-bot client and a local fake Bot API:
each command's reply, owner-only access (I7), argument validation, stale commands. The /close
and /open confirmations are in test_telegram_confirm.py, alert delivery in
test_telegram_alerts.py."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from tests.fake_telegram import FakeTelegram
from tests.telegram_rig import (
    BTC,
    OWNER,
    SCOPE,
    STRANGER,
    TOKEN,
    Rig,
    running_bot,
)


async def _state(rig: Rig) -> tuple[object, ...]:
    acct = rig.acct
    positions = [(p.symbol, p.side, p.size) for p in await acct.exchange.positions()]
    stops = [s.id for s in await acct.exchange.open_stops()]
    intents = [i.id for i in await acct.journal.intents()]
    return (
        positions,
        stops,
        intents,
        await acct.journal.is_paused(SCOPE),
        await rig.daemon.leases.store.holders(),
        len(await acct.journal.refusals()),
    )


async def test_start_registers_commands_and_answers_each_command(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_bot(tmp_path) as rig:
        got = rig.fake.sent("setMyCommands")[0].params["commands"]
        assert [c["command"] for c in got] == [
            "status", "close", "open", "audit", "pnl", "chart", "cycle", "pause", "resume", "help"
        ]  # fmt: skip
        await rig.open_position()
        status = await rig.reply_text("/status")
        assert "<b>BTC/USDT:USDT</b> LONG 0.01 @" in status
        assert "stop 65,600 live, verified live" in status
        assert "<b>paper</b> · trading" in status and "<b>Leases</b>: none held" in status
        assert "<b>btc_momentum</b>: last never · next not scheduled" in status
        sched = AsyncIOScheduler(timezone=UTC)
        at = datetime.now(UTC) + timedelta(minutes=30)
        sched.add_job(print, DateTrigger(at), id="cycle:btc_momentum")
        sched.start()
        rig.daemon.scheduler = sched
        try:
            status = await rig.reply_text("/status")
        finally:
            sched.shutdown(wait=False)
        assert f"next {at.strftime('%H:%M:%SZ')}" in status
        assert (await rig.ask("/status")).params["parse_mode"] == "HTML"

        assert "/open SYMBOL long|short SIZE [STOP]" in await rig.reply_text("/help")
        assert "✅ clean" in await rig.reply_text("/audit")
        n = len(rig.fake.calls)
        rig.fake.command(OWNER, "/pnl 7")  # short enough for a caption: one photo message
        pnl = rig.fake.caption(await rig.fake.next_photo(OWNER, n))
        assert "last 7 day(s)" in pnl and "0 closed trade(s)" in pnl and "equity" in pnl
        assert "btc_momentum</b>: hold" in await rig.reply_text("/cycle btc_momentum")
        assert "unknown command" in await rig.reply_text("/frobnicate")

        assert "paused all exchanges" in await rig.reply_text("/pause")
        assert await rig.acct.journal.is_paused(SCOPE)
        assert "PAUSED" in await rig.reply_text("/status")
        assert "resumed all exchanges" in await rig.reply_text("/resume")
        assert not await rig.acct.journal.is_paused(SCOPE)
    # the token is in every request URL: it must not reach any log line or the terminal
    out = capsys.readouterr()
    assert TOKEN not in caplog.text and TOKEN not in out.out + out.err
    assert TOKEN.split(":")[1] not in caplog.text


async def test_set_my_commands_failure_is_not_fatal(tmp_path: Path) -> None:
    fake = await FakeTelegram(TOKEN).start()
    fake.fail(500, count=1, methods=("setMyCommands",))
    try:
        async with running_bot(tmp_path, fake) as rig:
            assert rig.fake.calls[1].method == "setMyCommands" and rig.fake.calls[1].status == 500
            assert "Warden status" in await rig.reply_text("/status")
    finally:
        await fake.stop()


BAD_ARGUMENTS = [
    ("/open", "missing SYMBOL and side", "/open SYMBOL long|short SIZE"),
    ("/open btc long", "missing SIZE", "/open SYMBOL"),
    ("/open btc long abc", "SIZE 'abc' is not a number", "/open SYMBOL"),
    ("/open btc long -1", "SIZE must be a positive number", "/open SYMBOL"),
    ("/open btc long nan", "SIZE must be a positive number", "/open SYMBOL"),
    ("/open btc sideways 0.01", "side must be long or short", "/open SYMBOL"),
    ("/open DOGE long 0.01", "unknown symbol DOGE (known: BTC/USDT:USDT, ETH", "/open"),
    ("/open btc long 0.01 70000", "stop 70000.0 must be below the last price", "/open"),
    ("/open btc long 0.01 60000 @nowhere", "unknown exchange 'nowhere'", "/open"),
    ("/close", "give one SYMBOL, or all", "/close SYMBOL|all"),
    ("/close DOGE", "unknown symbol DOGE", "/close SYMBOL|all"),
    ("/pnl soon", "DAYS 'soon' is not a whole number", "/pnl [DAYS]"),
    ("/pnl 0", "DAYS must be between 1 and 3650", "/pnl [DAYS]"),
    ("/cycle nope", "unknown strategy 'nope' (configured: btc_momentum)", "/cycle [STRATEGY]"),
    ("/pause kraken", "unknown exchange 'kraken'", "/pause [EXCHANGE]"),
    ("/status now", "/status takes no arguments", "/status"),
    ("/audit 1 2", "too many arguments", "/audit [DAYS]"),
]


async def test_bad_arguments_get_one_line_and_usage_and_do_nothing(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as rig:
        before = await _state(rig)
        for command, problem, usage in BAD_ARGUMENTS:
            text = await rig.reply_text(command)
            first, second = text.split("\n")
            assert problem in first, (command, text)
            assert second.startswith(f"usage: <code>{usage}"), (command, text)
            assert "reply_markup" not in rig.fake.sent()[-1].params  # nothing to confirm
        assert await _state(rig) == before


async def test_stranger_gets_nothing_changes_nothing_and_owner_is_alerted_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_bot(tmp_path) as rig:
        await rig.open_position()
        ask = await rig.ask("/close btc")  # the owner's pending confirmation
        before = await _state(rig)
        n = len(rig.fake.calls)
        for text in ("/status", "/close all", "/pause", "/open btc long 0.01", "hello there"):
            rig.fake.command(STRANGER, text)
        rig.press(ask, "Close", user=STRANGER)  # a stranger presses the owner's button
        rig.fake.command(7777, "/status")  # a second stranger
        # an allowed user in a group is fine (no chat allow-list configured)
        rig.fake.command(OWNER, "/help", chat_id=-100)
        await rig.fake.next_message(-100, n)
        await asyncio.sleep(0.3)
        replies = [c for c in rig.fake.calls[n:] if c.method != "getUpdates"]
        assert [c.method for c in replies] == ["sendMessage"]  # only the owner's /help
        assert int(replies[0].params["chat_id"]) == -100
        assert await _state(rig) == before
        assert rig.handle.gate.refused == 7
        keys = [a.key for a in await rig.daemon.outbox.due()]
        assert keys.count(f"stranger:{STRANGER}") == 1 and keys.count("stranger:7777") == 1
        refused = [r.__dict__["fields"] for r in caplog.records if r.msg == "telegram.refused"]
        assert {"user_id": STRANGER, "chat_id": STRANGER, "update": "message"} in refused
        assert "hello there" not in caplog.text + str(refused)

        await rig.deliver_all()
        texts = rig.fake.texts(OWNER)
        assert sum("user id 6666" in t for t in texts) == 1
        assert sum("user id 7777" in t for t in texts) == 1
        assert not rig.fake.sent(chat_id=STRANGER)
        # the owner's confirmation was untouched by the stranger's press
        n = len(rig.fake.calls)
        rig.press(ask, "Close")
        assert await rig.answer(n) == "confirmed"
        assert "closed long 0.01" in (await rig.fake.next_message(OWNER, n)).params["text"]


async def test_audit_is_read_only(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as rig:
        await rig.open_position()
        [stop] = await rig.acct.exchange.open_stops()
        await rig.acct.exchange.cancel_stop(BTC, stop.id)  # removed outside Warden
        text = await rig.reply_text("/audit")
        assert "1 finding(s)" in text
        assert "🚨 <b>unprotected_position</b> paper BTC/USDT:USDT: long 0.01 at" in text
        assert "has no live stop\n   → the guardian places one" in text
        assert await rig.acct.exchange.open_stops() == []  # found, not repaired


async def test_pnl_reports_realised_exits(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as rig:
        await rig.open_position()
        async with rig.daemon.leases.hold(SCOPE, "test close") as lease:
            await rig.acct.executor.close(lease, BTC, "manual", "test")
        n = len(rig.fake.calls)
        rig.fake.command(OWNER, "/pnl")
        photo = await rig.fake.next_photo(OWNER, n)  # the equity chart, the text as caption
        text = rig.fake.caption(photo)
        assert "1 closed trade(s), 0 won, 1 lost" in text and "BTC/USDT:USDT: -" in text
        assert photo.params["photo"].startswith(b"\x89PNG") and "P&L" in photo.result["caption"]
        assert rig.fake.texts(OWNER) == []  # nothing sent twice


async def test_a_command_sent_while_offline_is_not_executed(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as rig:
        n = len(rig.fake.calls)
        rig.fake.push(
            {
                "message": {
                    "message_id": 1,
                    "date": int(time.time()) - 3600,
                    "chat": {"id": OWNER, "type": "private"},
                    "from": {"id": OWNER, "is_bot": False, "first_name": "o"},
                    "text": "/pause",
                    "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
                }
            }
        )
        reply = await rig.fake.next_message(OWNER, n)
        assert (
            "ignored /pause: it was sent 60m ago, while Warden was offline" in reply.params["text"]
        )
        assert not await rig.acct.journal.is_paused(SCOPE)
