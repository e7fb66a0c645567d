"""The paper exchange's persistence port (``trading.paper.PaperStore``) in memory, for backtests.

Same semantics as ``storage.paper_store`` (rows keyed by exchange name, the same orderings and
the same "id or client id, the id first" look-ups), so the one paper engine in
``trading/paper/`` runs unchanged on it. A backtest is a single task with nothing shared, so a
transaction is just the book itself; every object handed out is frozen or a fresh copy.

Each hot read is O(answer), never O(history): candle windows are slices, live stops and orders by
status are indexed, and trades are found by time with a bisection. There is no rollback: the
paper engine checks everything before its first write in a transaction, so a failed call has
written nothing, as with SQLite.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace
from typing import TypeVar

from trading.models import Candle, Order, OrderStatus, StopOrder, StopState
from trading.paper.engine import PaperPosition
from trading.paper.store import FaultState, ReplayState, Trade

_Row = TypeVar("_Row", Order, StopOrder)


@dataclass
class _Market:
    last: float
    updated_at: float
    timeframe: str | None = None
    cursor: int = 0
    candles: list[Candle] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # candle open times, for ``since``


class MemoryPaperTx:
    """``trading.paper.PaperTx`` on one exchange's rows, kept in dicts and lists."""

    def __init__(self) -> None:
        self._cash: float | None = None
        self._next_id = 1
        self._faults: FaultState | None = None
        self._markets: dict[str, _Market] = {}
        self._positions: dict[str, PaperPosition] = {}
        self._orders: dict[str, tuple[int, Order]] = {}  # id -> (insertion seq, order)
        self._order_ids: dict[str, str] = {}  # client id -> id
        self._by_status: dict[OrderStatus, dict[str, None]] = {s: {} for s in OrderStatus}
        self._stops: dict[str, tuple[int, StopOrder]] = {}
        self._stop_ids: dict[str, str] = {}
        self._live: dict[str, None] = {}  # ids of live stops, in insertion order
        self._seq = 0
        self._trades: list[Trade] = []
        self._trade_times: list[float] = []
        self._trades_in_time_order = True

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # account and faults

    async def cash(self) -> float | None:
        return self._cash

    async def create_account(self, cash: float, at: float) -> None:
        if self._cash is not None:
            raise ValueError("paper account already exists")
        self._cash = cash

    async def set_cash(self, cash: float) -> None:
        if self._cash is not None:
            self._cash = cash

    async def next_id(self) -> str:
        value = self._next_id
        self._next_id += 1
        return str(value)

    async def fault_state(self) -> FaultState | None:
        return self._faults

    async def save_fault_state(self, state: FaultState) -> None:
        self._faults = state

    # prices and positions

    async def add_market(self, symbol: str, price: float, at: float) -> None:
        if symbol not in self._markets:
            self._markets[symbol] = _Market(price, at)

    async def prices(self) -> dict[str, float]:
        return {s: m.last for s, m in self._markets.items()}

    async def set_price(self, symbol: str, price: float, at: float) -> None:
        market = self._markets.get(symbol)
        if market is not None:
            market.last, market.updated_at = price, at

    async def positions(self) -> dict[str, PaperPosition]:
        return {s: self._positions[s] for s in sorted(self._positions)}

    async def save_position(self, symbol: str, position: PaperPosition | None) -> None:
        if position is None:
            self._positions.pop(symbol, None)
        else:
            self._positions[symbol] = position

    # orders, stops, trades

    async def client_id_owner(self, client_id: str) -> str | None:
        if client_id in self._order_ids:
            return f"order {self._order_ids[client_id]}"
        if client_id in self._stop_ids:
            return f"stop {self._stop_ids[client_id]}"
        return None

    async def insert_order(self, order: Order, stop_id: str | None = None) -> None:
        if order.id in self._orders:
            raise ValueError(f"order id {order.id} already exists")
        if order.client_id is not None:
            if order.client_id in self._order_ids:
                raise ValueError(f"order client id {order.client_id} already exists")
            self._order_ids[order.client_id] = order.id
        self._orders[order.id] = (self._next_seq(), order)
        self._by_status[order.status][order.id] = None

    async def find_order(
        self, symbol: str | None, order_id: str | None, client_id: str | None
    ) -> Order | None:
        return _find(self._orders, self._order_ids, symbol, order_id, client_id)

    async def orders(self, symbol: str | None, status: OrderStatus) -> list[Order]:
        rows = [
            (o.ts, seq, o)
            for seq, o in (self._orders[i] for i in self._by_status[status])
            if symbol is None or o.symbol == symbol
        ]
        return [o for _, _, o in sorted(rows, key=lambda r: (r[0], r[1]))]

    async def set_order_status(self, order_id: str, status: OrderStatus) -> None:
        if order_id in self._orders:
            seq, order = self._orders[order_id]
            self._by_status[order.status].pop(order_id, None)
            self._by_status[status][order_id] = None
            self._orders[order_id] = (seq, replace(order, status=status))

    async def insert_stop(self, stop: StopOrder) -> None:
        if stop.id in self._stops:
            raise ValueError(f"stop id {stop.id} already exists")
        if stop.client_id is not None:
            if stop.client_id in self._stop_ids:
                raise ValueError(f"stop client id {stop.client_id} already exists")
            self._stop_ids[stop.client_id] = stop.id
        self._stops[stop.id] = (self._next_seq(), stop)
        if stop.state is StopState.LIVE:
            self._live[stop.id] = None

    async def find_stop(
        self, symbol: str | None, stop_id: str | None, client_id: str | None
    ) -> StopOrder | None:
        return _find(self._stops, self._stop_ids, symbol, stop_id, client_id)

    async def stops(
        self, symbol: str | None, *, live: bool, since: float | None = None
    ) -> list[StopOrder]:
        if live:
            rows = [self._stops[i] for i in self._live]
        else:
            rows = [r for i, r in self._stops.items() if i not in self._live]
        picked = [
            (s.updated_at, s.created_at, seq, s)
            for seq, s in rows
            if (symbol is None or s.symbol == symbol) and (since is None or s.updated_at >= since)
        ]
        picked.sort(key=lambda r: r[:3])
        return [r[3] for r in picked]

    async def end_stop(
        self, stop_id: str, state: StopState, at: float, fill_order_id: str | None = None
    ) -> None:
        if stop_id not in self._stops:
            return
        seq, stop = self._stops[stop_id]
        self._stops[stop_id] = (seq, replace(stop, state=state, updated_at=at))
        if state is StopState.LIVE:
            self._live[stop_id] = None
        else:
            self._live.pop(stop_id, None)

    async def insert_trade(self, trade: Trade) -> None:
        if self._trade_times and trade.ts < self._trade_times[-1]:
            self._trades_in_time_order = False
        self._trades.append(trade)
        self._trade_times.append(trade.ts)

    async def trades(self, symbol: str | None, since: float | None) -> list[Trade]:
        start = 0
        if since is not None and self._trades_in_time_order:
            start = bisect.bisect_left(self._trade_times, since)
        return [
            t
            for t in self._trades[start:]
            if (symbol is None or t.symbol == symbol) and (since is None or t.ts >= since)
        ]

    # candle replay

    async def replace_candles(
        self, symbol: str, timeframe: str, candles: list[Candle], cursor: int
    ) -> None:
        market = self._markets.get(symbol)
        if market is None:
            return
        market.timeframe, market.cursor = timeframe, cursor
        market.candles = list(candles)
        market.times = [c.ts for c in market.candles]

    async def replay_state(self, symbol: str) -> ReplayState:
        market = self._markets.get(symbol)
        if market is None:
            return ReplayState(None, 0, 0)
        return ReplayState(market.timeframe, market.cursor, len(market.candles))

    async def set_cursor(self, symbol: str, cursor: int) -> None:
        if symbol in self._markets:
            self._markets[symbol].cursor = cursor

    async def candle_range(self, symbol: str, start: int, stop: int) -> list[Candle]:
        market = self._markets.get(symbol)
        return [] if market is None else market.candles[max(0, start) : max(0, stop)]

    async def closed_candles(
        self, symbol: str, cursor: int, since: float | None, limit: int
    ) -> list[Candle]:
        market = self._markets.get(symbol)
        if market is None or limit <= 0:
            return []
        end = min(max(cursor, 0), len(market.candles))
        if since is not None:
            first = bisect.bisect_left(market.times, since, 0, end)
            return market.candles[first : min(end, first + limit)]
        return market.candles[max(0, end - limit) : end]


def _find(
    rows: dict[str, tuple[int, _Row]],
    by_client: dict[str, str],
    symbol: str | None,
    id_: str | None,
    client_id: str | None,
) -> _Row | None:
    """The row with this id (preferred) or this client id, optionally of ``symbol`` only."""
    if id_ is None and client_id is None:
        raise ValueError("give an exchange id or a client id")
    if id_ is not None and id_ in rows:
        row = rows[id_][1]
        if symbol is None or row.symbol == symbol:
            return row
    if client_id is not None and client_id in by_client:
        row = rows[by_client[client_id]][1]
        if symbol is None or row.symbol == symbol:
            return row
    return None


class _Tx:
    """``async with store.write(name) as tx``: the book itself (one task, nothing to lock)."""

    def __init__(self, book: MemoryPaperTx) -> None:
        self.book = book

    async def __aenter__(self) -> MemoryPaperTx:
        return self.book

    async def __aexit__(self, *exc_info: object) -> None:
        return None


class MemoryPaperStore:
    """``trading.paper.PaperStore`` in memory: one book per exchange name."""

    def __init__(self) -> None:
        self._tx: dict[str, _Tx] = {}

    def book(self, exchange: str) -> MemoryPaperTx:
        """The exchange's rows, for reading figures without going through the simulated API."""
        return self.write(exchange).book

    def write(self, exchange: str) -> _Tx:
        tx = self._tx.get(exchange)
        if tx is None:
            tx = self._tx[exchange] = _Tx(MemoryPaperTx())
        return tx

    read = write
