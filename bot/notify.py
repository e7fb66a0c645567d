"""Alert delivery. The terminal notifier is the default; Telegram replaces it when configured."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TextIO

from storage.errors import StorageError
from storage.outbox import Outbox
from trading.logfmt import event

log = logging.getLogger("warden.alerts")


# asked before each alert is sent: is this agent still the active one? (None: no agent lease)
SeatCheck = Callable[[], Awaitable[bool]]


class Notifier(Protocol):
    """Delivers due alerts from the outbox, in order, marking each delivered."""

    async def deliver_pending(self, outbox: Outbox, seat: SeatCheck | None = None) -> int: ...


async def still_seated(seat: SeatCheck | None) -> bool:
    """Before each alert, not once per pass: an agent frozen in the middle of a pass and
    replaced meanwhile must not send the rest of it after the new active agent did. A check
    that cannot be made counts as 'no' (the alert waits for the next pass or the other agent)."""
    if seat is None:
        return True
    try:
        return await seat()
    except StorageError as exc:
        event(log, "alert.seat_unknown", logging.WARNING, error=f"{type(exc).__name__}: {exc}")
        return False


ICON = {"critical": "!!", "warning": "! ", "info": "  "}


class TerminalNotifier:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        # printed, but the database could not record it yet (busy, full): never printed twice
        self._printed: set[int] = set()

    async def deliver_pending(self, outbox: Outbox, seat: SeatCheck | None = None) -> int:
        sent = 0
        for alert in await outbox.due():
            if alert.id not in self._printed:
                if not await still_seated(seat):
                    break
                ts = time.strftime("%H:%M:%S", time.localtime(alert.created_at))
                icon = ICON.get(alert.severity, "")
                self.stream.write(f"[ALERT {alert.severity.upper()}] {ts} {icon}{alert.text}\n")
                self.stream.flush()
                self._printed.add(alert.id)
                sent += 1
            try:
                await outbox.delivered(alert.id)
            except StorageError as exc:
                # recorded on a later pass; the rest waits (nothing overtakes it)
                event(
                    log,
                    "alert.delivery_not_recorded",
                    logging.WARNING,
                    alert_id=alert.id,
                    error=f"{type(exc).__name__}: {exc}",
                )
                break
            self._printed.discard(alert.id)
        return sent
