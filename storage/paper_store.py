"""All SQL of the paper exchange (trading.paper.PaperStore); its tables are in paper_schema.

Every row is keyed by the exchange name, so two paper exchanges in one database never mix, and
every process that opens the same database file trades on the same simulated account.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from storage.db import Database
from storage.sql import Connection
from trading.models import Candle, Order, OrderSide, OrderStatus, PositionSide, StopOrder, StopState
from trading.paper.engine import PaperPosition
from trading.paper.store import FaultSettings, FaultState, ReplayState, Trade

_FAULT_COLUMNS = (
    "seed",
    "stop_silent_fail",
    "stop_silent_fail_rate",
    "entry_timeout_after_fill",
    "reject_rate",
    "latency_ms",
)


def _order(row: Any) -> Order:
    return Order(
        symbol=row["symbol"],
        id=row["id"],
        client_id=row["client_id"],
        side=OrderSide(row["side"]),
        size=row["size"],
        filled=row["filled"],
        average_price=row["average_price"],
        status=OrderStatus(row["status"]),
        reduce_only=bool(row["reduce_only"]),
        fee=row["fee"],
        ts=row["ts"],
    )


def _stop(row: Any) -> StopOrder:
    return StopOrder(
        symbol=row["symbol"],
        id=row["id"],
        client_id=row["client_id"],
        side=OrderSide(row["side"]),
        size=row["size"],
        trigger_price=row["trigger_price"],
        state=StopState(row["state"]),
        reduce_only=True,
        fail_code=row["fail_code"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _trade(row: Any) -> Trade:
    return Trade(
        order_id=row["order_id"],
        symbol=row["symbol"],
        side=OrderSide(row["side"]),
        size=row["size"],
        price=row["price"],
        fee=row["fee"],
        realized_pnl=row["realized_pnl"],
        reduce_only=bool(row["reduce_only"]),
        ts=row["ts"],
        stop_id=row["stop_id"],
    )


def _candle(row: Any) -> Candle:
    return Candle(row["ts"], row["open"], row["high"], row["low"], row["close"], row["volume"])


def _where(
    symbol: str | None, id_col: str, id_: str | None, client_id: str | None
) -> tuple[str, list[Any]]:
    if id_ is None and client_id is None:
        raise ValueError("give an exchange id or a client id")
    args: list[Any]
    if id_ is not None and client_id is not None:
        clause, args = f"({id_col} = ? OR client_id = ?)", [id_, client_id]
    elif id_ is not None:
        clause, args = f"{id_col} = ?", [id_]
    else:
        clause, args = "client_id = ?", [client_id]
    if symbol is not None:
        clause += " AND symbol = ?"
        args.append(symbol)
    return clause, args


class SqlPaperTx:
    """``trading.paper.PaperTx`` on one connection inside one transaction."""

    def __init__(self, conn: Connection, exchange: str) -> None:
        self.conn = conn
        self.exchange = exchange

    async def _one(self, sql: str, *args: Any) -> Any:
        cur = await self.conn.execute(sql, (self.exchange, *args))
        return await cur.fetchone()

    async def _all(self, sql: str, *args: Any) -> list[Any]:
        cur = await self.conn.execute(sql, (self.exchange, *args))
        return list(await cur.fetchall())

    async def _run(self, sql: str, *args: Any) -> None:
        await self.conn.execute(sql, (self.exchange, *args))

    # account and faults

    async def cash(self) -> float | None:
        row = await self._one("SELECT cash FROM paper_account WHERE exchange = ?")
        return None if row is None else float(row["cash"])

    async def create_account(self, cash: float, at: float) -> None:
        await self._run(
            "INSERT INTO paper_account(exchange, cash, created_at) VALUES (?, ?, ?)", cash, at
        )

    async def set_cash(self, cash: float) -> None:
        await self.conn.execute(
            "UPDATE paper_account SET cash = ? WHERE exchange = ?", (cash, self.exchange)
        )

    async def next_id(self) -> str:
        """The next exchange id (orders and stops share one sequence, like one id space)."""
        row = await self._one("SELECT next_id FROM paper_account WHERE exchange = ?")
        await self._run("UPDATE paper_account SET next_id = next_id + 1 WHERE exchange = ?")
        return str(int(row["next_id"]))

    async def fault_state(self) -> FaultState | None:
        row = await self._one("SELECT * FROM paper_faults WHERE exchange = ?")
        if row is None:
            return None
        current = FaultSettings(**{c: row[c] for c in _FAULT_COLUMNS})
        applied = FaultSettings(**json.loads(row["applied_config"]))
        return FaultState(current, applied, int(row["draws"]))

    async def save_fault_state(self, state: FaultState) -> None:
        values = [getattr(state.current, c) for c in _FAULT_COLUMNS]
        await self._run(
            f"INSERT INTO paper_faults(exchange, {', '.join(_FAULT_COLUMNS)}, draws, "
            "applied_config) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(exchange) DO UPDATE "
            f"SET {', '.join(f'{c} = excluded.{c}' for c in _FAULT_COLUMNS)}, "
            "draws = excluded.draws, applied_config = excluded.applied_config",
            *values,
            state.draws,
            json.dumps(asdict(state.applied_config), sort_keys=True),
        )

    # prices and positions

    async def add_market(self, symbol: str, price: float, at: float) -> None:
        await self._run(
            "INSERT INTO paper_market(exchange, symbol, last, updated_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT(exchange, symbol) DO NOTHING",
            symbol,
            price,
            at,
        )

    async def prices(self) -> dict[str, float]:
        rows = await self._all("SELECT symbol, last FROM paper_market WHERE exchange = ?")
        return {r["symbol"]: float(r["last"]) for r in rows}

    async def set_price(self, symbol: str, price: float, at: float) -> None:
        await self.conn.execute(
            "UPDATE paper_market SET last = ?, updated_at = ? WHERE exchange = ? AND symbol = ?",
            (price, at, self.exchange, symbol),
        )

    async def positions(self) -> dict[str, PaperPosition]:
        rows = await self._all("SELECT * FROM paper_position WHERE exchange = ? ORDER BY symbol")
        return {
            r["symbol"]: PaperPosition(
                r["symbol"], PositionSide(r["side"]), r["size"], r["entry_price"]
            )
            for r in rows
        }

    async def save_position(self, symbol: str, position: PaperPosition | None) -> None:
        if position is None:
            await self._run("DELETE FROM paper_position WHERE exchange = ? AND symbol = ?", symbol)
            return
        await self._run(
            "INSERT INTO paper_position(exchange, symbol, side, size, entry_price) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(exchange, symbol) DO UPDATE SET "
            "side = excluded.side, size = excluded.size, entry_price = excluded.entry_price",
            symbol,
            position.side.value,
            position.size,
            position.entry_price,
        )

    # orders, stops, trades

    async def client_id_owner(self, client_id: str) -> str | None:
        for table, kind in (("paper_order", "order"), ("paper_stop", "stop")):
            row = await self._one(
                f"SELECT id FROM {table} WHERE exchange = ? AND client_id = ?", client_id
            )
            if row is not None:
                return f"{kind} {row['id']}"
        return None

    async def insert_order(self, order: Order, stop_id: str | None = None) -> None:
        await self._run(
            "INSERT INTO paper_order(exchange, id, client_id, symbol, side, size, filled, "
            "average_price, status, reduce_only, fee, ts, stop_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            order.id,
            order.client_id,
            order.symbol,
            order.side.value,
            order.size,
            order.filled,
            order.average_price,
            order.status.value,
            int(order.reduce_only),
            order.fee,
            order.ts,
            stop_id,
        )

    async def find_order(
        self, symbol: str | None, order_id: str | None, client_id: str | None
    ) -> Order | None:
        clause, args = _where(symbol, "id", order_id, client_id)
        row = await self._one(
            f"SELECT * FROM paper_order WHERE exchange = ? AND {clause} "
            "ORDER BY id = ? DESC LIMIT 1",
            *args,
            order_id,
        )
        return None if row is None else _order(row)

    async def orders(self, symbol: str | None, status: OrderStatus) -> list[Order]:
        # ties broken by insertion order: ids are the numbers of one sequence (next_id), which
        # both backends can order by (PostgreSQL has no rowid)
        rows = await self._all(
            "SELECT * FROM paper_order WHERE exchange = ? AND status = ? "
            "AND (? IS NULL OR symbol = ?) ORDER BY ts, CAST(id AS BIGINT)",
            status.value,
            symbol,
            symbol,
        )
        return [_order(r) for r in rows]

    async def set_order_status(self, order_id: str, status: OrderStatus) -> None:
        await self._run(
            "UPDATE paper_order SET status = ?2 WHERE exchange = ?1 AND id = ?3",
            status.value,
            order_id,
        )

    async def insert_stop(self, stop: StopOrder) -> None:
        await self._run(
            "INSERT INTO paper_stop(exchange, id, client_id, symbol, side, size, trigger_price, "
            "state, fail_code, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            stop.id,
            stop.client_id,
            stop.symbol,
            stop.side.value,
            stop.size,
            stop.trigger_price,
            stop.state.value,
            stop.fail_code,
            stop.created_at,
            stop.updated_at,
        )

    async def find_stop(
        self, symbol: str | None, stop_id: str | None, client_id: str | None
    ) -> StopOrder | None:
        clause, args = _where(symbol, "id", stop_id, client_id)
        row = await self._one(
            f"SELECT * FROM paper_stop WHERE exchange = ? AND {clause} "
            "ORDER BY id = ? DESC LIMIT 1",
            *args,
            stop_id,
        )
        return None if row is None else _stop(row)

    async def stops(
        self, symbol: str | None, *, live: bool, since: float | None = None
    ) -> list[StopOrder]:
        state_clause = "state = 'live'" if live else "state != 'live'"
        rows = await self._all(
            f"SELECT * FROM paper_stop WHERE exchange = ?1 AND {state_clause} "
            "AND (?2 IS NULL OR symbol = ?2) AND (?3 IS NULL OR updated_at >= ?3) "
            "ORDER BY updated_at, created_at, CAST(id AS BIGINT)",
            symbol,
            since,
        )
        return [_stop(r) for r in rows]

    async def end_stop(
        self, stop_id: str, state: StopState, at: float, fill_order_id: str | None = None
    ) -> None:
        await self._run(
            "UPDATE paper_stop SET state = ?2, updated_at = ?3, fill_order_id = ?4 "
            "WHERE exchange = ?1 AND id = ?5",
            state.value,
            at,
            fill_order_id,
            stop_id,
        )

    async def insert_trade(self, trade: Trade) -> None:
        await self._run(
            "INSERT INTO paper_trade(exchange, order_id, symbol, side, size, price, fee, "
            "realized_pnl, reduce_only, stop_id, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            trade.order_id,
            trade.symbol,
            trade.side.value,
            trade.size,
            trade.price,
            trade.fee,
            trade.realized_pnl,
            int(trade.reduce_only),
            trade.stop_id,
            trade.ts,
        )

    async def trades(self, symbol: str | None, since: float | None) -> list[Trade]:
        rows = await self._all(
            "SELECT * FROM paper_trade WHERE exchange = ?1 AND (?2 IS NULL OR symbol = ?2) "
            "AND (?3 IS NULL OR ts >= ?3) ORDER BY seq",
            symbol,
            since,
        )
        return [_trade(r) for r in rows]

    # candle replay

    async def replace_candles(
        self, symbol: str, timeframe: str, candles: list[Candle], cursor: int
    ) -> None:
        await self._run("DELETE FROM paper_candle WHERE exchange = ? AND symbol = ?", symbol)
        await self.conn.executemany(
            "INSERT INTO paper_candle(exchange, symbol, idx, ts, open, high, low, close, volume) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (self.exchange, symbol, i, c.ts, c.open, c.high, c.low, c.close, c.volume)
                for i, c in enumerate(candles)
            ],
        )
        await self._run(
            "UPDATE paper_market SET timeframe = ?2, cursor = ?3, candle_count = ?4 "
            "WHERE exchange = ?1 AND symbol = ?5",
            timeframe,
            cursor,
            len(candles),
            symbol,
        )

    async def replay_state(self, symbol: str) -> ReplayState:
        row = await self._one(
            "SELECT timeframe, cursor, candle_count FROM paper_market "
            "WHERE exchange = ? AND symbol = ?",
            symbol,
        )
        if row is None:
            return ReplayState(None, 0, 0)
        return ReplayState(row["timeframe"], int(row["cursor"]), int(row["candle_count"]))

    async def set_cursor(self, symbol: str, cursor: int) -> None:
        await self._run(
            "UPDATE paper_market SET cursor = ?2 WHERE exchange = ?1 AND symbol = ?3",
            cursor,
            symbol,
        )

    async def candle_range(self, symbol: str, start: int, stop: int) -> list[Candle]:
        rows = await self._all(
            "SELECT * FROM paper_candle WHERE exchange = ? AND symbol = ? AND idx >= ? AND idx < ? "
            "ORDER BY idx",
            symbol,
            start,
            stop,
        )
        return [_candle(r) for r in rows]

    async def closed_candles(
        self, symbol: str, cursor: int, since: float | None, limit: int
    ) -> list[Candle]:
        if since is not None:
            rows = await self._all(
                "SELECT * FROM paper_candle WHERE exchange = ? AND symbol = ? AND idx < ? "
                "AND ts >= ? ORDER BY idx LIMIT ?",
                symbol,
                cursor,
                since,
                limit,
            )
        else:
            rows = await self._all(
                "SELECT * FROM (SELECT * FROM paper_candle WHERE exchange = ? AND symbol = ? "
                "AND idx < ? ORDER BY idx DESC LIMIT ?) AS recent ORDER BY idx",
                symbol,
                cursor,
                limit,
            )
        return [_candle(r) for r in rows]


class PaperStore:
    """``trading.paper.PaperStore`` on the shared Warden database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def write(self, exchange: str) -> AsyncIterator[SqlPaperTx]:
        async with self.db.write() as conn:
            yield SqlPaperTx(conn, exchange)

    @asynccontextmanager
    async def read(self, exchange: str) -> AsyncIterator[SqlPaperTx]:
        async with self.db.read() as conn:
            yield SqlPaperTx(conn, exchange)
