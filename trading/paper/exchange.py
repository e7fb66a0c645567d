"""PaperExchange: the simulator behind the ExchangePort, shared by every process on one database.

Each mutating call is one write transaction (read state -> apply the rules of ``engine`` ->
write), so concurrent processes are serialised by SQLite exactly like requests to one real
account. Like a real exchange it does not protect the caller from itself: two orders with
different client ids both fill. Fault budgets and the random draw counter live in the database
too, so a budget set in one process is consumed by whichever process places the next stop.
"""

from __future__ import annotations

import logging
import math

from trading.errors import Rejected, UnknownOutcome
from trading.logfmt import event
from trading.models import (
    Balance,
    Candle,
    Market,
    Order,
    OrderSide,
    OrderStatus,
    Position,
    StopAck,
    StopOrder,
    StopState,
    Ticker,
)

from . import engine
from .core import REJECT_CODE, SILENT_FAIL_CODE, PaperCore, roll, spend

log = logging.getLogger("warden.paper")

NOT_CANCELABLE = "51400"  # OKX: already filled, canceled or does not exist


class PaperExchange(PaperCore):
    """The ExchangePort on the shared paper account (the market controls are in PaperCore)."""

    # -- ExchangePort: reads ----------------------------------------------------------------

    async def markets(self) -> dict[str, Market]:
        await self._enter()
        return dict(self._markets)

    async def candles(
        self, symbol: str, timeframe: str, since: float | None = None, limit: int = 200
    ) -> list[Candle]:
        """Replayed candles up to the cursor (closed ones only); [] when none are loaded."""
        await self._enter()
        self._market(symbol)
        async with self.store.read(self.name) as tx:
            replay = await tx.replay_state(symbol)
            if replay.count == 0:
                return []
            if timeframe != replay.timeframe:
                raise Rejected(
                    f"{symbol}: the paper exchange replays {replay.timeframe} candles, "
                    f"not {timeframe}",
                )
            return await tx.closed_candles(symbol, replay.cursor, since, max(0, limit))

    async def ticker(self, symbol: str) -> Ticker:
        await self._enter()
        self._market(symbol)
        async with self.store.read(self.name) as tx:
            last = (await tx.prices())[symbol]
        return Ticker(symbol, last, self.clock())

    async def balance(self) -> Balance:
        await self._enter()
        async with self.store.read(self.name) as tx:
            view = engine.account_view(
                await tx.cash() or 0.0,
                (await tx.positions()).values(),
                await tx.prices(),
                self.settings.leverage,
            )
        return Balance(self.settings.currency, view.total, view.free, view.used)

    async def positions(self, symbol: str | None = None) -> list[Position]:
        await self._enter()
        async with self.store.read(self.name) as tx:
            prices = await tx.prices()
            held = await tx.positions()
        return [
            p.view(prices[p.symbol], self.settings.leverage)
            for p in held.values()
            if symbol is None or p.symbol == symbol
        ]

    async def get_order(
        self, symbol: str, *, order_id: str | None = None, client_id: str | None = None
    ) -> Order | None:
        await self._enter()
        async with self.store.read(self.name) as tx:
            return await tx.find_order(symbol, order_id, client_id)

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Market orders never rest on the paper exchange, so this is normally empty."""
        await self._enter()
        async with self.store.read(self.name) as tx:
            return await tx.orders(symbol, OrderStatus.OPEN)

    async def get_stop(
        self, symbol: str, *, stop_id: str | None = None, client_id: str | None = None
    ) -> StopOrder | None:
        await self._enter()
        async with self.store.read(self.name) as tx:
            return await tx.find_stop(symbol, stop_id, client_id)

    async def open_stops(self, symbol: str | None = None) -> list[StopOrder]:
        await self._enter()
        async with self.store.read(self.name) as tx:
            return await tx.stops(symbol, live=True)

    async def stop_history(
        self, symbol: str | None = None, since: float | None = None
    ) -> list[StopOrder]:
        """Every stop that ended (triggered, canceled, failed), oldest first."""
        await self._enter()
        async with self.store.read(self.name) as tx:
            return await tx.stops(symbol, live=False, since=since)

    # -- ExchangePort: writes ---------------------------------------------------------------

    async def place_market_order(
        self, symbol: str, side: OrderSide, size: float, client_id: str, reduce_only: bool = False
    ) -> Order:
        await self._enter()
        market = self._market(symbol)
        async with self.store.write(self.name) as tx:
            await self._check_client_id(tx, client_id)
            fill = engine.fill_market(
                market,
                side,
                size,
                reduce_only,
                await tx.cash() or 0.0,
                await tx.positions(),
                await tx.prices(),
                self.rules,
            )
            state = await self._state(tx)
            rejected, state = roll(state, state.current.reject_rate)
            timeout = False
            if not rejected:
                order = await self._record_fill(tx, fill, size, client_id, reduce_only)
                if not reduce_only:
                    timeout, state = spend(state, "entry_timeout_after_fill")
            await tx.save_fault_state(state)
        if rejected:
            raise Rejected(f"{symbol}: order {client_id} rejected (injected fault)", REJECT_CODE)
        if timeout:
            raise UnknownOutcome(
                f"{symbol}: no answer to {side.value} order {client_id} (timeout, injected "
                "fault); it may have filled: look it up by client id",
                client_id=client_id,
            )
        return order

    async def cancel_order(self, symbol: str, order_id: str) -> None:
        await self._enter()
        async with self.store.write(self.name) as tx:
            order = await tx.find_order(symbol, order_id, None)
            if order is None:
                raise Rejected(f"{symbol}: order {order_id} does not exist", NOT_CANCELABLE)
            if order.status is not OrderStatus.OPEN:
                raise Rejected(
                    f"{symbol}: order {order_id} is already {order.status.value}; nothing to "
                    "cancel",
                    NOT_CANCELABLE,
                )
            state = await self._state(tx)
            rejected, state = roll(state, state.current.reject_rate)
            if not rejected:
                await tx.set_order_status(order_id, OrderStatus.CANCELED)
            await tx.save_fault_state(state)
        if rejected:
            raise Rejected(
                f"{symbol}: cancel of order {order_id} rejected (injected fault)", REJECT_CODE
            )

    async def place_stop(
        self, symbol: str, side: OrderSide, size: float, trigger_price: float, client_id: str
    ) -> StopAck:
        """A reduce-only stop-market order; the trigger is rounded to the price step (as ccxt
        does before sending). Under ``stop_silent_fail`` the answer is the same as for a good
        stop, but the stop is FAILED (fail code 1000) for every read that follows."""
        await self._enter()
        market = self._market(symbol)
        engine.check_size(market, size)
        trigger = market.round_price(trigger_price) if math.isfinite(trigger_price) else 0.0
        if trigger <= 0:
            raise Rejected(f"{symbol}: trigger price {trigger_price} is not valid")
        async with self.store.write(self.name) as tx:
            await self._check_client_id(tx, client_id)
            engine.check_stop_side(symbol, side, trigger, (await tx.prices())[symbol])
            state = await self._state(tx)
            rejected, state = roll(state, state.current.reject_rate)
            if not rejected:
                silent, state = spend(state, "stop_silent_fail")
                if not silent:
                    silent, state = roll(state, state.current.stop_silent_fail_rate)
                now = self.clock()
                stop = StopOrder(
                    symbol=symbol,
                    id=await tx.next_id(),
                    client_id=client_id,
                    side=side,
                    size=size,
                    trigger_price=trigger,
                    state=StopState.FAILED if silent else StopState.LIVE,
                    reduce_only=True,
                    fail_code=SILENT_FAIL_CODE if silent else None,
                    created_at=now,
                    updated_at=now,
                )
                await tx.insert_stop(stop)
            await tx.save_fault_state(state)
        if rejected:
            raise Rejected(f"{symbol}: stop {client_id} rejected (injected fault)", REJECT_CODE)
        if stop.state is StopState.FAILED:
            event(
                log,
                "paper.stop_silently_failed",
                logging.DEBUG,
                exchange=self.name,
                stop_id=stop.id,
                fail_code=SILENT_FAIL_CODE,
            )
        return StopAck(client_id, stop.id)

    async def cancel_stop(self, symbol: str, stop_id: str) -> None:
        await self._enter()
        async with self.store.write(self.name) as tx:
            stop = await tx.find_stop(symbol, stop_id, None)
            if stop is None:
                raise Rejected(f"{symbol}: stop {stop_id} does not exist", NOT_CANCELABLE)
            if stop.state is not StopState.LIVE:
                code = f" (fail code {stop.fail_code})" if stop.fail_code else ""
                raise Rejected(
                    f"{symbol}: stop {stop_id} is {stop.state.value}{code}; only a live stop can "
                    "be canceled",
                    NOT_CANCELABLE,
                )
            state = await self._state(tx)
            rejected, state = roll(state, state.current.reject_rate)
            if not rejected:
                await tx.end_stop(stop_id, StopState.CANCELED, self.clock())
            await tx.save_fault_state(state)
        if rejected:
            raise Rejected(
                f"{symbol}: cancel of stop {stop_id} rejected (injected fault)", REJECT_CODE
            )

    async def close(self) -> None:
        """Nothing to release: the database belongs to the caller."""
