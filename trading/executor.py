"""The guarded executor: the only way Warden opens or closes a position.

open: lease -> pause and risk limits -> ask the exchange (position or open entry order for the
symbol => refused) -> persisted intent -> send -> resolve an unknown outcome by client id ->
stop placed and read back live (I4) -> otherwise emergency close. Every exchange write passes
the lease's gate (``trading.fenced.FencedExchange``, used by the order sender and stop keeper).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from trading import retry
from trading.accounting import closing_pnl
from trading.guardian import Guardian
from trading.journal import (
    Attribution,
    ExitReason,
    IntentKind,
    IntentStatus,
    Journal,
    NewAlert,
    NewExit,
    Severity,
    parse_exit_reason,
)
from trading.lease import LeaseGuard
from trading.logfmt import event
from trading.models import Market, Position, PositionSide
from trading.orders import OrderSender
from trading.port import ExchangePort
from trading.protection import describe
from trading.settings import RiskLimits
from trading.stops import StopKeeper, StopOutcome

log = logging.getLogger("warden.executor")


class Outcome(StrEnum):
    PROTECTED = "protected"  # filled, stop read back live
    REFUSED = "refused"  # a guard said no; nothing was sent
    REJECTED = "rejected"  # the exchange refused the entry
    NOT_SENT = "not_sent"  # refused locally (an adapter's own check): nothing left the process
    EMERGENCY_CLOSED = "emergency_closed"  # filled, no live stop could be had, closed
    STOPPED_OUT = "stopped_out"  # filled, the stop went live and fired before the read-back
    UNRESOLVED = "unresolved"  # the entry's outcome is still unknown; nothing resent
    # filled, but the exchange refused every stop as "would trigger" while the price had not
    # reached the level: kept open (never closed at market on an unconfirmed refusal), a
    # critical incident raised; the guardian retries and closes if the level is really passed
    UNPROTECTED = "unprotected"
    CLOSED = "closed"
    NOTHING = "nothing"  # close: no position
    FAILED = "failed"


@dataclass
class ExecResult:
    outcome: Outcome
    symbol: str
    detail: str
    fill_price: float | None = None
    size: float | None = None
    stop_attempts: int = 0
    detection_latency: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome in (
            Outcome.PROTECTED,
            Outcome.STOPPED_OUT,
            Outcome.CLOSED,
            Outcome.NOTHING,
        )


class RefusedError(Exception):
    """A safety guard said no (risk limit, existing position, pause)."""


class BadRequest(RefusedError):
    """The request itself is wrong (unknown symbol, size, stop side): a usage error."""


class Executor:
    def __init__(
        self,
        exchange: ExchangePort,
        journal: Journal,
        sender: OrderSender,
        keeper: StopKeeper,
        guardian: Guardian,
        scope: str,
        limits: RiskLimits,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.exchange = exchange
        self.journal = journal
        self.sender = sender
        self.keeper = keeper
        self.guardian = guardian
        self.scope = scope
        self.limits = limits
        self.wall_clock = wall_clock

    async def _refuse(self, symbol: str, action: str, reason: str, purpose: str) -> ExecResult:
        await self.journal.record_refusal(self.scope, symbol, action, reason, purpose)
        event(
            log,
            "executor.refused",
            logging.WARNING,
            symbol=symbol,
            action=action,
            reason=reason,
            purpose=purpose,
        )
        return ExecResult(Outcome.REFUSED, symbol, reason)

    async def check_open(
        self, symbol: str, side: PositionSide, size: float, stop: float
    ) -> tuple[Market, float]:
        """Guards that need no lease and send nothing; raises RefusedError with the reason."""
        markets = await retry.read(self.exchange.markets)
        market = markets.get(symbol)
        if market is None:
            raise BadRequest(f"unknown symbol {symbol} (known: {', '.join(sorted(markets))})")
        if not (math.isfinite(size) and size > 0):
            raise BadRequest(f"size {size} is not a positive number")
        if not (math.isfinite(stop) and stop > 0):
            raise BadRequest(f"stop {stop} is not a positive price")
        if size < market.min_size:
            raise BadRequest(f"size {size} is below the minimum {market.min_size} for {symbol}")
        if abs(market.round_size(size) - size) > market.size_step * 1e-6:
            raise BadRequest(f"size {size} is not a multiple of the size step {market.size_step}")
        last = (await retry.read(lambda: self.exchange.ticker(symbol))).last
        if not side.stop_is_protective(stop, last):
            where = "below" if side is PositionSide.LONG else "above"
            raise BadRequest(
                f"stop {stop} must be {where} the last price {last} for a {side.value}"
            )
        distance = abs(last - stop) / last * 100
        if distance > self.limits.max_stop_percent:
            raise RefusedError(
                f"stop is {distance:.2f}% away, above risk.max_stop_percent "
                f"{self.limits.max_stop_percent}"
            )
        notional = size * last
        if self.limits.max_notional is not None and notional > self.limits.max_notional:
            raise RefusedError(
                f"notional {notional:.2f} is above risk.max_notional {self.limits.max_notional}"
            )
        balance = await retry.read(self.exchange.balance)
        if balance.total <= 0 or notional / balance.total > self.limits.max_leverage:
            raise RefusedError(
                f"notional {notional:.2f} on equity {balance.total:.2f} is above "
                f"risk.max_leverage {self.limits.max_leverage}"
            )
        return market, last

    async def open(
        self,
        lease: LeaseGuard,
        symbol: str,
        side: PositionSide,
        size: float,
        stop: float,
        purpose: str,
    ) -> ExecResult:
        if await self.journal.is_paused(self.scope):
            return await self._refuse(symbol, "open", "trading is paused", purpose)
        try:
            await self.check_open(symbol, side, size, stop)
            await self._pre_open(symbol)
        except RefusedError as exc:
            return await self._refuse(symbol, "open", str(exc), purpose)

        sent = await self.sender.send(
            lease,
            IntentKind.ENTRY,
            symbol,
            side.entry_side,
            size,
            reduce_only=False,
            purpose=purpose,
            stop_price=stop,
        )
        if sent.not_sent:
            return ExecResult(Outcome.NOT_SENT, symbol, f"entry refused locally: {sent.error}")
        if sent.status is IntentStatus.REJECTED:
            return ExecResult(Outcome.REJECTED, symbol, f"entry rejected: {sent.error}")
        if not sent.filled or sent.order is None:
            await self.journal.open_incident(
                self.scope,
                symbol,
                "unresolved_order",
                Attribution.EXECUTION,
                f"entry {sent.intent.client_id} outcome unknown ({sent.error}); not resent",
            )
            # whatever did happen on the exchange gets a stop now, not at the next watchdog run
            report = await self.guardian.reconcile(lease, {symbol})
            return ExecResult(
                Outcome.UNRESOLVED,
                symbol,
                f"entry outcome unknown; nothing resent; {report.actions}",
            )
        # from here until a stop is read back live the position is unprotected (I5)
        filled_at = self.wall_clock()
        fill = sent.order.average_price
        filled = sent.order.filled
        stop_res = await self.keeper.place_verified(lease, symbol, side, filled, stop)
        result = ExecResult(
            Outcome.PROTECTED,
            symbol,
            f"{side.value} {filled} at {fill}, stop {stop} live",
            fill_price=fill,
            size=filled,
            stop_attempts=stop_res.attempts,
            detection_latency=stop_res.detection_latency,
            notes=list(stop_res.failures),
        )
        if stop_res.outcome is StopOutcome.VERIFIED:
            await self.journal.alert(
                Severity.INFO,
                f"entered {side.value} {filled} {symbol} at {fill} ({purpose}); stop {stop} "
                f"read back live"
                + (f" after {stop_res.attempts} attempts" if stop_res.failures else ""),
                f"entry:{symbol}",
            )
            if stop_res.failures:
                await self.journal.open_incident(
                    self.scope,
                    symbol,
                    "stop_placement_failed",
                    Attribution.EXECUTION,
                    "; ".join(stop_res.failures) + f"; re-placed and verified live at {stop}",
                    unprotected_since=filled_at,
                    resolved=True,
                )
            return result
        if stop_res.outcome is StopOutcome.TRIGGERED:
            # the stop was live: the market reached it while it was being read back
            result.outcome = Outcome.STOPPED_OUT
            result.detail = (
                f"{side.value} {filled} at {fill}: the stop {stop} went live and fired while "
                "being verified; the position was closed by its stop"
            )
            return result
        if stop_res.outcome is StopOutcome.REFUSED:
            result.outcome = Outcome.UNPROTECTED
            result.detail = (
                f"{side.value} {filled} at {fill} has NO stop: the exchange refused every "
                f"placement at {stop} though the price has not reached it; not closed at market; "
                "the running agent's guardian retries (start `warden run` if none runs)"
            )
            await self.journal.open_incident(
                self.scope,
                symbol,
                "unprotected_position",
                Attribution.EXECUTION,
                f"{side.value} {filled}: " + "; ".join(stop_res.failures),
                unprotected_since=filled_at,
            )
            return result
        position = Position(symbol, side, filled, fill or stop)
        why = (
            "stop level already passed"
            if stop_res.outcome is StopOutcome.LEVEL_PASSED
            else "no live stop after " + "; ".join(stop_res.failures)
        )
        closed = await self.keeper.emergency_close(
            lease, position, self.scope, why, stop, Attribution.EXECUTION, filled_at
        )
        result.outcome = Outcome.EMERGENCY_CLOSED if closed.filled else Outcome.FAILED
        result.detail = f"{why}; emergency close {closed.status.value}"
        return result

    async def _pre_open(self, symbol: str) -> None:
        positions = await retry.read(self.exchange.positions)
        for p in positions:
            if p.symbol == symbol:
                raise RefusedError(
                    f"a {p.side.value} position of {p.size} {symbol} already exists on the "
                    f"exchange (entry {p.entry_price}); not adding to it"
                )
        if len(positions) >= self.limits.max_open_positions:
            raise RefusedError(
                f"{len(positions)} positions open, risk.max_open_positions is "
                f"{self.limits.max_open_positions}"
            )
        pending = await retry.read(lambda: self.exchange.open_orders(symbol))
        if pending:
            raise RefusedError(
                f"an entry order for {symbol} is already open on the exchange ({pending[0].id})"
            )

    async def close(
        self, lease: LeaseGuard, target: str, reason: str, purpose: str
    ) -> list[ExecResult]:
        exit_reason, _ = parse_exit_reason(reason)  # a reason it cannot record: before any write
        positions = await retry.read(self.exchange.positions)
        chosen = [p for p in positions if target == "all" or p.symbol == target]
        if not chosen:
            return [ExecResult(Outcome.NOTHING, target, "no open position")]
        return [await self._close_one(lease, p, exit_reason, purpose) for p in chosen]

    async def _close_one(
        self, lease: LeaseGuard, p: Position, reason: ExitReason, purpose: str
    ) -> ExecResult:
        stops = await retry.read(lambda: self.exchange.open_stops(p.symbol))
        # a stop that will not cancel is logged there; the close goes ahead (reduce-only). A
        # stop the trader set on the venue is never canceled (trading/protection.py): being
        # reduce-only it can open nothing once the position is gone
        await self.keeper.cancel_stops(lease, self.scope, [s for s in stops if s.placed_by_warden])
        theirs = [s for s in stops if not s.placed_by_warden]
        sent = await self.sender.send(
            lease,
            IntentKind.CLOSE,
            p.symbol,
            p.side.exit_side,
            p.size,
            reduce_only=True,
            purpose=purpose,
        )
        if sent.filled and sent.order is not None and sent.order.average_price is not None:
            price = sent.order.average_price
            # the entry that opened this position (none for one opened outside Warden), read
            # before the exit is recorded: from then on the position has no owner
            owned = await self.journal.position_owner(self.scope, p.symbol) is not None
            entry = await self.journal.last_entry(self.scope, p.symbol) if owned else None
            exit_ = NewExit(
                p.symbol, p.side, sent.order.filled, p.entry_price, price, reason, sent.order.fee
            )
            # read before the write: the exit and its alert are one event, one transaction
            pnl = await closing_pnl(
                self.exchange,
                entry,
                p.side,
                sent.order.filled,
                price,
                sent.order.fee,
                p.entry_price,
            )
            alert = NewAlert(
                Severity.INFO,
                f"closed {p.side.value} {sent.order.filled} {p.symbol} at {price} "
                f"({exit_.reason_text}); P&L {pnl:+.2f} after fees",
                f"exit:{p.symbol}",
            )
            await self.journal.record_event(self.scope, exit=exit_, alert=alert)
            event(log, "executor.closed", symbol=p.symbol, price=price, reason=reason)
            return ExecResult(
                Outcome.CLOSED,
                p.symbol,
                f"closed {p.side.value} {sent.order.filled} at {price}"
                + "".join(
                    f"; your own stop {s.id} ({describe(s)}) left in place: cancel it on the "
                    "venue if you no longer want it"
                    for s in theirs
                ),
                fill_price=price,
                size=sent.order.filled,
            )
        # the close did not happen: the position must not stay without its stop
        report = await self.guardian.reconcile(lease, {p.symbol})
        return ExecResult(
            Outcome.FAILED,
            p.symbol,
            f"close {sent.status.value}: {sent.error}; guardian: {report.actions}",
        )
