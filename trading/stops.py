"""The stop-loss logic (I4): a stop is live only when the exchange's own record says so.

``StopKeeper.place_verified`` places a reduce-only stop, waits, reads the stop's record back from
the exchange, and re-places (with a new client id) until it is seen live or the attempts run out.
``emergency_close`` is the last resort when no live stop can be had.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from trading import retry
from trading.crashpoints import crash_point
from trading.errors import DuplicateClientId, ExchangeError, NotSent, Rejected, StopWouldTrigger
from trading.fenced import FencedExchange
from trading.journal import (
    Attribution,
    ExitReason,
    IntentKind,
    Journal,
    NewExit,
    NewIncident,
    Purpose,
    StopRecord,
    StopStatus,
)
from trading.lease import LeaseGuard
from trading.logfmt import event
from trading.models import Position, PositionSide, StopAck, StopOrder, StopState
from trading.orders import OrderSender, SendResult
from trading.port import ExchangePort
from trading.settings import StopPolicy

log = logging.getLogger("warden.stops")


class StopOutcome(StrEnum):
    VERIFIED = "verified"  # read back from the exchange in its live state
    LEVEL_PASSED = "level_passed"  # the market is already beyond the stop level
    UNVERIFIED = "unverified"  # every attempt ended without a live stop
    # read back already triggered: it was live and the market reached it during the wait, so
    # the position was closed (or reduced) by its own stop; nothing is left to protect or close
    TRIGGERED = "triggered"
    # every attempt was refused as "would trigger at once" while a fresh price showed the level
    # NOT passed: a refused placement to retry and alert on, never a reason to close at market
    REFUSED = "refused"


@dataclass
class StopResult:
    outcome: StopOutcome
    stop: StopOrder | None = None
    record: StopRecord | None = None
    attempts: int = 0
    failures: list[str] = field(default_factory=list)
    # seconds from the first placement call to the read-back that showed it was not live
    detection_latency: float | None = None


def emergency_cost(side: PositionSide, level: float, fill: float, size: float) -> float:
    """Money lost beyond the stop level: what a working stop would have saved."""
    return max(0.0, -side.loss_at(level, fill, size))


class StopKeeper:
    def __init__(
        self,
        exchange: ExchangePort,
        journal: Journal,
        sender: OrderSender,
        policy: StopPolicy,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.exchange = exchange
        self.journal = journal
        self.sender = sender
        self.policy = policy
        self.clock = clock
        self.sleep = sleep

    async def last_price(self, symbol: str) -> float:
        ticker = await retry.read(lambda: self.exchange.ticker(symbol), sleep=self.sleep)
        return ticker.last

    async def place_verified(
        self, lease: LeaseGuard, symbol: str, side: PositionSide, size: float, trigger: float
    ) -> StopResult:
        result = StopResult(StopOutcome.UNVERIFIED)
        started: float | None = None
        refused_unconfirmed = 0
        for attempt in range(1, self.policy.verify_attempts + 1):
            result.attempts = attempt
            last = await self.last_price(symbol)
            if not side.stop_is_protective(trigger, last):
                result.outcome = StopOutcome.LEVEL_PASSED
                result.failures.append(f"last price {last} is already beyond the stop {trigger}")
                return result
            record = await self.journal.create_stop(lease, symbol, side, size, trigger)
            result.record = record
            if started is None:
                started = self.clock()
            try:
                ack = await FencedExchange(self.exchange, lease).place_stop(
                    symbol, side.exit_side, size, trigger, record.client_id
                )
            except NotSent as exc:
                # refused by a local check, never sent: the same request would be refused the
                # same way, so no further attempt; no live stop can be had this way
                await self.journal.update_stop(record.id, StopStatus.REJECTED, api_answer=str(exc))
                result.failures.append(f"attempt {attempt}: {exc}")
                event(
                    log,
                    "stop.not_sent",
                    logging.ERROR,
                    symbol=symbol,
                    attempt=attempt,
                    error=str(exc),
                )
                return result
            except StopWouldTrigger as exc:
                # Hyperliquid answers "Invalid TP/SL price" for a limit on the wrong side of the
                # trigger too, and did for every trigger order of a coin during an incident
                # (issue 12): only a fresh price beyond the level makes it "passed"
                fresh = None if exc.certain else await self._fresh_price(symbol)
                passed = exc.certain or (
                    fresh is not None and not side.stop_is_protective(trigger, fresh)
                )
                if not passed:
                    await self.journal.update_stop(
                        record.id, StopStatus.REJECTED, api_answer=str(exc)
                    )
                    seen = "unreadable" if fresh is None else f"{fresh}, not beyond it"
                    result.failures.append(
                        f"attempt {attempt}: refused as 'would trigger at once' ({exc}) but the "
                        f"price is {seen}"
                    )
                    refused_unconfirmed += 1
                    event(
                        log,
                        "stop.refused_level_not_passed",
                        logging.ERROR,
                        symbol=symbol,
                        attempt=attempt,
                        trigger=trigger,
                        price=fresh,
                        error=str(exc),
                    )
                    await self.sleep(self.policy.verify_delay)
                    continue
                await self.journal.update_stop(
                    record.id, StopStatus.WOULD_TRIGGER, api_answer=str(exc)
                )
                result.outcome = StopOutcome.LEVEL_PASSED
                seen = "" if fresh is None else f" (price {fresh})"
                result.failures.append(f"stop refused, level already passed{seen}: {exc}")
                return result
            except DuplicateClientId as exc:
                # OKX 51016: a stop with this client id is already there (a retried request);
                # not a refusal: the read-back by client id below says what it is
                ack = StopAck(record.client_id, None)
                await self.journal.update_stop(
                    record.id, StopStatus.ACKED, api_answer=f"duplicate client id: {exc}"
                )
            except Rejected as exc:
                await self.journal.update_stop(record.id, StopStatus.REJECTED, api_answer=str(exc))
                result.failures.append(f"attempt {attempt}: rejected: {exc}")
                event(
                    log,
                    "stop.rejected",
                    logging.WARNING,
                    symbol=symbol,
                    attempt=attempt,
                    error=str(exc),
                )
                await self.sleep(self.policy.verify_delay)
                continue
            except ExchangeError as exc:
                # unknown outcome: the read-back by client id below settles it
                ack = StopAck(record.client_id, None)
                await self.journal.update_stop(
                    record.id, StopStatus.ACKED, api_answer=f"no answer: {exc}"
                )
            else:
                crash_point("after_stop_sent")
                await self.journal.update_stop(
                    record.id,
                    StopStatus.ACKED,
                    exchange_id=ack.id,
                    api_answer=f"accepted id={ack.id}",
                )
            await self.sleep(self.policy.verify_delay)
            crash_point("during_verification")
            observed = await self._read_back(symbol, ack)
            if observed is not None and observed.state is StopState.LIVE:
                await self.journal.update_stop(
                    record.id,
                    StopStatus.VERIFIED,
                    exchange_id=observed.id,
                    exchange_state=observed.state,
                    verified=True,
                )
                result.outcome, result.stop = StopOutcome.VERIFIED, observed
                event(
                    log,
                    "stop.verified",
                    symbol=symbol,
                    client_id=record.client_id,
                    trigger=trigger,
                    size=size,
                    attempt=attempt,
                )
                return result
            if observed is not None and observed.state is StopState.TRIGGERED:
                await self.journal.update_stop(
                    record.id,
                    StopStatus.TRIGGERED,
                    exchange_id=observed.id,
                    exchange_state=observed.state,
                )
                result.outcome, result.stop = StopOutcome.TRIGGERED, observed
                event(
                    log,
                    "stop.triggered_while_verifying",
                    logging.WARNING,
                    symbol=symbol,
                    client_id=record.client_id,
                    trigger=trigger,
                    attempt=attempt,
                )
                return result
            state = observed.state if observed is not None else None
            fail_code = observed.fail_code if observed is not None else None
            await self.journal.update_stop(
                record.id,
                StopStatus.FAILED,
                exchange_id=observed.id if observed is not None else None,
                exchange_state=state,
                fail_code=fail_code,
            )
            if result.detection_latency is None:
                result.detection_latency = self.clock() - started
            what = f"{state.value} (failCode {fail_code})" if state else "not found"
            result.failures.append(f"attempt {attempt}: acknowledged, exchange shows {what}")
            event(
                log,
                "stop.not_live",
                logging.ERROR,
                symbol=symbol,
                client_id=record.client_id,
                attempt=attempt,
                exchange_state=state,
                fail_code=fail_code,
            )
        if refused_unconfirmed == result.attempts:
            result.outcome = StopOutcome.REFUSED
        return result

    async def _fresh_price(self, symbol: str) -> float | None:
        try:
            return await self.last_price(symbol)
        except ExchangeError as exc:
            event(log, "stop.price_unreadable", logging.WARNING, symbol=symbol, error=str(exc))
            return None

    async def _read_back(self, symbol: str, ack: StopAck) -> StopOrder | None:
        try:
            return await retry.read(
                lambda: self.exchange.get_stop(symbol, stop_id=ack.id, client_id=ack.client_id),
                sleep=self.sleep,
            )
        except ExchangeError as exc:
            event(log, "stop.read_back_failed", logging.WARNING, symbol=symbol, error=str(exc))
            return None

    async def cancel_stops(
        self, lease: LeaseGuard, scope: str, stops: list[StopOrder]
    ) -> list[tuple[StopOrder, ExchangeError | None]]:
        """Cancel stops Warden no longer wants, one by one, each remembered as canceled by
        Warden (so a position left behind is attributed to execution, not to somebody else).
        A failed cancel does not stop the others: each stop comes back with its error or None.
        ``LeaseLost`` ends the loop: a lost lease writes nothing more."""
        fenced = FencedExchange(self.exchange, lease)
        done: list[tuple[StopOrder, ExchangeError | None]] = []
        for s in stops:
            try:
                await fenced.cancel_stop(s.symbol, s.id)
            except ExchangeError as exc:
                event(
                    log,
                    "stop.cancel_failed",
                    logging.WARNING,
                    symbol=s.symbol,
                    stop_id=s.id,
                    error=str(exc),
                )
                done.append((s, exc))
                continue
            await self.journal.mark_stop_canceled(scope, s.symbol, s.id)
            done.append((s, None))
        return done

    async def emergency_close(
        self,
        lease: LeaseGuard,
        position: Position,
        scope: str,
        why: str,
        level: float,
        attribution: Attribution,
        unprotected_since: float | None = None,
    ) -> SendResult:
        """Reduce-only market close; an incident with its cost and a critical alert, always.

        The exit, the incident and its alert are one event, written in one transaction: a crash
        can leave the close unrecorded (start-up repair then records all three), never the exit
        recorded without its alert."""
        res = await self.sender.send(
            lease,
            IntentKind.EMERGENCY_CLOSE,
            position.symbol,
            position.side.exit_side,
            position.size,
            reduce_only=True,
            purpose=Purpose.emergency(why).text,
        )
        crash_point("during_emergency_close")
        if res.filled and res.order is not None and res.order.average_price is not None:
            fill = res.order.average_price
            cost = emergency_cost(position.side, level, fill, res.order.filled)
            exit_ = NewExit(
                position.symbol,
                position.side,
                res.order.filled,
                position.entry_price,
                fill,
                ExitReason.EMERGENCY,
                res.order.fee,
                why=why,
            )
            incident = NewIncident(
                position.symbol,
                "emergency_close",
                attribution,
                f"{position.side.value} {res.order.filled} closed at {fill} "
                f"(stop level {level}): {why}",
                cost=cost,
                unprotected_since=unprotected_since,
                resolved=True,
            )
            await self.journal.record_event(scope, exit=exit_, incident=incident)
            crash_point("after_emergency_record")
            event(
                log,
                "stop.emergency_close",
                logging.CRITICAL,
                symbol=position.symbol,
                fill=fill,
                stop_level=level,
                cost=round(cost, 2),
                attribution=attribution,
                why=why,
            )
        else:
            failed = NewIncident(
                position.symbol,
                "emergency_close_failed",
                attribution,
                f"{position.side.value} {position.size} could NOT be closed ({res.status.value}: "
                f"{res.error}); the position has no live stop: act now",
                unprotected_since=unprotected_since,
            )
            await self.journal.record_event(scope, incident=failed)
        return res
