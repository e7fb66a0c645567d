"""Alert delivery records for chat notifiers: which alert reached which chat in which round,
and which critical alerts were acknowledged. With the outbox itself this is all the state alert
delivery needs, so nothing is lost or sent twice across a restart (I6)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from storage.db import Database
from storage.sql import Connection


@dataclass(frozen=True)
class RepeatDue:
    alert_id: int
    created_at: float
    severity: str
    key: str
    text: str
    round: int  # the round to send now
    missing: tuple[int, ...]  # chats that still lack this round


# alert key prefix -> the prefix of the later alert that says the condition is over
# (incident alerts end when their incident is resolved, see _superseded)
ENDED_BY = {"reconcile:": "reconciled:"}


def _ending_keys(key: str) -> list[str]:
    keys = [key]  # raised again: the newer alert carries the condition on
    for prefix, ending in ENDED_BY.items():
        if key.startswith(prefix):
            keys.append(ending + key[len(prefix) :])
    return keys


async def _superseded(conn: Connection, alert_id: int, key: str) -> bool:
    """The alert's condition was raised again or declared over by a later alert, or, for an
    incident's alert, the incident is resolved (a "resolved" message went out)."""
    keys = _ending_keys(key)
    marks = ", ".join("?" for _ in keys)
    cur = await conn.execute(
        f"SELECT 1 FROM alert_outbox WHERE id > ? AND key IN ({marks}) LIMIT 1", (alert_id, *keys)
    )
    if await cur.fetchone() is not None:
        return True
    if not key.startswith("incident:"):
        return False
    cur = await conn.execute(
        "SELECT 1 FROM incident WHERE resolved_at IS NULL "
        "AND 'incident:' || scope || ':' || symbol || ':' || kind = ? LIMIT 1",
        (key,),
    )
    return await cur.fetchone() is None


class AlertAckStore:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def sent_to(self, alert_id: int, round_: int) -> set[int]:
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT chat_id FROM alert_delivery WHERE alert_id = ? AND round = ?",
                (alert_id, round_),
            )
            return {int(r[0]) for r in await cur.fetchall()}

    async def record_sent(
        self, alert_id: int, chat_id: int, round_: int, message_id: int | None
    ) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                "INSERT INTO alert_delivery(alert_id, chat_id, round, message_id, sent_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(alert_id, chat_id, round) DO UPDATE SET "
                "message_id = excluded.message_id, sent_at = excluded.sent_at",
                (alert_id, chat_id, round_, message_id, self.clock()),
            )

    async def acknowledge(self, alert_id: int, user_id: int) -> bool:
        """True when this call acknowledged it; False when it already was (or is unknown)."""
        async with self.db.write() as conn:
            cur = await conn.execute("SELECT 1 FROM alert_outbox WHERE id = ?", (alert_id,))
            if await cur.fetchone() is None:
                return False
            cur = await conn.execute(
                "INSERT INTO alert_ack(alert_id, acked_at, acked_by) VALUES (?, ?, ?) "
                "ON CONFLICT(alert_id) DO NOTHING",
                (alert_id, self.clock(), user_id),
            )
            return cur.rowcount == 1

    async def repeats_due(self, every: float, chats: Sequence[int]) -> list[RepeatDue]:
        """Critical alerts delivered to chats that nobody acknowledged, whose condition was not
        resolved or raised again since, and whose last round is ``every`` seconds old or did
        not reach every chat yet. Oldest first."""
        now = self.clock()
        wanted = set(chats)
        async with self.db.read() as conn:
            cur = await conn.execute(
                "SELECT o.id, o.created_at, o.severity, o.key, o.text FROM alert_outbox AS o "
                "WHERE o.severity = 'critical' AND o.delivered_at IS NOT NULL "
                "AND EXISTS (SELECT 1 FROM alert_delivery AS d WHERE d.alert_id = o.id) "
                "AND NOT EXISTS (SELECT 1 FROM alert_ack AS a WHERE a.alert_id = o.id) "
                "ORDER BY o.id"
            )
            candidates = list(await cur.fetchall())
            due: list[RepeatDue] = []
            ended: list[int] = []
            for row in candidates:
                alert_id, key = int(row["id"]), str(row["key"])
                if key and await _superseded(conn, alert_id, key):
                    ended.append(alert_id)
                    continue
                cur = await conn.execute(
                    "SELECT round, chat_id, sent_at FROM alert_delivery WHERE alert_id = ?",
                    (alert_id,),
                )
                rows = list(await cur.fetchall())
                last = max(int(r["round"]) for r in rows)
                reached = {int(r["chat_id"]) for r in rows if int(r["round"]) == last}
                missing = wanted - reached
                if last > 0 and missing:
                    round_ = last  # a repeat that did not reach everybody yet
                else:
                    latest = max(float(r["sent_at"]) for r in rows if int(r["round"]) == last)
                    if now - latest < every:
                        continue
                    round_, missing = last + 1, wanted
                due.append(
                    RepeatDue(
                        alert_id,
                        float(row["created_at"]),
                        str(row["severity"]),
                        key,
                        str(row["text"]),
                        round_,
                        tuple(sorted(missing)),
                    )
                )
        if ended:  # never looked at again: an "acknowledgement" by nobody (user id 0)
            async with self.db.write() as conn:
                await conn.executemany(
                    "INSERT INTO alert_ack(alert_id, acked_at, acked_by) VALUES (?, ?, 0) "
                    "ON CONFLICT(alert_id) DO NOTHING",
                    [(i, now) for i in ended],
                )
        return due
