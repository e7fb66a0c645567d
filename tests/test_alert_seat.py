"""Delivery asks 'still the active agent?' before each alert, not once per pass: an agent frozen
in the middle of a pass and replaced meanwhile must not send the rest of it after the new
active agent did (issue 16: every alert once, across failovers)."""

from __future__ import annotations

import io

from bot.notify import TerminalNotifier
from storage.db import Database
from storage.errors import StorageBusy
from storage.journal_store import JournalStore
from storage.outbox import Outbox
from trading.journal import Severity


async def queue(db: Database, n: int) -> Outbox:
    journal = JournalStore(db)
    for i in range(n):
        await journal.alert(Severity.INFO, f"alert {i}", f"k{i}")
    return Outbox(db)


async def test_a_seat_lost_mid_pass_stops_the_pass_and_leaves_the_rest_undelivered(
    db: Database,
) -> None:
    outbox = await queue(db, 3)
    answers = iter([True, False])
    stream = io.StringIO()

    async def seat() -> bool:
        return next(answers, False)

    sent = await TerminalNotifier(stream).deliver_pending(outbox, seat)

    assert sent == 1 and "alert 0" in stream.getvalue() and "alert 1" not in stream.getvalue()
    assert [a.text for a in await outbox.due()] == ["alert 1", "alert 2"]


async def test_a_seat_that_cannot_be_checked_sends_nothing(db: Database) -> None:
    outbox = await queue(db, 2)
    stream = io.StringIO()

    async def seat() -> bool:
        raise StorageBusy("database is locked")

    assert await TerminalNotifier(stream).deliver_pending(outbox, seat) == 0
    assert stream.getvalue() == "" and len(await outbox.due()) == 2


async def test_without_an_agent_lease_every_due_alert_goes(db: Database) -> None:
    outbox = await queue(db, 2)
    stream = io.StringIO()
    assert await TerminalNotifier(stream).deliver_pending(outbox) == 2
    assert await outbox.due() == []
