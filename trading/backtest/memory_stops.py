"""Stop placements of the in-memory journal (``MemoryJournal`` extends this), the same records
and rules as ``storage.journal_store``: client id ``wd`` + instance + ``s`` + row id, the
COALESCE updates, the live read-back stamps. The stops last seen live are indexed, since the
guardian asks for them on every cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from trading.journal import StopRecord, StopStatus, check_stop_move
from trading.lease import LeaseGuard
from trading.models import PositionSide, StopState


@dataclass
class _StopRow:
    record: StopRecord
    api_answer: str | None = None
    checked_at: float | None = None


class MemoryStopRecords:
    def __init__(self, clock: Callable[[], float], redact: Callable[[str], str], instance: str):
        self.clock = clock
        self.redact = redact
        self.instance = instance
        self._stops: dict[int, _StopRow] = {}
        self._by_symbol: dict[tuple[str, str], list[int]] = {}  # stop ids, ascending
        self._stops_by_exchange_id: dict[tuple[str, str, str], list[int]] = {}
        self._verified: dict[int, None] = {}  # ids of stops whose status is VERIFIED

    async def create_stop(
        self, lease: LeaseGuard, symbol: str, side: PositionSide, size: float, trigger: float
    ) -> StopRecord:
        stop_id = len(self._stops) + 1
        record = StopRecord(
            id=stop_id,
            scope=lease.scope,
            symbol=symbol,
            position_side=side,
            client_id=f"wd{self.instance}s{stop_id}",
            exchange_id=None,
            size=size,
            trigger_price=trigger,
            status=StopStatus.PLACING,
            exchange_state=None,
            fail_code=None,
            placed_at=self.clock(),
            verified_at=None,
        )
        self._stops[stop_id] = _StopRow(record)
        self._by_symbol.setdefault((lease.scope, symbol), []).append(stop_id)
        return record

    def _set(self, row: _StopRow, record: StopRecord) -> None:
        row.record = record
        if record.status is StopStatus.VERIFIED:
            self._verified[record.id] = None
        else:
            self._verified.pop(record.id, None)

    def _set_exchange_id(self, row: _StopRow, exchange_id: str) -> None:
        rec = row.record
        if rec.exchange_id == exchange_id:
            return
        if rec.exchange_id is not None:
            self._stops_by_exchange_id[(rec.scope, rec.symbol, rec.exchange_id)].remove(rec.id)
        key = (rec.scope, rec.symbol, exchange_id)
        self._stops_by_exchange_id.setdefault(key, []).append(rec.id)
        row.record = replace(rec, exchange_id=exchange_id)

    async def update_stop(
        self,
        stop_id: int,
        status: StopStatus,
        *,
        exchange_id: str | None = None,
        api_answer: str | None = None,
        exchange_state: StopState | None = None,
        fail_code: str | None = None,
        verified: bool = False,
    ) -> None:
        row = self._stops.get(stop_id)
        if row is None:
            return
        check_stop_move(stop_id, row.record.status, status)
        now = self.clock()
        if exchange_id is not None:
            self._set_exchange_id(row, exchange_id)
        rec = row.record
        new = replace(
            rec,
            status=status,
            exchange_state=exchange_state if exchange_state is not None else rec.exchange_state,
            fail_code=fail_code if fail_code is not None else rec.fail_code,
            verified_at=now if verified else rec.verified_at,
        )
        self._set(row, new)
        row.api_answer = self.redact(api_answer) if api_answer else row.api_answer
        if exchange_state is not None:
            row.checked_at = now

    def _check_move(self, scope: str, symbol: str, exchange_id: str, new: StopStatus) -> None:
        """Every record of this exchange id may make the move, or ``IllegalTransition``."""
        for stop_id in sorted(self._stops_by_exchange_id.get((scope, symbol, exchange_id), ())):
            check_stop_move(stop_id, self._stops[stop_id].record.status, new)

    async def mark_stop_seen_live(self, scope: str, symbol: str, exchange_id: str) -> None:
        self._check_move(scope, symbol, exchange_id, StopStatus.VERIFIED)
        now = self.clock()
        for stop_id in self._stops_by_exchange_id.get((scope, symbol, exchange_id), ()):
            row = self._stops[stop_id]
            self._set(
                row,
                replace(
                    row.record,
                    status=StopStatus.VERIFIED,
                    exchange_state=StopState.LIVE,
                    verified_at=now,
                ),
            )
            row.checked_at = now

    async def mark_stop_canceled(self, scope: str, symbol: str, exchange_id: str) -> None:
        """Warden canceled this stop itself: not 'canceled outside Warden' later."""
        self._check_move(scope, symbol, exchange_id, StopStatus.CANCELED)
        now = self.clock()
        for stop_id in self._stops_by_exchange_id.get((scope, symbol, exchange_id), ()):
            row = self._stops[stop_id]
            self._set(
                row,
                replace(row.record, status=StopStatus.CANCELED, exchange_state=StopState.CANCELED),
            )
            row.checked_at = now

    async def verified_stops(self, scope: str) -> list[StopRecord]:
        """Stops last known live: the ones whose fate (fired? canceled?) is still to be read."""
        records = (self._stops[i].record for i in sorted(self._verified))
        return [r for r in records if r.scope == scope]

    async def stops_for(self, scope: str, symbol: str, limit: int = 20) -> list[StopRecord]:
        ids = self._by_symbol.get((scope, symbol), [])
        return [self._stops[i].record for i in reversed(ids[-limit:])] if limit > 0 else []

    async def stop_checked_at(self, scope: str, symbol: str) -> float | None:
        seen = [
            self._stops[i].record.verified_at
            for i in self._by_symbol.get((scope, symbol), [])
            if self._stops[i].record.verified_at is not None
        ]
        return max((t for t in seen if t is not None), default=None)
