"""The stop-loss guardian (I5): a stateless reconciler, run every cycle and by the watchdog.

refresh (positions, live stops, prices from the exchange) -> desired (each position has exactly
one live reduce-only stop on the right side covering its full size) -> act: place the missing,
replace the mis-sized, cancel extras and orphans, emergency-close when the level is passed.
Every repair is an incident with an attribution and a critical alert, then a "resolved" alert.
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
from trading.attribution import EMERGENCY_PREFIX
from trading.errors import ExchangeError
from trading.journal import (
    Attribution,
    Intent,
    IntentKind,
    IntentStatus,
    Journal,
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
from trading.protection import classify, describe
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


def _default_level(p: Position, percent: float, market: Market) -> float:
    factor = 1 - percent / 100 if p.side is PositionSide.LONG else 1 + percent / 100
    return market.round_price(p.entry_price * factor)


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
        for s in stops:
            if s.symbol in held or (symbols is not None and s.symbol not in symbols):
                continue
            if not s.placed_by_warden:
                self._note_trader_stop(s, "no position; left in place (Warden never cancels it)")
                continue
            if await self._cancel(lease, s, report):
                report.actions.append(f"{s.symbol}: canceled orphan stop {s.id} (no position)")
                event(log, "guardian.orphan_canceled", symbol=s.symbol, stop_id=s.id)
        return report

    async def _cancel(self, lease: LeaseGuard, s: StopOrder, report: GuardReport) -> bool:
        """Cancel a stop Warden no longer wants, remembering that Warden did it."""
        await lease.ensure()
        try:
            await self.exchange.cancel_stop(s.symbol, s.id)
        except ExchangeError as exc:
            report.errors.append(f"{s.symbol}: cancel of stop {s.id} failed: {exc}")
            return False
        await self.journal.mark_stop_canceled(self.scope, s.symbol, s.id)
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
        # an adapter without fills: the trigger price stands in for the fill price
        with contextlib.suppress(ExchangeError, NotImplementedError):
            # only this stop's life: reading the whole fill history grew with every trade
            since = stop.created_at - 1 if stop.created_at else None
            fills = [f for f in await self.exchange.fills(symbol, since) if f.stop_id == stop.id]
        size = sum(f.size for f in fills) or stop.size
        price = sum(f.price * f.size for f in fills) / size if fills else stop.trigger_price
        fee = sum(f.fee for f in fills)
        entry_price = entry.price if entry is not None and entry.price else price
        await self.journal.record_exit(
            self.scope, symbol, side, size, entry_price, price, "stop_loss", fee
        )
        pnl = await closing_pnl(self.exchange, entry, side, size, price, fee, entry_price)
        await self.journal.alert(
            Severity.INFO,
            f"stop hit {symbol}: {side.value} {size} closed at {price} "
            f"(stop {stop.trigger_price}); P&L {pnl:+.2f} after fees",
            f"stop-loss:{stop.id}",
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
            if close.kind is IntentKind.EMERGENCY_CLOSE:
                why = close.purpose.removeprefix(EMERGENCY_PREFIX)
                reason = f"emergency({why})"
            else:
                reason = "signal" if close.purpose.startswith("cycle ") else "manual"
            await self.journal.record_exit(
                self.scope, symbol, side, size, entry_price, price, reason, fee
            )
            if close.kind is IntentKind.EMERGENCY_CLOSE:
                level = entry.stop_price
                cost = emergency_cost(side, level, price, size) if level else 0.0
                await self.journal.open_incident(
                    self.scope,
                    symbol,
                    "emergency_close",
                    Attribution.EXECUTION,
                    f"{side.value} {size} closed at {price} (stop level {level}): {why}; "
                    f"recorded at start-up: its process stopped before recording it",
                    cost=cost,
                    resolved=True,
                )
            else:
                pnl = await closing_pnl(self.exchange, entry, side, size, price, fee, entry_price)
                await self.journal.alert(
                    Severity.INFO,
                    f"closed {side.value} {size} {symbol} at {price} ({reason}, recorded at "
                    f"start-up); P&L {pnl:+.2f} after fees",
                    f"exit:{symbol}",
                )
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
        desired = await self.journal.desired_stop_price(self.scope, p.symbol)
        if desired is not None and not p.side.stop_is_protective(desired, p.entry_price):
            # a level on the wrong side of this position's entry belongs to another position
            # (an earlier trade, the other side): it would 'pass' at once and close this one
            event(
                log,
                "guardian.stale_level_ignored",
                logging.WARNING,
                symbol=p.symbol,
                stop=desired,
                side=p.side,
                entry=p.entry_price,
            )
            desired = None
        prot = classify(p, live, market, last)
        ours = [s for s in live if s.placed_by_warden]
        for s, unfit in prot.theirs_unfit:
            self._note_trader_stop(s, f"does not protect the position ({unfit}); left in place")
        if prot.ours_fit:
            good = prot.ours_fit
            keep = min(good, key=lambda s: abs(s.trigger_price - (desired or s.trigger_price)))
            for s in ours:
                if s is not keep and await self._cancel(lease, s, report):
                    report.actions.append(f"{p.symbol}: canceled extra stop {s.id}")
            await self._mark_live(p.symbol, keep)
            await self.journal.resolve_incidents(self.scope, p.symbol, "live stop verified")
            return True
        if prot.theirs_fit:
            # the trader's own stop protects the position (documented policy in
            # trading/protection.py): no second stop; Warden's own unfit ones are removed
            for s in ours:
                if await self._cancel(lease, s, report):
                    report.actions.append(f"{p.symbol}: canceled unfit stop {s.id}")
            self._note_trader_stop(prot.theirs_fit[0], "protects the position; Warden adds none")
            await self.journal.resolve_incidents(
                self.scope, p.symbol, "protected by the trader's own stop"
            )
            return True

        why, attribution = await self._why_unprotected(p, ours, market)
        if desired is None:
            sized = [s for s in live if s.side is p.side.exit_side]
            desired = (
                sized[0].trigger_price
                if sized
                else _default_level(p, self.policy.default_stop_percent, market)
            )
        since = await self._unprotected_since(p.symbol)
        await self.journal.open_incident(
            self.scope,
            p.symbol,
            "unprotected_position",
            attribution,
            f"{p.side.value} {p.size}: {why}; repairing (stop {desired}, last {last})",
            unprotected_since=since,
        )
        event(
            log,
            "guardian.unprotected",
            logging.ERROR,
            symbol=p.symbol,
            why=why,
            attribution=attribution,
            stop=desired,
            last=last,
        )
        result = await self.keeper.place_verified(lease, p.symbol, p.side, p.size, desired)
        if result.outcome is StopOutcome.VERIFIED:
            assert result.stop is not None
            for s in ours:
                if await self._cancel(lease, s, report):
                    report.actions.append(f"{p.symbol}: canceled unfit stop {s.id}")
            for s, unfit in prot.theirs_unfit:
                report.actions.append(
                    f"{p.symbol}: your own stop {s.id} ({describe(s)}) left in place: {unfit}"
                )
            await self.journal.resolve_incidents(
                self.scope, p.symbol, f"stop re-placed and verified live at {desired}"
            )
            report.actions.append(f"{p.symbol}: placed verified stop at {desired} ({why})")
            return True
        if result.outcome is StopOutcome.TRIGGERED:
            # the new stop was live and the market reached it during the read-back: the
            # position was closed by its stop; stops left without a position are orphans for
            # the next run, nothing is to be emergency-closed
            await self.journal.resolve_incidents(
                self.scope, p.symbol, f"stop at {desired} went live and fired"
            )
            report.actions.append(f"{p.symbol}: placed stop at {desired} fired at once ({why})")
            return False
        if result.outcome is StopOutcome.REFUSED:
            # refused as "would trigger" with the level not passed (a fresh price says so):
            # the incident stays open and is re-raised; the next run retries, and closes at
            # market only once the price really is beyond the level
            report.errors.append(
                f"{p.symbol}: NO live stop: the exchange refused every placement at {desired} "
                f"though the price ({last}) has not reached it; retrying, not closing"
            )
            return False
        reason = (
            "stop level already passed"
            if result.outcome is StopOutcome.LEVEL_PASSED
            else "no live stop after " + "; ".join(result.failures)
        )
        for s in ours:
            await self._cancel(lease, s, report)
        res = await self.keeper.emergency_close(
            lease, p, self.scope, f"{why}; {reason}", desired, attribution, since
        )
        report.actions.append(
            f"{p.symbol}: emergency close ({reason}): {res.status.value}"
            + (f" at {res.order.average_price}" if res.order else "")
        )
        if res.filled:
            await self.journal.resolve_incidents(self.scope, p.symbol, "position closed")
        return False

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
