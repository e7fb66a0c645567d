"""Turning a command's result into Telegram messages, and its failures into one clear line."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from telegram import InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot.logs import redactor
from bot.telegram.args import UsageError
from bot.telegram.confirm import Pending
from bot.telegram.render import CAPTION_LIMIT, esc, fits_caption, split_message, trim
from trading.errors import ExchangeError
from trading.logfmt import event

log = logging.getLogger("warden.telegram")


@dataclass
class Reply:
    html: str
    markup: InlineKeyboardMarkup | None = None
    pending: Pending | None = None  # the confirmation this reply's buttons belong to
    # a text that fits a caption (1,024) goes as the photo's caption, in one message; a longer
    # one goes as text first, then the photo with the text trimmed to fit as caption
    photo: bytes | None = None


Result = str | Reply | None
Command = Callable[[Update, list[str]], Awaitable[Result]]
Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]


async def send(chat_id: int, context: ContextTypes.DEFAULT_TYPE, reply: Reply) -> None:
    bot = context.bot
    sent: Message | None = None
    if reply.photo is not None and fits_caption(reply.html):
        sent = await bot.send_photo(
            chat_id,
            reply.photo,
            caption=reply.html,
            parse_mode=ParseMode.HTML,
            reply_markup=reply.markup,
        )
    else:
        parts = split_message(reply.html)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            sent = await bot.send_message(
                chat_id,
                part,
                parse_mode=ParseMode.HTML,
                reply_markup=reply.markup if last else None,
            )
        if reply.photo is not None:
            caption = trim(reply.html, CAPTION_LIMIT)
            await bot.send_photo(chat_id, reply.photo, caption=caption, parse_mode=ParseMode.HTML)
    if reply.pending is not None and sent is not None:
        reply.pending.message_id = sent.message_id


def command(name: str, fn: Command) -> Handler:
    """A python-telegram-bot callback around a command: arguments in, reply out; a usage
    error is the problem plus the usage; an exchange error or a bug is one line, logged."""

    async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat
        if chat is None:
            return
        args = list(context.args or [])
        try:
            result = await fn(update, args)
        except UsageError as exc:
            result = f"{esc(exc.problem)}\nusage: <code>{esc(exc.usage)}</code>"
        except ExchangeError as exc:
            event(log, "telegram.exchange_error", logging.WARNING, command=name, error=str(exc))
            result = f"/{esc(name)}: exchange error: {esc(redactor()(str(exc)))}"
        except Exception as exc:
            log.exception("telegram.command_failed command=%s", name)
            result = f"/{esc(name)} failed: {esc(type(exc).__name__)} (details in the log)"
        if result is None:
            return
        await send(chat.id, context, result if isinstance(result, Reply) else Reply(result))

    return handle
