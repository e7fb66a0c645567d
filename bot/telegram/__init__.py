"""Telegram control: commands, confirmations, owner-only access (I7) and alert delivery (I6).

The daemon calls ``start_telegram`` once its accounts exist; it returns a handle whose
``notifier`` replaces the terminal notifier and whose ``stop()`` ends it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from telegram import Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import TypeHandler

from bot.config import ConfigError, Secrets
from bot.logs import redactor
from bot.telegram.access import AccessGate
from bot.telegram.actions import TradeActions
from bot.telegram.app import (
    TgApp,
    build_application,
    quiet_url_loggers,
    shutdown,
    start_application,
    stop_updates,
)
from bot.telegram.callbacks import Callbacks, mark_expired
from bot.telegram.chart import alert_chart, equity_png
from bot.telegram.commands import ChartFn, bot_commands, register
from bot.telegram.confirm import Confirmations, Pending
from bot.telegram.notifier import TelegramNotifier
from bot.telegram.services import BotServices
from bot.telegram.settings import TelegramSettings
from bot.telegram.status import status_text
from storage.alert_ack_store import AlertAckStore
from trading.logfmt import event

if TYPE_CHECKING:
    from bot.daemon import Daemon

__all__ = ["TelegramHandle", "TelegramSettings", "start_telegram"]
log = logging.getLogger("warden.telegram")
RETRY_MAX = 60.0


@dataclass
class TelegramHandle:
    app: TgApp = field(repr=False)  # python-telegram-bot's repr of the bot shows the token
    notifier: TelegramNotifier
    services: BotServices
    gate: AccessGate
    confirmations: Confirmations
    settings: TelegramSettings
    _starter: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def ready(self) -> bool:
        return self.notifier.ready

    async def _start_once(self) -> None:
        await start_application(self.app, self.settings, bot_commands())
        self.notifier.ready = True
        event(
            log,
            "telegram.started",
            bot=self.app.bot.username,
            recipients=len(self.notifier.recipients),
        )

    async def _keep_starting(self, delay: float) -> None:
        """Telegram unreachable at start-up: the agent runs on (stops stay guarded, alerts
        wait in the outbox) and the bot comes up when Telegram answers."""
        while True:
            await asyncio.sleep(delay)
            try:
                await self._start_once()
                return
            except (TelegramError, OSError) as exc:
                delay = min(delay * 2, RETRY_MAX)
                event(
                    log,
                    "telegram.start_failed",
                    logging.WARNING,
                    error=type(exc).__name__,
                    retry_in=delay,
                )

    async def stop_commands(self) -> None:
        """Stop taking commands and let running ones finish; alerts can still be delivered
        (call before the daemon's stop, whose last outbox pass uses the notifier)."""
        if self._starter is not None:
            self._starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starter
            self._starter = None
        await stop_updates(self.app)
        await self.confirmations.close()

    async def stop(self) -> None:
        await self.stop_commands()
        self.notifier.ready = False
        await shutdown(self.app)
        event(log, "telegram.stopped", refused=self.gate.refused, alerts_sent=self.notifier.sent)


async def start_telegram(
    daemon: Daemon,
    secrets: Secrets,
    settings: TelegramSettings,
    *,
    chart: ChartFn | None = None,
) -> TelegramHandle:
    """Build and start the bot on the daemon's loop; raises ConfigError when the token or the
    allow-list is missing or Telegram refuses the token."""
    token = secrets.get("TELEGRAM_BOT_TOKEN")
    if not token:
        raise ConfigError("TELEGRAM_BOT_TOKEN is not set: Telegram cannot be started")
    users = secrets.telegram_allowed_user_ids
    if not users:
        raise ConfigError("TELEGRAM_ALLOWED_USER_IDS is empty: nobody could use the bot")
    redactor().add([token])
    quiet_url_loggers()
    svc = BotServices.from_daemon(daemon, settings, users)
    app = build_application(token, settings)

    async def expired(p: Pending) -> None:
        await mark_expired(app.bot, p)

    confirmations = Confirmations(settings.confirm_timeout_seconds, on_expiry=expired)
    acks = AlertAckStore(daemon.db)
    gate = AccessGate(users, settings.allowed_chat_ids, svc.journal, settings.stale_command_seconds)
    app.add_handler(TypeHandler(Update, gate), group=-1)
    callbacks = Callbacks(
        confirmations, acks, settings.lease_wait_seconds, status=lambda: status_text(svc)
    )
    register(app, svc, TradeActions(svc, confirmations), callbacks, chart or equity_png)
    notifier = TelegramNotifier(
        app.bot,
        acks,
        settings.recipients(users),
        settings,
        token=token,
        chart=alert_chart(daemon.accounts, daemon.config),
    )
    handle = TelegramHandle(app, notifier, svc, gate, confirmations, settings)
    try:
        await handle._start_once()
    except InvalidToken:
        await shutdown(app)
        raise ConfigError("TELEGRAM_BOT_TOKEN was refused by the Bot API server") from None
    except (TelegramError, OSError) as exc:
        event(log, "telegram.start_failed", logging.WARNING, error=type(exc).__name__, retry_in=1.0)
        handle._starter = asyncio.create_task(handle._keep_starting(1.0), name="telegram-start")
    return handle
