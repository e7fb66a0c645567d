"""Sending one market order the only safe way (I2): persisted intent with a deterministic
client id first, the write sent through the lease's gate (trading/fenced.py), an unknown
outcome resolved by asking the exchange for that client id — never by sending again. A request
refused before it left the process (``NotSent``) is settled as rejected and says so."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from trading import retry
from trading.crashpoints import crash_point
from trading.errors import DuplicateClientId, ExchangeError, NotSent, Rejected, UnknownOutcome
from trading.fenced import FencedExchange
from trading.journal import Intent, IntentKind, IntentStatus, Journal
from trading.lease import LeaseGuard
from trading.logfmt import event
from trading.models import Order, OrderSide, OrderStatus
from trading.port import ExchangePort

log = logging.getLogger("warden.orders")


@dataclass(frozen=True)
class SendResult:
    intent: Intent
    order: Order | None  # None: rejected, or the outcome could not be established
    status: IntentStatus
    error: str | None = None
    # refused before anything left the process (NotSent): the exchange never saw it; the
    # intent is settled as rejected, with the local reason as its error
    not_sent: bool = False

    @property
    def filled(self) -> bool:
        return self.order is not None and self.order.filled > 0


class OrderSender:
    def __init__(
        self,
        exchange: ExchangePort,
        journal: Journal,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        resolve_attempts: int = 5,
    ) -> None:
        self.exchange = exchange
        self.journal = journal
        self.sleep = sleep
        self.resolve_attempts = resolve_attempts

    async def send(
        self,
        lease: LeaseGuard,
        kind: IntentKind,
        symbol: str,
        side: OrderSide,
        size: float,
        *,
        reduce_only: bool,
        purpose: str,
        stop_price: float | None = None,
    ) -> SendResult:
        intent = await self.journal.create_intent(
            lease, kind, symbol, side, size, stop_price, purpose
        )
        crash_point("after_intent_stored")
        try:
            order = await FencedExchange(self.exchange, lease).place_market_order(
                symbol, side, size, intent.client_id, reduce_only=reduce_only
            )
        except NotSent as exc:
            # a local check refused it: nothing to look up by client id, nothing to resolve
            event(
                log,
                "order.not_sent",
                logging.WARNING,
                client_id=intent.client_id,
                symbol=symbol,
                error=str(exc),
            )
            await self.journal.finish_intent(intent.id, IntentStatus.REJECTED, error=str(exc))
            return SendResult(intent, None, IntentStatus.REJECTED, str(exc), not_sent=True)
        except UnknownOutcome as exc:
            crash_point(f"after_{kind.value}_sent")
            event(
                log,
                "order.unknown_outcome",
                logging.WARNING,
                client_id=intent.client_id,
                symbol=symbol,
                error=str(exc),
            )
            await self.journal.finish_intent(intent.id, IntentStatus.UNKNOWN, error=str(exc))
            return await self.resolve(intent)
        except DuplicateClientId as exc:
            crash_point(f"after_{kind.value}_sent")
            # OKX 51016: this client id is already on the exchange, so the order may well have
            # gone through (a retried request): it is looked up by id, never taken as refused
            event(
                log,
                "order.duplicate_client_id",
                logging.WARNING,
                client_id=intent.client_id,
                symbol=symbol,
                error=str(exc),
            )
            await self.journal.finish_intent(intent.id, IntentStatus.UNKNOWN, error=str(exc))
            return await self.resolve(intent)
        except Rejected as exc:
            crash_point(f"after_{kind.value}_sent")
            await self.journal.finish_intent(intent.id, IntentStatus.REJECTED, error=str(exc))
            return SendResult(intent, None, IntentStatus.REJECTED, str(exc))
        except ExchangeError as exc:
            crash_point(f"after_{kind.value}_sent")
            # any other failure of a write is an unknown outcome until the exchange says otherwise
            await self.journal.finish_intent(intent.id, IntentStatus.UNKNOWN, error=str(exc))
            return await self.resolve(intent)
        crash_point(f"after_{kind.value}_sent")
        return await self._record(intent, order)

    async def resolve(self, intent: Intent, *, sender_gone: bool = False) -> SendResult:
        """Ask the exchange what became of this client id; repeat a few times, never resend.

        ``sender_gone``: the process that sent it is gone (start-up reconciliation after a
        crash), so nothing of it can still be on its way: when the exchange's last answer is
        that it does not know the client id, the intent is settled as ``not_found`` (client
        ids are never reused). Otherwise a not-found stays ``unknown``, to be looked up again.
        """
        last_error = "not found on the exchange"
        answered = False
        for attempt in range(self.resolve_attempts):
            try:
                order = await retry.read(
                    lambda: self.exchange.get_order(intent.symbol, client_id=intent.client_id),
                    sleep=self.sleep,
                )
                answered = True
            except ExchangeError as exc:
                last_error = str(exc)
                order, answered = None, False
            if order is not None:
                event(log, "order.resolved", client_id=intent.client_id, status=order.status)
                return await self._record(intent, order)
            if attempt + 1 < self.resolve_attempts:  # no wait after the last look-up
                await self.sleep(0.5 * (attempt + 1))
        status = IntentStatus.NOT_FOUND if sender_gone and answered else IntentStatus.UNKNOWN
        if status is IntentStatus.NOT_FOUND:
            last_error = "not found on the exchange; its sender is gone: never placed"
        await self.journal.finish_intent(intent.id, status, error=last_error)
        return SendResult(intent, None, status, last_error)

    async def _record(self, intent: Intent, order: Order) -> SendResult:
        if order.filled > 0:
            status = IntentStatus.FILLED
        elif order.status in (OrderStatus.REJECTED, OrderStatus.CANCELED):
            status = IntentStatus.REJECTED
        else:
            status = IntentStatus.UNKNOWN
        await self.journal.finish_intent(
            intent.id,
            status,
            order_id=order.id,
            filled=order.filled,
            price=order.average_price,
            fee=order.fee,
        )
        if status is IntentStatus.FILLED and intent.kind is IntentKind.ENTRY:
            crash_point("after_fill_recorded")
        event(
            log,
            "order.recorded",
            client_id=intent.client_id,
            kind=intent.kind,
            status=status,
            filled=order.filled,
            price=order.average_price,
        )
        return SendResult(intent, order, status)
