"""The one gate every exchange write passes (I1): the lease token is checked here, and only here.

``FencedExchange(exchange, lease)`` is the exchange as one lease holder may use it: reads pass
straight through; every write (a market order, an order cancel, a stop, a stop cancel) first asks
the lease whether this holder's token is still the current one and raises ``LeaseLost`` before
anything is sent when it is not. The order sender, the stop keeper, the guardian and the executor
write only through it, so no write path can forget the check.

An adapter's own preparatory writes happen inside these calls (OKX and Hyperliquid set the
leverage inside ``place_market_order`` before an entry), so they sit behind the same gate.

A lost lease raises ``LeaseLost`` rather than ``NotSent``: nothing was sent either way, but a
lost lease ends every write of its holder (the caller stops, the new holder repairs), while a
``NotSent`` refuses one request and the caller goes on.
"""

from __future__ import annotations

from trading.lease import LeaseGuard
from trading.models import (
    Balance,
    Candle,
    Fill,
    Market,
    Order,
    OrderSide,
    Position,
    StopAck,
    StopOrder,
    Ticker,
)
from trading.port import ExchangePort

# the ExchangePort methods that change something on the exchange: each one is gated below
WRITES = ("place_market_order", "cancel_order", "place_stop", "cancel_stop")


class FencedExchange:
    """An ``ExchangePort`` whose writes are refused once ``lease`` is lost."""

    def __init__(self, exchange: ExchangePort, lease: LeaseGuard) -> None:
        self.inner = exchange
        self.lease = lease

    @property
    def name(self) -> str:
        return self.inner.name

    async def _gate(self) -> None:
        """The token check: the only place in the domain where a write is fenced."""
        await self.lease.ensure()

    # -- writes: fenced ----------------------------------------------------------------------

    async def place_market_order(
        self, symbol: str, side: OrderSide, size: float, client_id: str, reduce_only: bool = False
    ) -> Order:
        await self._gate()
        return await self.inner.place_market_order(
            symbol, side, size, client_id, reduce_only=reduce_only
        )

    async def cancel_order(self, symbol: str, order_id: str) -> None:
        await self._gate()
        await self.inner.cancel_order(symbol, order_id)

    async def place_stop(
        self, symbol: str, side: OrderSide, size: float, trigger_price: float, client_id: str
    ) -> StopAck:
        await self._gate()
        return await self.inner.place_stop(symbol, side, size, trigger_price, client_id)

    async def cancel_stop(self, symbol: str, stop_id: str) -> None:
        await self._gate()
        await self.inner.cancel_stop(symbol, stop_id)

    # -- reads: straight through -------------------------------------------------------------

    async def markets(self) -> dict[str, Market]:
        return await self.inner.markets()

    async def candles(
        self, symbol: str, timeframe: str, since: float | None = None, limit: int = 200
    ) -> list[Candle]:
        return await self.inner.candles(symbol, timeframe, since, limit)

    async def ticker(self, symbol: str) -> Ticker:
        return await self.inner.ticker(symbol)

    async def balance(self) -> Balance:
        return await self.inner.balance()

    async def positions(self, symbol: str | None = None) -> list[Position]:
        return await self.inner.positions(symbol)

    async def get_order(
        self, symbol: str, *, order_id: str | None = None, client_id: str | None = None
    ) -> Order | None:
        return await self.inner.get_order(symbol, order_id=order_id, client_id=client_id)

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        return await self.inner.open_orders(symbol)

    async def get_stop(
        self, symbol: str, *, stop_id: str | None = None, client_id: str | None = None
    ) -> StopOrder | None:
        return await self.inner.get_stop(symbol, stop_id=stop_id, client_id=client_id)

    async def open_stops(self, symbol: str | None = None) -> list[StopOrder]:
        return await self.inner.open_stops(symbol)

    async def stop_history(
        self, symbol: str | None = None, since: float | None = None
    ) -> list[StopOrder]:
        return await self.inner.stop_history(symbol, since)

    async def fills(self, symbol: str | None = None, since: float | None = None) -> list[Fill]:
        return await self.inner.fills(symbol, since)

    async def close(self) -> None:
        """The connection belongs to whoever built the exchange, not to one lease holder."""
