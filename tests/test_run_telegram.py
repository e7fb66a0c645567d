"""`warden run` with a bot token: the real CLI process serves Telegram (a local fake Bot API
server) while it trades, and its alerts go there instead of the terminal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import child_env, warden_cmd
from tests.fake_telegram import FakeTelegram
from tests.telegram_rig import TOKEN

pytestmark = pytest.mark.slow  # real OS processes

OWNER = 4242
STRANGER = 666

CONFIG = """
[guardian]
verify_delay_seconds = 0.2
watchdog_seconds = 2.0
[telegram]
api_base_url = "{url}"
poll_timeout = 0.5
[exchanges.paper]
kind = "paper"
[exchanges.paper.faults]
stop_silent_fail = 1
"""


async def test_run_serves_the_owner_and_delivers_alerts_to_telegram(tmp_path: Path) -> None:
    fake = await FakeTelegram(TOKEN).start()
    (tmp_path / "warden.toml").write_text(CONFIG.format(url=fake.base_url))
    env = child_env(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_ALLOWED_USER_IDS=str(OWNER))
    proc = await asyncio.create_subprocess_exec(
        *warden_cmd("run"),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await fake.wait_for(lambda calls: any(c.method == "getUpdates" for c in calls), 60)
        fake.command(STRANGER, "/status")
        before = len(fake.sent(chat_id=OWNER))
        fake.command(OWNER, "/status")
        reply = await fake.next_message(OWNER, before, timeout=30)
        assert "position" in reply.params["text"].lower()

        # a trade from the CLI raises alerts; the daemon delivers them to the owner's chat
        opened = await asyncio.create_subprocess_exec(
            *warden_cmd(
                "open", "BTC/USDT:USDT", "long", "--size", "0.001", "--stop", "65000", "--yes"
            ),
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(opened.communicate(), 60)
        assert opened.returncode == 0, err.decode()
        texts = await fake.wait_for(
            lambda calls: [
                c
                for c in calls
                # the stop repair alert: a photo (the position chart) with the text as caption
                if c.method in ("sendMessage", "sendPhoto")
                and "failCode 1000" in str(c.params.get("text") or c.params.get("caption"))
            ],
            30,
        )
        assert texts
        # the stranger got nothing at all; the owner was told about the stranger
        assert fake.sent(chat_id=STRANGER) == []
        assert any(str(STRANGER) in t for t in fake.texts(OWNER))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        await fake.stop()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert TOKEN not in (out + err).decode()
