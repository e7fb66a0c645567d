"""Alert delivery to Telegram (I6) through the real client and the fake Bot API: in order,
exactly once per chat, through 500s and 429s, across a restart; critical alerts are loud, carry
an acknowledge button and are repeated until acknowledged or resolved; routine ones are silent."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.config import ConfigError, Secrets
from bot.daemon import Daemon
from bot.telegram import start_telegram
from storage.db import Database
from tests.fake_telegram import FakeTelegram
from tests.telegram_rig import (
    BTC,
    ETH,
    OWNER,
    OWNER2,
    SCOPE,
    TOKEN,
    config,
    running_bot,
    secrets,
    settings,
)
from trading.journal import Attribution, Severity

# python-telegram-bot warns, when it builds a RetryAfter, that the attribute's type will change
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
TWO = frozenset({OWNER, OWNER2})
SEVERITIES = [Severity.INFO, Severity.CRITICAL, Severity.WARNING]


def alert_lines(fake: FakeTelegram, chat: int, marker: str) -> list[str]:
    return [t.split("\n", 1)[1] for t in fake.texts(chat) if marker in t]


async def test_500s_and_429s_then_recovery_deliver_every_alert_once_in_order(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path, users=TWO) as rig:
        for i in range(12):
            await rig.acct.journal.alert(SEVERITIES[i % 3], f"alert #{i:02d} <&>", f"k{i}")
        rig.fake.fail(500, count=2, chats={OWNER2})  # the first alert reaches one chat only
        rig.fake.fail(429, count=1, retry_after=1)
        rig.fake.fail(500, seconds=0.6)
        await rig.deliver_all()
        want = [f"alert #{i:02d} <&>" for i in range(12)]
        for chat in (OWNER, OWNER2):
            assert alert_lines(rig.fake, chat, "alert #") == want
        calls = [c for c in rig.fake.calls if c.method == "sendMessage"]
        assert {c.status for c in calls} == {200, 429, 500}
        i429 = next(i for i, c in enumerate(calls) if c.status == 429)
        assert calls[i429 + 1].at - calls[i429].at >= 0.95  # retry_after honoured
        for c in rig.fake.sent():
            sev = c.params["text"].split("\n")[0]
            loud = "INFO" not in sev
            assert str(c.params.get("disable_notification", False)).lower() == str(not loud).lower()
            assert ("reply_markup" in c.params) == ("CRITICAL" in sev)
        assert await rig.daemon.outbox.due() == []
        assert rig.handle.notifier.failures == sum(c.status != 200 for c in calls)


async def test_undelivered_alerts_are_delivered_after_a_restart(tmp_path: Path) -> None:
    fake = await FakeTelegram(TOKEN).start()
    try:
        async with running_bot(tmp_path, fake, users=TWO) as rig:
            for i in range(5):
                await rig.acct.journal.alert(Severity.WARNING, f"before restart #{i}", f"r{i}")
            fake.fail(500, seconds=60, chats={OWNER2})
            await rig.handle.notifier.deliver_pending(rig.daemon.outbox)
            assert await rig.daemon.outbox.undelivered_count() == 5
            assert alert_lines(fake, OWNER, "restart") == ["before restart #0"]
        fake.failures.clear()
        async with running_bot(tmp_path, fake, users=TWO) as rig:  # a new process, same db
            await rig.deliver_all()
        want = [f"before restart #{i}" for i in range(5)]
        assert alert_lines(fake, OWNER, "restart") == want  # #0 not sent twice
        assert alert_lines(fake, OWNER2, "restart") == want
    finally:
        await fake.stop()


async def test_critical_alerts_repeat_until_acknowledged_or_resolved(tmp_path: Path) -> None:
    async with running_bot(tmp_path, realert_seconds=0.3) as rig:
        # text only: drawing a chart takes longer than realert_seconds here, which would
        # interleave repeats (pictures: tests/test_chart_alerts.py)
        rig.handle.notifier.chart = None
        journal = rig.acct.journal
        await journal.alert(Severity.CRITICAL, "lease lost on paper:main", "lease-lost:paper")
        await journal.open_incident(SCOPE, BTC, "unprotected_position", Attribution.EXECUTION, "x")
        await journal.alert(Severity.CRITICAL, "reconciliation failed", "reconcile:paper:main")
        await journal.alert(Severity.INFO, "entered long", "entry:BTC")
        await journal.alert(Severity.INFO, "reconciled after 1 attempt", "reconciled:paper:main")
        await journal.open_incident(  # resolved when raised: nothing to repeat
            SCOPE, ETH, "stop_placement_failed", Attribution.EXECUTION, "y", resolved=True
        )
        await rig.deliver_all()
        first = rig.fake.sent()
        assert [("reply_markup" in c.params) for c in first] == [
            True,
            True,
            True,
            False,
            False,
            True,
        ]
        await asyncio.sleep(0.35)
        await rig.handle.notifier.deliver_pending(rig.daemon.outbox)
        repeats = [t for t in rig.fake.texts(OWNER) if "repeat 1, not acknowledged" in t]
        assert len(repeats) == 2

        n = len(rig.fake.calls)
        rig.press(first[0], "Acknowledge")
        assert await rig.answer(n) == "acknowledged"
        n = len(rig.fake.calls)
        rig.press(first[0], "Acknowledge")
        assert await rig.answer(n) == "already acknowledged"
        await journal.resolve_incidents(SCOPE, BTC, "stop re-placed and verified live")
        await rig.deliver_all()
        await asyncio.sleep(0.35)
        await rig.handle.notifier.deliver_pending(rig.daemon.outbox)
        await asyncio.sleep(0.35)
        await rig.handle.notifier.deliver_pending(rig.daemon.outbox)
        texts = rig.fake.texts(OWNER)
        assert sum("repeat" in t for t in texts) == 2  # nothing repeated after ack / resolve
        assert "resolved paper:main BTC/USDT:USDT" in texts[-1]


async def test_a_chat_that_refuses_for_good_does_not_block_the_others(tmp_path: Path) -> None:
    async with running_bot(tmp_path, users=TWO) as rig:
        rig.fake.fail(403, seconds=60, chats={OWNER2})  # OWNER2 blocked the bot
        for i in range(3):
            await rig.acct.journal.alert(Severity.WARNING, f"alert #{i}", f"k{i}")
        await rig.deliver_all()
        assert alert_lines(rig.fake, OWNER, "alert #") == ["alert #0", "alert #1", "alert #2"]
        rig.fake.fail(403, seconds=60)  # nobody accepts: the alert is kept
        await rig.acct.journal.alert(Severity.WARNING, "kept", "kept")
        await rig.handle.notifier.deliver_pending(rig.daemon.outbox)
        assert await rig.daemon.outbox.undelivered_count() == 1


async def test_telegram_down_at_start_up_does_not_stop_the_agent(tmp_path: Path) -> None:
    fake = await FakeTelegram(TOKEN).start()
    fake.fail(500, seconds=0.5, methods=("getMe",))
    try:
        async with running_bot(tmp_path, fake) as rig:
            assert not rig.handle.ready
            await rig.acct.journal.alert(Severity.WARNING, "while down", "down")
            assert await rig.handle.notifier.deliver_pending(rig.daemon.outbox) == 0
            deadline = time.monotonic() + 5
            while not rig.handle.ready:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await rig.deliver_all()
            assert alert_lines(fake, OWNER, "while down") == ["while down"]
            assert "Warden status" in await rig.reply_text("/status")
    finally:
        await fake.stop()


async def test_a_refused_token_or_missing_allow_list_is_a_config_error(tmp_path: Path) -> None:
    fake = await FakeTelegram("111:other-token").start()
    db = await Database.open(tmp_path / "warden.db")
    try:
        daemon = Daemon(config(tmp_path / "warden.db"), db)
        bad = Secrets({"TELEGRAM_BOT_TOKEN": SecretStr(TOKEN)}, frozenset({OWNER}))
        with pytest.raises(ConfigError, match="refused"):
            await start_telegram(daemon, bad, settings(fake))
        nobody = Secrets({"TELEGRAM_BOT_TOKEN": SecretStr(TOKEN)}, frozenset())
        with pytest.raises(ConfigError, match="TELEGRAM_ALLOWED_USER_IDS"):
            await start_telegram(daemon, nobody, settings(fake))
        with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN"):
            await start_telegram(daemon, Secrets(), settings(fake))
    finally:
        await db.close()
        await fake.stop()


async def test_a_chat_allow_list_gates_updates_and_receives_the_alerts(tmp_path: Path) -> None:
    group = -1001
    async with running_bot(tmp_path, allowed_chat_ids=frozenset({group})) as rig:
        n = len(rig.fake.calls)
        rig.fake.command(OWNER, "/status")  # the owner, but in a private chat not allowed
        rig.fake.command(OWNER, "/status", chat_id=group)
        assert "Warden status" in (await rig.fake.next_message(group, n)).params["text"]
        await rig.deliver_all()  # the alert about the private chat goes to the group only
        [alert] = alert_lines(rig.fake, group, "chat allow-list")
        assert f"an allowed user wrote from chat {OWNER}, which is not on" in alert
        assert rig.fake.sent(chat_id=OWNER) == []


async def test_wired_into_a_running_daemon(tmp_path: Path) -> None:
    """The wiring the run command does: the daemon's outbox job delivers through Telegram;
    stop order: commands first, then the daemon (its last outbox pass), then the bot."""
    fake = await FakeTelegram(TOKEN).start()
    db = await Database.open(tmp_path / "warden.db")
    try:
        daemon = Daemon(config(tmp_path / "warden.db"), db)
        handle = await start_telegram(daemon, secrets(), settings(fake))
        daemon.notifier = handle.notifier
        await daemon.start()
        try:
            await daemon.accounts["paper"].journal.alert(Severity.WARNING, "via the job", "job")
            await fake.wait_for(lambda _: alert_lines(fake, OWNER, "via the job"), timeout=5)
            n = len(fake.calls)
            fake.command(OWNER, "/status")
            status = (await fake.next_message(OWNER, n)).params["text"]
            assert "<b>btc_momentum</b>: last never · next " in status
            assert "not scheduled" not in status
        finally:
            await handle.stop_commands()
            await daemon.accounts["paper"].journal.alert(Severity.INFO, "at the end", "end")
            await daemon.stop()
            await handle.stop()
        assert alert_lines(fake, OWNER, "at the end") == ["at the end"]
    finally:
        await db.close()
        await fake.stop()
