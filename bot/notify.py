"""Alert delivery. The terminal notifier is the default; Telegram replaces it when configured."""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

from storage.outbox import Outbox


class Notifier(Protocol):
    """Delivers due alerts from the outbox, in order, marking each delivered."""

    async def deliver_pending(self, outbox: Outbox) -> int: ...


ICON = {"critical": "!!", "warning": "! ", "info": "  "}


class TerminalNotifier:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    async def deliver_pending(self, outbox: Outbox) -> int:
        sent = 0
        for alert in await outbox.due():
            ts = time.strftime("%H:%M:%S", time.localtime(alert.created_at))
            icon = ICON.get(alert.severity, "")
            self.stream.write(f"[ALERT {alert.severity.upper()}] {ts} {icon}{alert.text}\n")
            self.stream.flush()
            await outbox.delivered(alert.id)
            sent += 1
        return sent
