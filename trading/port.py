"""The exchange port: what the executor and guardian need from any exchange.

Sizes are always in base units (adapters convert OKX contracts). Every write takes a client id
chosen by the caller and persisted before the call (I2), so an unknown outcome can be resolved
by asking for that id.
"""

from __future__ import annotations

from typing import Protocol

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


class ExchangePort(Protocol):
    name: str

    async def markets(self) -> dict[str, Market]: ...

    async def candles(
        self, symbol: str, timeframe: str, since: float | None = None, limit: int = 200
    ) -> list[Candle]: ...

    async def ticker(self, symbol: str) -> Ticker: ...

    async def balance(self) -> Balance: ...

    async def positions(self, symbol: str | None = None) -> list[Position]: ...

    async def place_market_order(
        self, symbol: str, side: OrderSide, size: float, client_id: str, reduce_only: bool = False
    ) -> Order:
        """Raises UnknownOutcome when the request may have reached the exchange unanswered."""
        ...

    async def get_order(
        self, symbol: str, *, order_id: str | None = None, client_id: str | None = None
    ) -> Order | None: ...

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Resting (non-stop) orders, e.g. an entry that has not filled yet."""
        ...

    async def cancel_order(self, symbol: str, order_id: str) -> None: ...

    async def place_stop(
        self, symbol: str, side: OrderSide, size: float, trigger_price: float, client_id: str
    ) -> StopAck:
        """A reduce-only stop-market order. The answer says nothing about it being live."""
        ...

    async def get_stop(
        self, symbol: str, *, stop_id: str | None = None, client_id: str | None = None
    ) -> StopOrder | None:
        """The stop's own record as the exchange has it now, whatever its state."""
        ...

    async def open_stops(self, symbol: str | None = None) -> list[StopOrder]: ...

    async def cancel_stop(self, symbol: str, stop_id: str) -> None: ...

    async def stop_history(
        self, symbol: str | None = None, since: float | None = None
    ) -> list[StopOrder]:
        """Stops that ended (triggered, canceled, failed with fail code) since a time."""
        ...

    async def fills(self, symbol: str | None = None, since: float | None = None) -> list[Fill]:
        """Executions (market orders and triggered stops), oldest first."""
        ...

    async def close(self) -> None: ...
