"""Button presses: confirm or cancel a /close or /open, acknowledge a critical alert, refresh a
/status message in place.

Only presses that passed the access gate get here. A confirmation acts once: a second press,
or a press after it expired, is answered with what happened and does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from telegram import Bot, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.telegram.actions import CANCEL, CONFIRM
from bot.telegram.confirm import Confirmations, Ended, Pending
from bot.telegram.render import esc, split_message
from storage.alert_ack_store import AlertAckStore
from trading.logfmt import event

log = logging.getLogger("warden.telegram.callbacks")
ACK = "ack"
REFRESH = "refresh"
REFRESH_STATUS = f"{REFRESH}:status"


def refresh_markup() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton("🔄 Refresh", callback_data=REFRESH_STATUS)]]
    )


async def _quietly(what: str, coro: Awaitable[object]) -> None:
    """Edits and answers are cosmetic: their failure must not hide the action's result."""
    try:
        await coro
    except TelegramError as exc:
        event(log, "telegram.edit_failed", logging.INFO, what=what, error=type(exc).__name__)


async def mark_expired(bot: Bot, p: Pending) -> None:
    if p.message_id is None:
        return
    await _quietly(
        "expired",
        bot.edit_message_text(
            p.summary + "\n⌛ expired: nothing was done",
            chat_id=p.chat_id,
            message_id=p.message_id,
            parse_mode=ParseMode.HTML,
        ),
    )


class Callbacks:
    def __init__(
        self,
        confirmations: Confirmations,
        acks: AlertAckStore,
        lease_wait: float,
        status: Callable[[], Awaitable[str]] | None = None,
    ):
        self.confirmations = confirmations
        self.acks = acks
        self.lease_wait = lease_wait
        self.status = status  # /status's text, read anew on each Refresh

    async def __call__(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        q = update.callback_query
        if q is None:
            return
        kind, _, arg = (q.data or "").partition(":")
        if kind in (CONFIRM, CANCEL):
            await self._confirmation(q, context, arg, kind == CONFIRM)
        elif kind == ACK and arg.isdigit():
            await self._ack(q, int(arg))
        elif q.data == REFRESH_STATUS and self.status is not None:
            await self._refresh(q, context)
        else:
            await _quietly("answer", q.answer("unknown button: nothing was done"))

    async def _confirmation(
        self, q: CallbackQuery, context: ContextTypes.DEFAULT_TYPE, token: str, confirm: bool
    ) -> None:
        taken = self.confirmations.take(token, confirm)
        if taken is None:
            await _quietly("answer", q.answer("this button is no longer valid: nothing was done"))
            await _quietly("markup", q.edit_message_reply_markup(None))
            return
        if isinstance(taken, Ended):
            await _quietly("answer", q.answer(taken.value))
            if taken is Ended.EXPIRED:
                await _quietly("markup", q.edit_message_reply_markup(None))
            return
        if not confirm:
            await _quietly("answer", q.answer("canceled"))
            await _quietly(
                "canceled",
                q.edit_message_text(
                    taken.summary + "\n✖ canceled: nothing was done", parse_mode=ParseMode.HTML
                ),
            )
            return
        await _quietly("answer", q.answer("confirmed"))
        await _quietly(
            "working",
            q.edit_message_text(
                taken.summary
                + f"\n⏳ confirmed; working (waiting up to {self.lease_wait:g} s for the lease)",
                parse_mode=ParseMode.HTML,
            ),
        )
        event(log, "telegram.confirmed", token=token)
        try:
            result = await taken.action()
        except Exception as exc:
            log.exception("telegram.action_failed")
            result = f"failed: {esc(type(exc).__name__)} (details in the log)"
        for part in split_message(result):
            await context.bot.send_message(taken.chat_id, part, parse_mode=ParseMode.HTML)

    async def _ack(self, q: CallbackQuery, alert_id: int) -> None:
        first = await self.acks.acknowledge(alert_id, q.from_user.id)
        event(log, "telegram.alert_ack", alert_id=alert_id, user_id=q.from_user.id, first=first)
        await _quietly("answer", q.answer("acknowledged" if first else "already acknowledged"))
        await _quietly("markup", q.edit_message_reply_markup(None))

    async def _refresh(self, q: CallbackQuery, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Read the status again (reads only, no lease) and put it in the pressed message. A
        status too long for one message is sent anew, the old message losing its button."""
        try:
            text = await self.status()  # type: ignore[misc]
        except Exception as exc:
            log.exception("telegram.refresh_failed")
            await _quietly("answer", q.answer(f"refresh failed: {type(exc).__name__}"))
            return
        parts = split_message(text)
        if len(parts) == 1:
            await _quietly("answer", q.answer("refreshed"))
            # Telegram refuses an edit that changes nothing ("message is not modified"); the
            # status carries the time to the second, so that happens only within one second
            await _quietly(
                "refresh",
                q.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=refresh_markup()),
            )
            return
        await _quietly("answer", q.answer("refreshed below"))
        await _quietly("markup", q.edit_message_reply_markup(None))
        chat_id = q.message.chat.id if q.message is not None else q.from_user.id
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            await context.bot.send_message(
                chat_id,
                part,
                parse_mode=ParseMode.HTML,
                reply_markup=refresh_markup() if last else None,
            )
