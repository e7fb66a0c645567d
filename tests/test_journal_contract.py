"""The journal contract, on every journal: the SQL one (SQLite, PostgreSQL) and the backtest's
in-memory one. One event's parts (exit, incident and its alert, an extra alert) are written
together or not at all; intents and stops move only along INTENT_MOVES / STOP_MOVES, every
other move raises IllegalTransition and writes nothing; records read back typed."""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from storage.db import Database
from storage.errors import StorageError
from storage.held_lease import LeaseManager
from storage.journal_store import JournalStore
from storage.lease import LeaseStore
from storage.outbox import Outbox
from tests.conftest import BACKENDS, backend_target
from trading.backtest import InProcessLease, MemoryJournal
from trading.journal import (
    INTENT_MOVES,
    STOP_MOVES,
    Attribution,
    Exit,
    ExitReason,
    IllegalTransition,
    IntentKind,
    IntentStatus,
    NewAlert,
    NewExit,
    NewIncident,
    Purpose,
    PurposeKind,
    Refusal,
    Severity,
    StopStatus,
    parse_exit_reason,
)
from trading.lease import LeaseGuard
from trading.models import OrderSide, PositionSide, StopState

SCOPE = "paper:main"
BTC = "BTC/USDT:USDT"
S = TypeVar("S", IntentStatus, StopStatus)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def refuse_marked(text: str) -> str:
    """A redaction that fails on a marked text: a part that cannot be written."""
    if "UNWRITABLE" in text:
        raise RuntimeError("this part cannot be written")
    return text


@dataclass
class Rig:
    journal: Any  # JournalStore | MemoryJournal: the same protocol
    lease: LeaseGuard
    db: Database | None

    async def alerts(self) -> list[tuple[str, str, str]]:
        """(severity, key, text) of every queued alert, oldest first."""
        if self.db is None:
            return [(a.severity.value, a.key, a.text) for a in self.journal.alerts]
        return [(a.severity, a.key, a.text) for a in await Outbox(self.db).due(limit=1000)]


@pytest.fixture(params=["memory", *BACKENDS])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    if request.param == "memory":
        journal = MemoryJournal(clock=Clock(), redact=refuse_marked)
        yield Rig(journal, InProcessLease(SCOPE), None)
        return
    db = await Database.open(backend_target(request, tmp_path))
    try:
        manager = LeaseManager(LeaseStore(db), ttl=30, heartbeat=5)
        async with manager.hold(SCOPE, "contract test") as lease:
            yield Rig(JournalStore(db, clock=Clock(), redact=refuse_marked), lease, db)
    finally:
        await db.close()


def stop_loss_exit(fee: float = 0.3) -> NewExit:
    return NewExit(BTC, PositionSide.LONG, 0.01, 61_000.0, 60_000.0, ExitReason.STOP_LOSS, fee)


def emergency_exit() -> NewExit:
    return NewExit(
        BTC, PositionSide.SHORT, 0.5, 2_000.0, 2_100.0, ExitReason.EMERGENCY, 0.4, "no stop"
    )


def emergency_incident(detail: str = "closed at 2100 (stop level 2050)") -> NewIncident:
    return NewIncident(BTC, "emergency_close", Attribution.EXECUTION, detail, cost=25.0)


# --- one transaction per event -----------------------------------------------------------


async def test_an_event_writes_its_exit_incident_and_alerts_together(rig: Rig) -> None:
    extra = NewAlert(Severity.INFO, "closed short 0.5 at 2100", "close:BTC")
    incident_id = await rig.journal.record_event(
        SCOPE, exit=emergency_exit(), incident=emergency_incident(), alert=extra
    )
    [exit_] = await rig.journal.exits(SCOPE)
    assert isinstance(exit_, Exit)
    assert (exit_.symbol, exit_.side, exit_.size) == (BTC, PositionSide.SHORT, 0.5)
    assert (exit_.entry_price, exit_.exit_price, exit_.fee) == (2_000.0, 2_100.0, 0.4)
    assert exit_.reason == "emergency(no stop)" and exit_.is_emergency
    assert exit_.pnl == pytest.approx(-50.0 - 0.4) == pytest.approx(emergency_exit().pnl)
    [incident] = await rig.journal.incidents(SCOPE)
    assert incident.id == incident_id
    assert (incident.kind, incident.cost, incident.resolved_at) == ("emergency_close", 25.0, None)
    assert await rig.alerts() == [
        (
            "critical",
            f"incident:{SCOPE}:{BTC}:emergency_close",
            f"emergency_close {SCOPE} {BTC}: closed at 2100 (stop level 2050) "
            "[attribution execution, cost 25.00]",
        ),
        ("info", "close:BTC", "closed short 0.5 at 2100"),
    ]
    # the exit closed the entry's position: it no longer owns it
    assert await rig.journal.position_owner(SCOPE, BTC) is None


async def test_each_part_alone(rig: Rig) -> None:
    assert await rig.journal.record_event(SCOPE, exit=stop_loss_exit()) is None
    assert await rig.journal.record_event(SCOPE, alert=NewAlert(Severity.WARNING, "hi")) is None
    incident_id = await rig.journal.record_event(
        SCOPE, incident=NewIncident(BTC, "unprotected", Attribution.EXTERNAL, "no stop")
    )
    assert isinstance(incident_id, int)
    assert [e.reason for e in await rig.journal.exits(SCOPE)] == ["stop_loss"]
    assert [a[0] for a in await rig.alerts()] == ["warning", "critical"]
    assert await rig.journal.record_event(SCOPE) is None  # nothing given, nothing written
    assert len(await rig.alerts()) == 2


@pytest.mark.parametrize(
    "failing", ["incident", "extra alert"], ids=["incident fails", "extra alert fails"]
)
async def test_a_part_that_cannot_be_written_leaves_none_of_the_event(
    rig: Rig, failing: str
) -> None:
    """The emergency close's exit is never on record without its incident and alert (I6)."""
    incident = emergency_incident("UNWRITABLE" if failing == "incident" else "cost 25")
    extra = NewAlert(Severity.INFO, "UNWRITABLE" if failing == "extra alert" else "closed")
    with pytest.raises(RuntimeError, match="cannot be written"):
        await rig.journal.record_event(SCOPE, exit=emergency_exit(), incident=incident, alert=extra)
    assert await rig.journal.exits(SCOPE) == []
    assert await rig.journal.incidents(SCOPE) == []
    assert await rig.alerts() == []
    # and the journal still works: the same event written whole
    await rig.journal.record_event(SCOPE, exit=emergency_exit(), incident=emergency_incident())
    assert len(await rig.journal.exits(SCOPE)) == 1
    assert len(await rig.alerts()) == 1


async def test_a_storage_failure_mid_event_rolls_the_exit_back_and_logs_the_alerts(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """The database refuses the alert row after the exit and incident rows were inserted in
    the same transaction: all of it is rolled back, and both alerts reach the log."""
    async with db.write() as conn:
        await conn.execute(
            "CREATE TRIGGER refuse_alert BEFORE INSERT ON alert_outbox "
            "WHEN NEW.text LIKE '%closed%' BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
    journal = JournalStore(db, clock=Clock())
    extra = NewAlert(Severity.INFO, "closed short 0.5 at 2100", "close:BTC")
    with caplog.at_level(logging.CRITICAL, "warden.alerts"), pytest.raises(StorageError):
        await journal.record_event(
            SCOPE, exit=emergency_exit(), incident=emergency_incident(), alert=extra
        )
    assert await journal.exits(SCOPE) == []
    assert await journal.incidents(SCOPE) == []
    assert await Outbox(db).due() == []
    logged = [r.fields for r in caplog.records if r.getMessage() == "alert.not_stored"]  # type: ignore[attr-defined]
    assert [(f["severity"], f["key"]) for f in logged] == [
        ("critical", f"incident:{SCOPE}:{BTC}:emergency_close"),
        ("info", "close:BTC"),
    ]
    assert "closed short 0.5 at 2100" in logged[1]["text"]
    assert "disk says no" in logged[0]["error"]


async def test_the_old_writers_are_the_same_event(rig: Rig) -> None:
    await rig.journal.record_exit(
        SCOPE, BTC, PositionSide.SHORT, 0.5, 2_000.0, 2_100.0, "emergency(no stop)", 0.4
    )
    incident_id = await rig.journal.open_incident(
        SCOPE,
        BTC,
        "emergency_close",
        Attribution.EXECUTION,
        "closed at 2100 (stop level 2050)",
        cost=25.0,
    )
    assert await rig.journal.alert(Severity.INFO, "closed short 0.5 at 2100", "close:BTC")
    assert not await rig.journal.alert(Severity.INFO, "again", "close:BTC", repeat_after=60)
    assert await rig.journal.alert(Severity.INFO, "no key", repeat_after=60)
    [exit_] = await rig.journal.exits(SCOPE)
    [incident] = await rig.journal.incidents(SCOPE)
    assert exit_.pnl == pytest.approx(emergency_exit().pnl)
    assert exit_.reason == "emergency(no stop)" and incident.id == incident_id
    assert [a[2] for a in await rig.alerts()] == [
        f"emergency_close {SCOPE} {BTC}: closed at 2100 (stop level 2050) "
        "[attribution execution, cost 25.00]",
        "closed short 0.5 at 2100",
        "no key",
    ]


@pytest.mark.parametrize("reason", ["tp", "", "emergency", "Stop_Loss", "emergency(x"])
async def test_an_exit_reason_outside_the_vocabulary_is_refused(rig: Rig, reason: str) -> None:
    with pytest.raises(ValueError, match="none of stop_loss, signal, manual, external"):
        await rig.journal.record_exit(SCOPE, BTC, PositionSide.LONG, 1.0, 1.0, 2.0, reason, 0.0)
    assert await rig.journal.exits(SCOPE) == []


async def test_refusals_read_back_typed_newest_first(rig: Rig) -> None:
    await rig.journal.record_refusal(SCOPE, BTC, "open", "trading is paused", "cycle a")
    await rig.journal.record_refusal(SCOPE, BTC, "close", "no position", Purpose.cycle("b"))
    got = await rig.journal.refusals()
    assert all(isinstance(r, Refusal) for r in got)
    assert [(r.action, r.reason, r.purpose) for r in got] == [
        ("close", "no position", "cycle b"),
        ("open", "trading is paused", "cycle a"),
    ]
    assert got[0].at > got[1].at
    assert await rig.journal.refusals(limit=1) == got[:1]


# --- lifecycles ------------------------------------------------------------------------------


def paths(moves: Mapping[S, frozenset[S]], start: S) -> dict[S, list[S]]:
    """The shortest legal path from ``start`` to every status reachable from it."""
    found: dict[S, list[S]] = {start: []}
    todo = deque([start])
    while todo:
        here = todo.popleft()
        for nxt in sorted(moves[here]):
            if nxt not in found:
                found[nxt] = [*found[here], nxt]
                todo.append(nxt)
    return found


def test_every_status_is_reachable_and_has_a_row() -> None:
    assert set(INTENT_MOVES) == set(IntentStatus)
    assert set(STOP_MOVES) == set(StopStatus)
    assert set(paths(INTENT_MOVES, IntentStatus.PENDING)) == set(IntentStatus)
    assert set(paths(STOP_MOVES, StopStatus.PLACING)) == set(StopStatus)


async def _intent_at(rig: Rig, path: list[IntentStatus]) -> int:
    intent = await rig.journal.create_intent(
        rig.lease, IntentKind.ENTRY, BTC, OrderSide.BUY, 0.01, 60_000.0, "cycle a"
    )
    for status in path:
        await rig.journal.finish_intent(intent.id, status, order_id=f"o{intent.id}")
    return int(intent.id)


async def _intent_status(rig: Rig, intent_id: int) -> IntentStatus:
    [found] = [i for i in await rig.journal.intents(SCOPE, limit=1000) if i.id == intent_id]
    return IntentStatus(found.status)


async def test_every_intent_move_is_allowed_or_refused_as_the_table_says(rig: Rig) -> None:
    reach = paths(INTENT_MOVES, IntentStatus.PENDING)
    checked = 0
    for old, new in itertools.product(IntentStatus, IntentStatus):
        intent_id = await _intent_at(rig, reach[old])
        if new in INTENT_MOVES[old]:
            await rig.journal.finish_intent(intent_id, new, filled=0.01, price=1.0)
            assert await _intent_status(rig, intent_id) is new
        else:
            with pytest.raises(IllegalTransition) as caught:
                await rig.journal.finish_intent(intent_id, new, filled=0.5, error="x")
            err = caught.value
            assert (err.record, err.old, err.new) == (f"intent {intent_id}", old, new)
            assert f"intent {intent_id}: illegal move {old.value} -> {new.value}" in str(err)
            [after] = [i for i in await rig.journal.intents(SCOPE, limit=1000) if i.id == intent_id]
            assert (after.status, after.filled) == (old, None)  # nothing written
        checked += 1
    assert checked == len(IntentStatus) ** 2


async def _stop_at(rig: Rig, path: list[StopStatus], exchange_id: str | None) -> int:
    record = await rig.journal.create_stop(rig.lease, BTC, PositionSide.LONG, 0.01, 59_000.0)
    for i, status in enumerate(path):
        await rig.journal.update_stop(
            record.id, status, exchange_id=exchange_id if i == 0 else None
        )
    return int(record.id)


async def _stop(rig: Rig, stop_id: int) -> Any:
    [found] = [s for s in await rig.journal.stops_for(SCOPE, BTC, limit=10_000) if s.id == stop_id]
    return found


async def test_every_stop_move_is_allowed_or_refused_as_the_table_says(rig: Rig) -> None:
    reach = paths(STOP_MOVES, StopStatus.PLACING)
    for old, new in itertools.product(StopStatus, StopStatus):
        stop_id = await _stop_at(rig, reach[old], None)
        if new in STOP_MOVES[old]:
            await rig.journal.update_stop(stop_id, new, exchange_state=StopState.LIVE)
            assert (await _stop(rig, stop_id)).status is new
        else:
            before = await _stop(rig, stop_id)
            with pytest.raises(IllegalTransition) as caught:
                await rig.journal.update_stop(
                    stop_id, new, exchange_id="x9", fail_code="1", verified=True
                )
            err = caught.value
            assert (err.record, err.old, err.new) == (f"stop {stop_id}", old, new)
            assert await _stop(rig, stop_id) == before  # nothing written


@pytest.mark.parametrize(
    ("mark", "new"),
    [("mark_stop_seen_live", StopStatus.VERIFIED), ("mark_stop_canceled", StopStatus.CANCELED)],
)
async def test_marking_by_exchange_id_follows_the_table_too(
    rig: Rig, mark: str, new: StopStatus
) -> None:
    reach = paths(STOP_MOVES, StopStatus.PLACING)
    for n, old in enumerate(s for s in StopStatus if s is not StopStatus.PLACING):
        exchange_id = f"x{n}"
        stop_id = await _stop_at(rig, reach[old], exchange_id)
        call: Callable[..., Any] = getattr(rig.journal, mark)
        if new in STOP_MOVES[old]:
            await call(SCOPE, BTC, exchange_id)
            assert (await _stop(rig, stop_id)).status is new
        else:
            before = await _stop(rig, stop_id)
            with pytest.raises(IllegalTransition, match=f"stop {stop_id}: illegal move"):
                await call(SCOPE, BTC, exchange_id)
            assert await _stop(rig, stop_id) == before


async def test_one_illegal_record_keeps_every_record_of_the_id_unchanged(rig: Rig) -> None:
    """Two records of one exchange id (a placement retried after a lost answer): one of them
    may not be marked canceled, so neither is."""
    legal = await _stop_at(rig, [StopStatus.ACKED], "x1")
    illegal = await _stop_at(rig, [StopStatus.ACKED, StopStatus.TRIGGERED], "x1")
    with pytest.raises(IllegalTransition, match=f"stop {illegal}: illegal move triggered"):
        await rig.journal.mark_stop_canceled(SCOPE, BTC, "x1")
    assert (await _stop(rig, legal)).status is StopStatus.ACKED


# --- typed values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "strategy", "owner", "why"),
    [
        ("cycle trend", PurposeKind.CYCLE, "trend", "trend", ""),
        ("cycle ", PurposeKind.MANUAL, None, "manual", ""),
        (
            "emergency close: stop refused 3x",
            PurposeKind.EMERGENCY,
            None,
            "manual",
            "stop refused 3x",
        ),
        ("drill stop-removed", PurposeKind.DRILL, None, "manual", ""),
        ("cli open", PurposeKind.MANUAL, None, "manual", ""),
        ("telegram close BTC/USDT:USDT", PurposeKind.MANUAL, None, "manual", ""),
        ("", PurposeKind.MANUAL, None, "manual", ""),
    ],
)
def test_purpose_parses_the_stored_text(
    text: str, kind: PurposeKind, strategy: str | None, owner: str, why: str
) -> None:
    p = Purpose.parse(text)
    assert (p.kind, p.strategy, p.owner, p.why, p.text, str(p)) == (
        kind,
        strategy,
        owner,
        why,
        text,
        text,
    )


def test_purposes_built_typed_store_the_same_text() -> None:
    assert Purpose.parse(Purpose.cycle("trend").text) == Purpose.cycle("trend")
    assert Purpose.parse(Purpose.emergency("no stop").text) == Purpose.emergency("no stop")
    assert ExitReason.of_close(Purpose.cycle("a")) is ExitReason.SIGNAL
    assert ExitReason.of_close(Purpose.parse("cli close")) is ExitReason.MANUAL
    assert ExitReason.of_close(Purpose.emergency("x")) is ExitReason.EMERGENCY


@pytest.mark.parametrize("reason", list(ExitReason))
def test_exit_reason_text_reads_back(reason: ExitReason) -> None:
    e = NewExit(BTC, PositionSide.LONG, 1.0, 100.0, 90.0, reason, 0.5, "why")
    assert parse_exit_reason(e.reason_text) == (reason, "why" if e.reason_text != reason else "")
    assert e.pnl == pytest.approx(-10.5)
    assert NewExit(BTC, PositionSide.SHORT, 2.0, 100.0, 90.0, reason, 0.5).pnl == 19.5
