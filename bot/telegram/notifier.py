"""Alert delivery to Telegram (I6): the outbox, in order, to every recipient, exactly once.

Each pass sends the due alerts oldest first. An alert counts as delivered when every recipient
has it; each (alert, chat, round) that was sent is recorded at once, so a retry or a restart
never sends it to that chat again. A failure stops the pass (nothing overtakes a waiting
alert) and backs off: a 429's ``retry_after`` exactly, otherwise exponentially, capped.
Critical alerts are loud and carry an "acknowledge" button; unacknowledged ones are sent again
every ``realert_seconds`` until acknowledged, resolved or raised again. Info alerts are silent.

An alert that names a chart subject (an emergency close, a stop repair) carries the position
chart, drawn when it is delivered. A text that fits a photo caption (1,024) is sent as the
photo with the text as caption, the acknowledge button on it; a longer one is sent as the text
message (the delivery that counts), the photo following with the text trimmed to fit. A
chart that cannot be drawn, or a photo Telegram refuses, never holds the alert back: the text
goes alone. Repeats of an unacknowledged alert are text only.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import logging
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.notify import SeatCheck, still_seated
from bot.telegram.render import CAPTION_LIMIT, alert_html, fits_caption, trim
from bot.telegram.settings import TelegramSettings
from storage.alert_ack_store import AlertAckStore
from storage.errors import StorageError
from storage.outbox import Outbox, PendingAlert
from trading.logfmt import event

log = logging.getLogger("warden.telegram.notifier")
ChartFn = Callable[[str, str], Awaitable[bytes | None]]  # (scope, symbol) -> PNG or None


def retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that the int form will become a timedelta
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


class _Stop(Exception):
    """This pass must end here; the alert was marked failed with its retry time."""


class TelegramNotifier:
    def __init__(
        self,
        bot: Bot,
        acks: AlertAckStore,
        recipients: Sequence[int],
        settings: TelegramSettings,
        *,
        token: str = "",
        monotonic: Callable[[], float] = time.monotonic,
        chart: ChartFn | None = None,
    ) -> None:
        self.bot = bot
        self.chart = chart
        self.acks = acks
        self.recipients = list(recipients)
        self.settings = settings
        self.token = token
        self.monotonic = monotonic
        self.ready = False  # set once the bot is initialized; until then alerts wait
        self.sent = 0
        self.failures = 0
        self._quiet_until = 0.0
        self._streak = 0  # consecutive failures, for the backoff of repeats
        self._lock = asyncio.Lock()
        # (alert, chat, round) -> message id: sent while the database could not record it
        # (busy, full); recorded before anything else is sent, so it is never sent twice
        self._unrecorded: dict[tuple[int, int, int], int | None] = {}

    def _clean(self, text: str) -> str:
        return text.replace(self.token, "***") if self.token else text

    async def deliver_pending(self, outbox: Outbox, seat: SeatCheck | None = None) -> int:
        """One delivery pass; returns the number of messages sent. ``seat`` is asked before
        each alert (bot.notify.still_seated)."""
        if not self.ready or self.monotonic() < self._quiet_until:
            return 0
        async with self._lock:  # the scheduled job and a final flush never interleave
            before = self.sent
            try:
                await self._flush()
                for alert in await outbox.due():
                    if not await still_seated(seat):
                        break
                    await self._deliver(outbox, alert)
                await self._repeat()
            except _Stop:
                pass
            except StorageError as exc:
                # the database cannot be written: what was sent is remembered (above), the
                # rest waits for the next pass
                event(
                    log,
                    "alert.delivery_not_recorded",
                    logging.WARNING,
                    error=f"{type(exc).__name__}: {exc}",
                )
            return self.sent - before

    async def _record(
        self, alert_id: int, chat_id: int, round_: int, message_id: int | None
    ) -> None:
        try:
            await self.acks.record_sent(alert_id, chat_id, round_, message_id)
        except StorageError:
            self._unrecorded[(alert_id, chat_id, round_)] = message_id
            raise
        self._unrecorded.pop((alert_id, chat_id, round_), None)

    async def _flush(self) -> None:
        """Record what was sent while the database could not; until then nothing else goes out
        (a delivery the database does not know of would be sent again)."""
        for (alert_id, chat_id, round_), message_id in list(self._unrecorded.items()):
            await self._record(alert_id, chat_id, round_, message_id)

    # --- sending ------------------------------------------------------------------------------

    async def _send(
        self, chat_id: int, html: str, silent: bool, ack_id: int | None, photo: bytes | None
    ) -> Message:
        markup = (
            InlineKeyboardMarkup(
                [[InlineKeyboardButton("✅ Acknowledge", callback_data=f"ack:{ack_id}")]]
            )
            if ack_id is not None
            else None
        )
        if photo is not None and fits_caption(html):
            try:
                return await self.bot.send_photo(
                    chat_id,
                    photo,
                    caption=html,
                    parse_mode=ParseMode.HTML,
                    disable_notification=silent,
                    reply_markup=markup,
                )
            except RetryAfter:
                raise  # the text would be refused the same way: back off
            except (TelegramError, OSError) as exc:
                self._photo_failed(chat_id, exc)  # the text goes alone, below
            photo = None
        msg = await self._send_text(chat_id, html, silent, markup)
        if photo is not None:
            # the text was too long for a caption: it went first, whole, and counts as the
            # delivery; the picture follows with it trimmed, and its failure is logged only
            try:
                await self.bot.send_photo(
                    chat_id,
                    photo,
                    caption=trim(html, CAPTION_LIMIT),
                    parse_mode=ParseMode.HTML,
                    disable_notification=True,
                )
            except (TelegramError, OSError) as exc:
                self._photo_failed(chat_id, exc)
        return msg

    def _photo_failed(self, chat_id: int, exc: BaseException) -> None:
        event(
            log,
            "alert.photo_failed",
            logging.WARNING,
            chat_id=chat_id,
            error=self._clean(f"{type(exc).__name__}: {exc}"),
        )

    async def _send_text(
        self, chat_id: int, html: str, silent: bool, markup: InlineKeyboardMarkup | None
    ) -> Message:
        try:
            return await self.bot.send_message(
                chat_id,
                html,
                parse_mode=ParseMode.HTML,
                disable_notification=silent,
                reply_markup=markup,
            )
        except BadRequest as exc:
            if "parse" not in str(exc).lower():
                raise
            # the HTML did not parse (it should always): the text matters more than its looks
            return await self.bot.send_message(
                chat_id, html, disable_notification=silent, reply_markup=markup
            )

    async def _picture(self, alert: PendingAlert) -> bytes | None:
        if alert.chart is None or self.chart is None:
            return None
        try:
            return await self.chart(alert.chart.scope, alert.chart.symbol)
        except Exception as exc:  # the alert goes out as text whatever happened to its chart
            event(log, "alert.chart_failed", logging.WARNING, alert_id=alert.id, error=repr(exc))
            return None

    async def _failed(
        self, outbox: Outbox | None, alert_id: int, attempts: int, exc: BaseException
    ) -> None:
        self.failures += 1
        self._streak += 1
        if isinstance(exc, RetryAfter):
            wait = retry_after_seconds(exc)
        else:
            wait = min(
                self.settings.retry_max_seconds, self.settings.retry_base_seconds * 2**attempts
            )
        error = self._clean(f"{type(exc).__name__}: {exc}")
        self._quiet_until = self.monotonic() + wait
        if outbox is not None:
            # the backoff holds in memory even when the database cannot take it
            with contextlib.suppress(StorageError):
                await outbox.failed(alert_id, error, wait)
        event(
            log,
            "alert.send_failed",
            logging.WARNING,
            alert_id=alert_id,
            retry_in=round(wait, 2),
            error=error,
        )
        raise _Stop

    async def _to_chats(
        self,
        outbox: Outbox | None,
        alert_id: int,
        attempts: int,
        round_: int,
        chats: Sequence[int],
        html: str,
        severity: str,
        photo: bytes | None = None,
    ) -> tuple[bool, list[int]]:
        """Send one round to these chats, recording each. Returns whether any chat got it and
        the chats that refused for good (bot blocked, chat gone), which are logged."""
        reached = False
        refused: list[int] = []
        ack_id = alert_id if severity == "critical" else None
        for chat in chats:
            try:
                msg = await self._send(chat, html, severity == "info", ack_id, photo)
            except (Forbidden, BadRequest) as exc:
                refused.append(chat)
                event(
                    log,
                    "alert.chat_refused",
                    logging.ERROR,
                    alert_id=alert_id,
                    chat_id=chat,
                    error=self._clean(str(exc)),
                )
                continue
            except (TelegramError, OSError) as exc:
                await self._failed(outbox, alert_id, attempts, exc)
            self.sent += 1
            await self._record(alert_id, chat, round_, msg.message_id)
            self._streak = 0
            reached = True
        return reached, refused

    async def _deliver(self, outbox: Outbox, alert: PendingAlert) -> None:
        done = await self.acks.sent_to(alert.id, 0)
        todo = [c for c in self.recipients if c not in done]
        html = alert_html(alert.severity, alert.text, alert.created_at)
        photo = await self._picture(alert) if todo else None
        reached, refused = await self._to_chats(
            outbox, alert.id, alert.attempts, 0, todo, html, alert.severity, photo
        )
        if refused and not reached and not done:
            # nobody has it: keep it (and everything after it) for when a chat accepts again
            await self._failed(
                outbox, alert.id, alert.attempts, RuntimeError("no recipient accepted the alert")
            )
        await outbox.delivered(alert.id)
        event(log, "alert.delivered", logging.DEBUG, alert_id=alert.id, severity=alert.severity)

    async def _repeat(self) -> None:
        for due in await self.acks.repeats_due(self.settings.realert_seconds, self.recipients):
            html = alert_html(due.severity, due.text, due.created_at, repeat=due.round)
            _, refused = await self._to_chats(
                None, due.alert_id, self._streak, due.round, due.missing, html, due.severity
            )
            for chat in refused:  # refused for good: this round is over for that chat
                await self._record(due.alert_id, chat, due.round, None)
