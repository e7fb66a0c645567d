"""The one gate every update passes (I7): messages, commands and button presses alike.

It runs in handler group -1, before any command handler. An update from anyone not on the
allow-list (user id; chat id too when ``allowed_chat_ids`` is set) is stopped there: no reply,
no callback answer, nothing changes. The attempt is logged (ids only, never the text) and the
owner is alerted once per stranger through the outbox.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot.telegram.render import ago, esc
from storage.journal_store import JournalStore
from trading.journal import Severity
from trading.logfmt import event

log = logging.getLogger("warden.telegram.access")
ONCE = 100 * 365 * 86400.0  # repeat_after long enough to mean "once per stranger"


def _kind(update: Update) -> str:
    for kind in ("callback_query", "message", "edited_message", "channel_post", "inline_query"):
        if getattr(update, kind, None) is not None:
            return kind
    return "other"


class AccessGate:
    def __init__(
        self,
        users: frozenset[int],
        chats: frozenset[int],
        journal: JournalStore,
        stale_after: float,
        clock: Any = time.time,
    ) -> None:
        self.users = users
        self.chats = chats
        self.journal = journal
        self.stale_after = stale_after
        self.clock = clock
        self._alerted: set[str] = set()
        self.refused = 0

    def allows(self, update: Update) -> bool:
        user, chat = update.effective_user, update.effective_chat
        if user is None or user.id not in self.users:
            return False
        return not self.chats or (chat is not None and chat.id in self.chats)

    async def __call__(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        if not isinstance(update, Update):
            raise ApplicationHandlerStop
        if not self.allows(update):
            await self._refuse(update)
            raise ApplicationHandlerStop
        await self._drop_stale(update)

    async def _refuse(self, update: Update) -> None:
        self.refused += 1
        user, chat = update.effective_user, update.effective_chat
        uid = user.id if user is not None else None
        cid = chat.id if chat is not None else None
        event(
            log,
            "telegram.refused",
            logging.WARNING,
            user_id=uid,
            chat_id=cid,
            update=_kind(update),
        )
        if uid is not None and uid in self.users:
            key = f"stranger-chat:{cid}"
            text = (
                f"Telegram: an allowed user wrote from chat {cid}, which is not on the chat "
                "allow-list; no answer was given (alerted once per chat)"
            )
        elif uid is not None:
            key = f"stranger:{uid}"
            text = (
                f"Telegram: user id {uid} (chat {cid}) is not on the allow-list and tried to "
                "use the bot; they got no answer (alerted once per stranger)"
            )
        else:
            key = f"stranger-chat:{cid}"
            text = f"Telegram: an update without a user from chat {cid} was ignored (alerted once)"
        if key in self._alerted:
            return
        self._alerted.add(key)
        await self.journal.alert(Severity.WARNING, text, key, repeat_after=ONCE)

    async def _drop_stale(self, update: Update) -> None:
        """A command sent while Warden was offline is not executed now, unseen."""
        msg = update.message
        if msg is None or not (msg.text or "").startswith("/"):
            return
        sent = msg.date.timestamp()
        if self.clock() - sent <= self.stale_after:
            return
        event(log, "telegram.stale_command", logging.WARNING, sent=round(sent), chat_id=msg.chat_id)
        await msg.reply_text(
            f"ignored {esc((msg.text or '').split()[0])}: it was sent {esc(ago(sent))}, while "
            "Warden was offline; send it again if you still mean it",
            parse_mode=ParseMode.HTML,
        )
        raise ApplicationHandlerStop
