"""The python-telegram-bot Application: built, started and stopped inside the agent's loop.

Long polling, concurrent updates (read-only commands are answered while a confirmed /close
waits for the lease or a cycle runs), no JobQueue (APScheduler belongs to the daemon), the API
base URL from settings (a self-hosted Bot API server, or the tests' fake).
"""

from __future__ import annotations

import logging
from typing import Any, cast

from telegram import BotCommand, Update
from telegram.error import TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ContextTypes

from bot.logs import redactor
from bot.telegram.settings import TelegramSettings
from trading.logfmt import event

log = logging.getLogger("warden.telegram")
TgApp = Application[Any, Any, Any, Any, Any, Any]
# these log request URLs (which carry the bot token) at DEBUG/INFO
URL_LOGGERS = ("httpx", "httpcore", "telegram", "telegram.ext", "hpack")


def quiet_url_loggers() -> None:
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logging.WARNING, logger.getEffectiveLevel()))


def build_application(token: str, settings: TelegramSettings) -> TgApp:
    builder = (
        ApplicationBuilder()
        .token(token)
        .base_url(settings.api_base_url)
        .base_file_url(settings.file_url())
        .concurrent_updates(True)
        .job_queue(None)
    )
    if settings.rate_limit:
        builder = cast(Any, builder).rate_limiter(AIORateLimiter(max_retries=0))
    app: TgApp = builder.build()
    app.add_error_handler(_on_error)
    return app


async def _on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    exc = context.error
    event(
        log,
        "telegram.handler_error",
        logging.ERROR,
        error=redactor()(f"{type(exc).__name__}: {exc}"),
        update_id=update.update_id if isinstance(update, Update) else None,
    )


def _polling_error(exc: TelegramError) -> None:
    event(
        log,
        "telegram.polling_error",
        logging.WARNING,
        error=redactor()(f"{type(exc).__name__}: {exc}"),
    )


async def start_application(
    app: TgApp, settings: TelegramSettings, commands: list[BotCommand]
) -> None:
    """initialize (getMe) -> setMyCommands (a failure is logged, not fatal) -> start -> poll."""
    await app.initialize()
    try:
        await app.bot.set_my_commands(commands)
    except TelegramError as exc:
        event(log, "telegram.set_my_commands_failed", logging.WARNING, error=type(exc).__name__)
    if not app.running:
        await app.start()
    assert app.updater is not None
    if not app.updater.running:
        await app.updater.start_polling(
            timeout=int(settings.poll_timeout),
            allowed_updates=[Update.MESSAGE, Update.CALLBACK_QUERY],
            drop_pending_updates=False,  # stale commands are refused by the access gate
            error_callback=_polling_error,
        )


async def stop_updates(app: TgApp) -> None:
    """No new updates; wait for the handlers that are running. The bot can still send."""
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
    if app.running:
        await app.stop()


async def shutdown(app: TgApp) -> None:
    await stop_updates(app)
    await app.shutdown()
