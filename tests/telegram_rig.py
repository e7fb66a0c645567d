"""A running Warden bot for tests: the real python-telegram-bot Application, started by
``start_telegram`` on a real (unstarted) Daemon, talking to the local fake Bot API server."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.config import Config, Secrets
from bot.daemon import Daemon
from bot.telegram import TelegramHandle, TelegramSettings, start_telegram
from storage.db import Database
from storage.held_lease import HeldLease, LeaseManager
from storage.lease import LeaseStore
from tests.fake_telegram import Call, FakeTelegram
from trading.models import PositionSide

TOKEN = "987654321:AAF-test-SECRET-token-do-not-log"
OWNER = 1111
OWNER2 = 2222
STRANGER = 6666
BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
SCOPE = "paper:main"


def config(db_path: Path) -> Config:
    return Config.model_validate(
        {
            "storage": {"path": str(db_path)},
            "guardian": {"verify_delay_seconds": 0.05},
            "exchanges": {"paper": {"kind": "paper"}},
            "strategies": [
                {
                    "name": "btc_momentum",
                    "kind": "momentum_breakout",
                    "exchange": "paper",
                    "symbols": [BTC],
                    "timeframe": "30m",
                }
            ],
        }
    )


def settings(fake: FakeTelegram, **changes: Any) -> TelegramSettings:
    base = TelegramSettings(
        api_base_url=fake.base_url,
        poll_timeout=1.0,
        confirm_timeout_seconds=5.0,
        lease_wait_seconds=0.5,
        retry_base_seconds=0.05,
        retry_max_seconds=0.4,
    )
    return dataclasses.replace(base, **changes)


def secrets(users: frozenset[int] = frozenset({OWNER})) -> Secrets:
    return Secrets(values={"TELEGRAM_BOT_TOKEN": SecretStr(TOKEN)}, telegram_allowed_user_ids=users)


@dataclass
class Rig:
    fake: FakeTelegram
    daemon: Daemon
    handle: TelegramHandle
    db: Database

    @property
    def acct(self) -> Any:
        return self.daemon.accounts["paper"]

    async def ask(self, text: str, user: int = OWNER, timeout: float = 10.0) -> Call:
        """Send a command as ``user``; the bot's first reply to that chat."""
        n = len(self.fake.calls)
        self.fake.command(user, text)
        return await self.fake.next_message(user, n, timeout)

    def buttons(self, call: Call) -> dict[str, str]:
        """Button label -> callback data of a message the bot sent."""
        rows = call.params["reply_markup"]["inline_keyboard"]
        return {b["text"]: b["callback_data"] for row in rows for b in row}

    def press(self, call: Call, label_start: str, user: int = OWNER) -> int:
        data = next(d for t, d in self.buttons(call).items() if label_start in t)
        chat = int(call.params["chat_id"])
        return self.fake.press(user, chat, int(call.result["message_id"]), data)

    async def answer(self, after: int, timeout: float = 10.0) -> str:
        """The text of the first answerCallbackQuery after the first ``after`` calls."""
        call = await self.fake.wait_for(
            lambda calls: next(
                (c for c in calls[after:] if c.method == "answerCallbackQuery"), None
            ),
            timeout,
        )
        return str(call.params.get("text", ""))

    async def reply_text(self, text: str, user: int = OWNER) -> str:
        return str((await self.ask(text, user)).params["text"])

    async def open_position(
        self, symbol: str = BTC, side: PositionSide = PositionSide.LONG, size: float = 0.01
    ) -> None:
        stop = 65_600.0 if symbol == BTC else 1_850.0
        if side is PositionSide.SHORT:
            stop = 72_000.0 if symbol == BTC else 2_050.0
        async with self.daemon.leases.hold(SCOPE, "test open") as lease:
            result = await self.acct.executor.open(lease, symbol, side, size, stop, "test")
        assert result.ok, result.detail

    async def deliver_all(self, timeout: float = 15.0) -> None:
        """Run the outbox job (as the daemon does every second) until the outbox is empty."""
        deadline = time.monotonic() + timeout
        while await self.daemon.outbox.undelivered_count():
            assert time.monotonic() < deadline, "outbox not drained in time"
            await self.handle.notifier.deliver_pending(self.daemon.outbox)
            await asyncio.sleep(0.02)


@asynccontextmanager
async def running_bot(
    tmp_path: Path,
    fake: FakeTelegram | None = None,
    users: frozenset[int] = frozenset({OWNER}),
    **changes: Any,
) -> AsyncIterator[Rig]:
    own_fake = fake is None
    fake = fake or await FakeTelegram(TOKEN).start()
    db = await Database.open(tmp_path / "warden.db")
    daemon = Daemon(config(tmp_path / "warden.db"), db)
    assert await daemon.reconcile("paper")  # as Daemon.start does; entries wait for it
    handle = await start_telegram(daemon, secrets(users), settings(fake, **changes))
    try:
        yield Rig(fake, daemon, handle, db)
    finally:
        await handle.stop()
        for acct in daemon.accounts.values():
            await acct.exchange.close()
        await db.close()
        if own_fake:
            await fake.stop()


@asynccontextmanager
async def lease_held_elsewhere(
    db_path: Path, purpose: str = "scheduled cycle btc_momentum"
) -> AsyncIterator[HeldLease]:
    """The account lease held through another connection, as another process would."""
    other = await Database.open(db_path)
    try:
        held = await LeaseManager(LeaseStore(other), ttl=30.0, heartbeat=5.0).acquire(
            SCOPE, purpose
        )
        try:
            yield held
        finally:
            await held.release()
    finally:
        await other.close()
