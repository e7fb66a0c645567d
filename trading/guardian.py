"""The stop-loss guardian (I5): a stateless reconciler, run every cycle and by the watchdog.

read (positions, live stops, prices from the exchange; the journal's level, and why a position
is unprotected when it is) -> plan (``trading.guard_plan.plan``, a pure function: each position
has exactly one live reduce-only stop on the right side covering its full size) -> act: place
the missing, replace the mis-sized, cancel extras and orphans, emergency-close when the level is
passed. Every write goes through the lease's gate (``trading.fenced``). Every repair is an
incident with an attribution and a critical alert, then a "resolved" alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from trading import retry
from trading.accounting import closing_pnl
from trading.errors import ExchangeError
from trading.guard_plan import (
    LEVEL_PASSED,
    Action,
    CancelStop,
    EmergencyClose,
    Facts,
    IgnoreStaleLevel,
    Keep,
    KeepTraderStop,
    NoteTraderStop,
    PlaceStop,
    RaiseUnprotected,
    needs_diagnosis,
    plan,
    plan_orphans,
)
from trading.journal import (
    Attribution,
    ExitReason,
    Intent,
    IntentKind,
    IntentStatus,
    Journal,
    NewAlert,
    NewExit,
    NewIncident,
    Severity,
    StopRecord,
    StopStatus,
)
from trading.lease import LeaseGuard
from trading.logfmt import event
from trading.models import (
    Fill,
    Market,
    OrderSide,
    Position,
    PositionSide,
    StopOrder,
    StopState,
)
from trading.port import ExchangePort
from trading.protection import describe
from trading.settings import StopPolicy
from trading.stops import StopKeeper, StopOutcome, emergency_cost

log = logging.getLogger("warden.guardian")
PRICE_CONCURRENCY = 8


@dataclass
class GuardReport:
    positions: int = 0
    protected: int = 0
    actions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.actions and not self.errors


class Guardian:
    def __init__(
        self,
        exchange: ExchangePort,
        journal: Journal,
        keeper: StopKeeper,
        scope: str,
        policy: StopPolicy,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.exchange = exchange
        self.journal = journal
        self.keeper = keeper
        self.scope = scope
        self.policy = policy
        self.wall_clock = wall_clock
        self._noted: set[tuple[str, str]] = set()

    def _note_trader_stop(self, s: StopOrder, what: str) -> None:
        """Say once per stop and verdict (not every watchdog tick) what Warden makes of a stop
        the trader set in the venue's UI."""
        if (s.id, what) in self._noted:
            return
        self._noted.add((s.id, what))
        event(
            log,
            "guardian.trader_stop",
            symbol=s.symbol,
            stop_id=s.id,
            stop=describe(s),
            verdict=what,
        )

    async def reconcile(self, lease: LeaseGuard, symbols: set[str] | None = None) -> GuardReport:
        report = GuardReport()
        try:
            markets = await retry.read(self.exchange.markets)
            positions = await retry.read(self.exchange.positions)
            stops = await retry.read(self.exchange.open_stops)
        except ExchangeError as exc:
            # fail closed: without the exchange's view nothing is changed, the caller alerts
            report.errors.append(f"cannot read the exchange: {exc}")
            return report
        held = {p.symbol for p in positions}
        targets = [p for p in positions if symbols is None or p.symbol in symbols]
        prices = await self._last_prices({p.symbol for p in targets})
        for p in targets:
            report.positions += 1
            live = [s for s in stops if s.symbol == p.symbol]
            last = prices[p.symbol]
            if isinstance(last, ExchangeError):
                report.errors.append(f"{p.symbol}: cannot read the price: {last}")
                continue
            try:
                if await self._guard(lease, p, live, markets[p.symbol], report, last):
                    report.protected += 1
            except ExchangeError as exc:
                report.errors.append(f"{p.symbol}: {exc}")
        await self._settle_fired(held, symbols, report)
        wanted = [s for s in stops if symbols is None or s.symbol in symbols]
        for action in plan_orphans(wanted, held):
            if isinstance(action, NoteTraderStop):
                self._note_trader_stop(action.stop, action.verdict)
            elif isinstance(action, CancelStop) and await self._cancel(lease, action.stop, report):
                s = action.stop
                report.actions.append(f"{s.symbol}: canceled orphan stop {s.id} (no position)")
                event(log, "guardian.orphan_canceled", symbol=s.symbol, stop_id=s.id)
        return report

    async def _cancel(self, lease: LeaseGuard, s: StopOrder, report: GuardReport) -> bool:
        """Cancel a stop Warden no longer wants (the keeper remembers that Warden did it)."""
        [(_, error)] = await self.keeper.cancel_stops(lease, self.scope, [s])
        if error is not None:
            report.errors.append(f"{s.symbol}: cancel of stop {s.id} failed: {error}")
            return False
        return True

    async def _settle_fired(
        self, held: set[str], symbols: set[str] | None, report: GuardReport
    ) -> None:
        """A verified stop whose position is gone most likely fired: record the stop-loss exit
        (so the next position on the symbol never inherits this trade's level or owner)."""
        for rec in await self.journal.verified_stops(self.scope):
            if rec.symbol in held or (symbols is not None and rec.symbol not in symbols):
                continue
            try:
                seen = await retry.read(partial(self._read_stop, rec))
            except ExchangeError as exc:
                report.errors.append(f"{rec.symbol}: cannot read stop {rec.client_id}: {exc}")
                continue
            if seen is None or seen.state is StopState.LIVE:
                continue
            if seen.state is not StopState.TRIGGERED:
                await self.journal.update_stop(
                    rec.id, StopStatus.CANCELED, exchange_state=seen.state
                )
                continue
            await self.journal.update_stop(rec.id, StopStatus.TRIGGERED, exchange_state=seen.state)
            await self._record_stop_exit(rec.symbol, rec.position_side, seen, report)

    async def _read_stop(self, rec: StopRecord) -> StopOrder | None:
        return await self.exchange.get_stop(
            rec.symbol, stop_id=rec.exchange_id, client_id=rec.client_id
        )

    async def _record_stop_exit(
        self, symbol: str, side: PositionSide, stop: StopOrder, report: GuardReport
    ) -> None:
        entry = await self.journal.last_entry(self.scope, symbol)
        fills: list[Fill] = []
        # fills() is part of every adapter (each kind's descriptor has the fills capability);
        # when the exchange cannot answer, the trigger price stands in for the fill price
        with contextlib.suppress(ExchangeError):
            # only this stop's life: reading the whole fill history grew with every trade
            since = stop.created_at - 1 if stop.created_at else None
            fills = [f for f in await self.exchange.fills(symbol, since) if f.stop_id == stop.id]
        size = sum(f.size for f in fills) or stop.size
        price = sum(f.price * f.size for f in fills) / size if fills else stop.trigger_price
        fee = sum(f.fee for f in fills)
        entry_price = entry.price if entry is not None and entry.price else price
        # read before the write: the exit and its alert are one event, one transaction
        pnl = await closing_pnl(self.exchange, entry, side, size, price, fee, entry_price)
        await self.journal.record_event(
            self.scope,
            exit=NewExit(symbol, side, size, entry_price, price, ExitReason.STOP_LOSS, fee),
            alert=NewAlert(
                Severity.INFO,
                f"stop hit {symbol}: {side.value} {size} closed at {price} "
                f"(stop {stop.trigger_price}); P&L {pnl:+.2f} after fees",
                f"stop-loss:{stop.id}",
            ),
        )
        report.actions.append(f"{symbol}: stop {stop.id} fired, exit recorded at {price}")

    async def settle_interrupted_closes(self) -> list[str]:
        """Start-up: a close (or emergency close) that filled, but whose process died before it
        recorded the exit. Its symbol's newest filled intent is that close, no position is left,
        yet the journal still sees the entry as open. The exit is recorded now with the
        exchange's own order (fill, fee); an emergency close gets its incident, cost and
        critical alert, which would otherwise never reach anybody."""
        done: list[str] = []
        held = {p.symbol for p in await retry.read(self.exchange.positions)}
        newest: dict[str, Intent] = {}
        for intent in await self.journal.intents(self.scope, limit=500):  # newest first
            if intent.status is IntentStatus.FILLED:
                newest.setdefault(intent.symbol, intent)
        for symbol, close in sorted(newest.items()):
            if close.kind is IntentKind.ENTRY or symbol in held:
                continue
            if await self.journal.position_owner(self.scope, symbol) is None:
                continue  # its exit is on record
            entry = await self.journal.last_entry(self.scope, symbol)
            if entry is None or entry.updated_at > close.updated_at:
                # the entry was settled after this close (resolved late): whether the close's
                # exit is on record cannot be told, and a second exit row must never be written
                continue
            order = await retry.read(
                partial(self.exchange.get_order, symbol, client_id=close.client_id)
            )
            price = order.average_price if order is not None else close.price
            size = order.filled if order is not None else close.filled
            if not price or not size:
                continue
            fee = order.fee if order is not None else 0.0
            side = PositionSide.LONG if close.side is OrderSide.SELL else PositionSide.SHORT
            entry_price = entry.price or price
            purpose = close.typed_purpose
            emergency = close.kind is IntentKind.EMERGENCY_CLOSE
            reason = ExitReason.EMERGENCY if emergency else ExitReason.of_close(purpose)
            exit_ = NewExit(symbol, side, size, entry_price, price, reason, fee, why=purpose.why)
            # the exit and its incident (or its alert) are one event: one transaction
            if emergency:
                level = entry.stop_price
                cost = emergency_cost(side, level, price, size) if level else 0.0
                incident = NewIncident(
                    symbol,
                    "emergency_close",
                    Attribution.EXECUTION,
                    f"{side.value} {size} closed at {price} (stop level {level}): "
                    f"{purpose.why}; recorded at start-up: its process stopped before "
                    "recording it",
                    cost=cost,
                    resolved=True,
                )
                await self.journal.record_event(self.scope, exit=exit_, incident=incident)
            else:
                pnl = await closing_pnl(self.exchange, entry, side, size, price, fee, entry_price)
                alert = NewAlert(
                    Severity.INFO,
                    f"closed {side.value} {size} {symbol} at {price} ({exit_.reason_text}, "
                    f"recorded at start-up); P&L {pnl:+.2f} after fees",
                    f"exit:{symbol}",
                )
                await self.journal.record_event(self.scope, exit=exit_, alert=alert)
            done.append(f"{symbol}: {close.kind.value} {close.client_id} exit recorded at {price}")
            event(
                log,
                "guardian.exit_recorded_late",
                logging.WARNING,
                symbol=symbol,
                client_id=close.client_id,
                kind=close.kind,
                price=price,
            )
        return done

    async def _last_prices(self, symbols: set[str]) -> dict[str, float | ExchangeError]:
        """Every position's last price at once: one slow exchange call per position, read one
        after another, made a 50-position check take 50 round trips."""
        sem = asyncio.Semaphore(PRICE_CONCURRENCY)

        async def one(symbol: str) -> float | ExchangeError:
            async with sem:
                try:
                    return await self.keeper.last_price(symbol)
                except ExchangeError as exc:
                    return exc

        ordered = sorted(symbols)
        return dict(zip(ordered, await asyncio.gather(*(one(s) for s in ordered)), strict=True))

    async def _guard(
        self,
        lease: LeaseGuard,
        p: Position,
        live: list[StopOrder],
        market: Market,
        report: GuardReport,
        last: float,
    ) -> bool:
        """Read (the journal's level, and the diagnosis when unprotected), plan, act."""
        desired = await self.journal.desired_stop_price(self.scope, p.symbol)
        facts = Facts(self.policy.default_stop_percent)
        if needs_diagnosis(p, live, market, last):
            ours = [s for s in live if s.placed_by_warden]
            why, attribution = await self._why_unprotected(p, ours, market)
            since = await self._unprotected_since(p.symbol)
            facts = Facts(self.policy.default_stop_percent, why, attribution, since)
        protected = False
        for action in plan(p, live, desired, market, last, facts):
            protected = await self._act(lease, p, action, report, last)
        return protected

    async def _act(
        self, lease: LeaseGuard, p: Position, action: Action, report: GuardReport, last: float
    ) -> bool:
        """Carry out one planned action; True when the position is protected after it."""
        match action:
            case IgnoreStaleLevel(level):
                event(
                    log,
                    "guardian.stale_level_ignored",
                    logging.WARNING,
                    symbol=p.symbol,
                    stop=level,
                    side=p.side,
                    entry=p.entry_price,
                )
            case NoteTraderStop(stop, verdict):
                self._note_trader_stop(stop, verdict)
            case CancelStop(stop, why):
                if await self._cancel(lease, stop, report) and why in ("extra", "unfit"):
                    report.actions.append(f"{p.symbol}: canceled {why} stop {stop.id}")
            case Keep(stop):
                await self._mark_live(p.symbol, stop)
                await self.journal.resolve_incidents(self.scope, p.symbol, "live stop verified")
                return True
            case KeepTraderStop(stop):
                self._note_trader_stop(stop, "protects the position; Warden adds none")
                await self.journal.resolve_incidents(
                    self.scope, p.symbol, "protected by the trader's own stop"
                )
                return True
            case RaiseUnprotected(why, attribution, level, _, since):
                await self.journal.open_incident(
                    self.scope,
                    p.symbol,
                    "unprotected_position",
                    attribution,
                    f"{p.side.value} {p.size}: {why}; repairing (stop {level}, last {last})",
                    unprotected_since=since,
                )
                event(
                    log,
                    "guardian.unprotected",
                    logging.ERROR,
                    symbol=p.symbol,
                    why=why,
                    attribution=attribution,
                    stop=level,
                    last=last,
                )
            case PlaceStop():
                return await self._place(lease, p, action, report, last)
            case EmergencyClose(level, why, attribution, since, reason):
                closed = await self._emergency_close(
                    lease, p, level, f"{why}; {reason}", attribution, since
                )
                report.actions.append(f"{p.symbol}: emergency close ({reason}): {closed}")
        return False

    async def _place(
        self, lease: LeaseGuard, p: Position, action: PlaceStop, report: GuardReport, last: float
    ) -> bool:
        level, why = action.level, action.why
        result = await self.keeper.place_verified(lease, p.symbol, p.side, action.size, level)
        if result.outcome is StopOutcome.VERIFIED:
            assert result.stop is not None
            for s in action.replaces:
                if await self._cancel(lease, s, report):
                    report.actions.append(f"{p.symbol}: canceled unfit stop {s.id}")
            for s, unfit in action.left_in_place:
                report.actions.append(
                    f"{p.symbol}: your own stop {s.id} ({describe(s)}) left in place: {unfit}"
                )
            await self.journal.resolve_incidents(
                self.scope, p.symbol, f"stop re-placed and verified live at {level}"
            )
            report.actions.append(f"{p.symbol}: placed verified stop at {level} ({why})")
            return True
        if result.outcome is StopOutcome.TRIGGERED:
            # the new stop was live and the market reached it during the read-back: the
            # position was closed by its stop; stops left without a position are orphans for
            # the next run, nothing is to be emergency-closed
            await self.journal.resolve_incidents(
                self.scope, p.symbol, f"stop at {level} went live and fired"
            )
            report.actions.append(f"{p.symbol}: placed stop at {level} fired at once ({why})")
            return False
        if result.outcome is StopOutcome.REFUSED:
            # refused as "would trigger" with the level not passed (a fresh price says so):
            # the incident stays open and is re-raised; the next run retries, and closes at
            # market only once the price really is beyond the level
            report.errors.append(
                f"{p.symbol}: NO live stop: the exchange refused every placement at {level} "
                f"though the price ({last}) has not reached it; retrying, not closing"
            )
            return False
        reason = (
            LEVEL_PASSED
            if result.outcome is StopOutcome.LEVEL_PASSED
            else "no live stop after " + "; ".join(result.failures)
        )
        for s in action.replaces:
            await self._cancel(lease, s, report)
        closed = await self._emergency_close(
            lease, p, level, f"{why}; {reason}", action.attribution, action.since
        )
        report.actions.append(f"{p.symbol}: emergency close ({reason}): {closed}")
        return False

    async def _emergency_close(
        self,
        lease: LeaseGuard,
        p: Position,
        level: float,
        why: str,
        attribution: Attribution,
        since: float | None,
    ) -> str:
        """The last resort (I4); returns how it went, for the report."""
        res = await self.keeper.emergency_close(
            lease, p, self.scope, why, level, attribution, since
        )
        if res.filled:
            await self.journal.resolve_incidents(self.scope, p.symbol, "position closed")
        return res.status.value + (f" at {res.order.average_price}" if res.order else "")

    async def _mark_live(self, symbol: str, stop: StopOrder) -> None:
        """Record that this stop was read back live. A placement whose process died after the
        exchange accepted it and before the journal stored its id is found by its client id and
        gets the id now; otherwise it would never count as verified, nor its firing be settled."""
        for rec in await self.journal.stops_for(self.scope, symbol, limit=5):
            if rec.exchange_id is None and stop.client_id and rec.client_id == stop.client_id:
                await self.journal.update_stop(
                    rec.id,
                    StopStatus.VERIFIED,
                    exchange_id=stop.id,
                    exchange_state=StopState.LIVE,
                    verified=True,
                )
                return
        await self.journal.mark_stop_seen_live(self.scope, symbol, stop.id)

    async def _why_unprotected(
        self, p: Position, live: list[StopOrder], market: Market
    ) -> tuple[str, Attribution]:
        wrong_size = [s for s in live if s.side is p.side.exit_side and not s.covers(p, market)]
        if wrong_size:
            return (
                f"stop size {wrong_size[0].size} does not cover position {p.size}",
                Attribution.EXECUTION,
            )
        if live:
            return "stop on the wrong side or not reduce-only", Attribution.EXECUTION
        records = await self.journal.stops_for(self.scope, p.symbol, limit=1)
        entry = await self.journal.last_entry(self.scope, p.symbol)
        if (
            entry is not None
            and await self.journal.position_owner(self.scope, p.symbol) is not None
            and (not records or records[0].placed_at < entry.updated_at)
        ):
            # Warden's own entry, interrupted between its fill and its stop (a crash)
            return (
                f"entry {entry.client_id} filled but no stop was placed for it",
                Attribution.EXECUTION,
            )
        if not records:
            return "no stop at all for a position Warden did not open", Attribution.EXTERNAL
        rec = records[0]
        if rec.status is StopStatus.CANCELED:
            return (
                f"Warden canceled stop {rec.client_id} itself (to close or replace it) and "
                "the position remained",
                Attribution.EXECUTION,
            )
        try:
            seen = await retry.read(partial(self._read_stop, rec))
        except ExchangeError:
            seen = None
        if seen is None:
            return f"stop {rec.client_id} not found on the exchange", Attribution.EXECUTION
        if seen.state is StopState.FAILED:
            await self.journal.update_stop(
                rec.id, StopStatus.FAILED, exchange_state=seen.state, fail_code=seen.fail_code
            )
            return (
                f"stop {rec.client_id} acknowledged but failed on the exchange "
                f"(failCode {seen.fail_code})",
                Attribution.EXECUTION,
            )
        if seen.state is StopState.CANCELED:
            await self.journal.update_stop(rec.id, StopStatus.CANCELED, exchange_state=seen.state)
            return f"stop {rec.client_id} was canceled outside Warden", Attribution.EXTERNAL
        if seen.state is StopState.TRIGGERED:
            await self.journal.update_stop(rec.id, StopStatus.TRIGGERED, exchange_state=seen.state)
            # e.g. a Hyperliquid trigger whose limit rests unfilled after a gap: triggered is not
            # closed, and the position left behind has no stop
            return (
                f"stop {rec.client_id} triggered but the position remains (its order did not "
                "close it)",
                Attribution.EXTERNAL,
            )
        if seen.state is StopState.PAUSED:
            return f"stop {rec.client_id} is paused on the exchange (not in effect)", (
                Attribution.EXTERNAL
            )
        return (
            f"stop {rec.client_id} is {seen.state.value} but not listed live",
            Attribution.EXECUTION,
        )

    async def _unprotected_since(self, symbol: str) -> float:
        """The last moment the symbol's position is known to have had a live stop: the last
        live read-back, or, when the latest stop placed was never seen live (it failed
        silently), the moment it was placed; the present when Warden knows of no stop."""
        seen = await self.journal.stop_checked_at(self.scope, symbol)
        latest = await self.journal.stops_for(self.scope, symbol, limit=1)
        known = [t for t in (seen, latest[0].placed_at if latest else None) if t is not None]
        return max(known) if known else self.wall_clock()
