"""The paper exchange's engine room: seeding, fault budgets, fills, triggers and the market.

``PaperCore`` holds what is not part of the ExchangePort: moving the price by hand
(``set_price``) or by candle replay (``load_candles`` + ``advance``), changing fault budgets at
run time (``set_faults``), and reading the trade record. Every mutation is one write
transaction on the shared database.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from trading import models
from trading.errors import DuplicateClientId, Rejected
from trading.logfmt import event
from trading.models import Candle, Market, Order, OrderStatus, StopOrder, StopState

from . import engine
from .engine import Fill, Rules
from .store import FaultSettings, FaultState, PaperSettings, PaperStore, PaperTx, Trade

log = logging.getLogger("warden.paper")

SILENT_FAIL_CODE = "1000"  # what OKX reported for the post-mortem's failed stops
REJECT_CODE = "paper-reject"


@dataclass(frozen=True)
class TriggeredStop:
    """A stop a price move reached: TRIGGERED with its fill, or CANCELED (nothing to reduce)."""

    stop: StopOrder
    fill: Order | None


@dataclass(frozen=True)
class AdvanceResult:
    advanced: int  # candles replayed by this call
    remaining: int  # candles still ahead of the cursor
    triggered: list[TriggeredStop]


def roll(state: FaultState, rate: float) -> tuple[bool, FaultState]:
    """One seeded draw against ``rate``; no draw (and no counter change) when the rate is 0."""
    if rate <= 0:
        return False, state
    hit = engine.draw(state.current.seed, state.draws) < rate
    return hit, replace(state, draws=state.draws + 1)


def spend(
    state: FaultState, budget: Literal["stop_silent_fail", "entry_timeout_after_fill"]
) -> tuple[bool, FaultState]:
    """Consume one unit of a counted fault budget, if any is left."""
    left = int(getattr(state.current, budget))
    if left <= 0:
        return False, state
    return True, replace(state, current=replace(state.current, **{budget: left - 1}))


class PaperCore:
    """State handling shared by the port methods, plus the simulator's own controls: the
    market (``set_price``, candle replay), fault budgets and the trade record."""

    def __init__(
        self,
        name: str,
        settings: PaperSettings,
        store: PaperStore,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self.settings = settings
        self.store = store
        self.clock = clock
        self.sleep = sleep
        self.rules = Rules(settings.taker_fee, settings.slippage_bps, settings.leverage)
        self._markets = {m.symbol: m.market() for m in settings.markets}
        self._seeded = False

    # -- plumbing ---------------------------------------------------------------------------

    async def _seed(self) -> None:
        """Create this exchange's rows from the config once (balance, prices, fault budgets)."""
        if self._seeded:
            return
        async with self.store.write(self.name) as tx:
            now = self.clock()
            if await tx.cash() is None:
                await tx.create_account(self.settings.starting_balance, now)
            for m in self.settings.markets:
                await tx.add_market(m.symbol, m.price, now)
            state = await tx.fault_state()
            if state is None:
                await tx.save_fault_state(FaultState.seeded(self.settings.faults))
        changes = [] if state is None else state.config_changes(self.settings.faults)
        if changes:
            event(
                log,
                "paper.config_not_applied",
                logging.WARNING,
                exchange=self.name,
                why="the database is the exchange: config faults only seed it; use set_faults "
                "or a fresh database",
                differs=", ".join(changes),
            )
        self._seeded = True

    async def _enter(self) -> None:
        """Every call: make sure the exchange exists, then wait the injected latency."""
        await self._seed()
        faults = await self.faults()
        if faults.latency_ms > 0:
            await self.sleep(faults.latency_ms / 1000)

    def _market(self, symbol: str) -> Market:
        market = self._markets.get(symbol)
        if market is None:
            raise Rejected(
                f"{symbol}: unknown symbol on paper exchange {self.name} "
                f"(markets: {', '.join(self._markets)})",
                code="51001",
            )
        return market

    async def _state(self, tx: PaperTx) -> FaultState:
        state = await tx.fault_state()
        return state if state is not None else FaultState.seeded(FaultSettings())

    async def _check_client_id(self, tx: PaperTx, client_id: str) -> None:
        if not client_id:
            raise Rejected("a client id is required")
        owner = await tx.client_id_owner(client_id)
        if owner is not None:
            raise DuplicateClientId(
                f"client id {client_id} is already used by {owner} on paper exchange {self.name}",
                code="51016",
            )

    async def _record_fill(
        self,
        tx: PaperTx,
        fill: Fill,
        asked: float,
        client_id: str | None,
        reduce_only: bool,
        stop_id: str | None = None,
    ) -> Order:
        now = self.clock()
        order = Order(
            symbol=fill.symbol,
            id=await tx.next_id(),
            client_id=client_id,
            side=fill.side,
            size=asked,
            filled=fill.size,
            average_price=fill.price,
            status=OrderStatus.FILLED,
            reduce_only=reduce_only,
            fee=fill.fee,
            ts=now,
        )
        await tx.insert_order(order, stop_id)
        await tx.insert_trade(
            Trade(
                order.id,
                fill.symbol,
                fill.side,
                fill.size,
                fill.price,
                fill.fee,
                fill.realized_pnl,
                reduce_only,
                now,
                stop_id,
            )
        )
        await tx.save_position(fill.symbol, fill.position)
        await tx.set_cash((await tx.cash() or 0.0) + fill.cash_delta)
        return order

    async def _trigger(self, tx: PaperTx, market: Market, path: list[float]) -> list[TriggeredStop]:
        """Fire every live stop the price path reaches, in the order it reaches them."""
        fired = engine.fired_stops(await tx.stops(market.symbol, live=True), path)
        position = (await tx.positions()).get(market.symbol)
        out: list[TriggeredStop] = []
        for stop, base in fired:
            now = self.clock()
            fill = engine.fill_reduce(market, position, stop.side, stop.size, base, self.rules)
            if fill is None:
                await tx.end_stop(stop.id, StopState.CANCELED, now)
                out.append(
                    TriggeredStop(replace(stop, state=StopState.CANCELED, updated_at=now), None)
                )
                continue
            order = await self._record_fill(tx, fill, stop.size, None, True, stop_id=stop.id)
            position = fill.position
            await tx.end_stop(stop.id, StopState.TRIGGERED, now, order.id)
            out.append(
                TriggeredStop(replace(stop, state=StopState.TRIGGERED, updated_at=now), order)
            )
        for t in out:
            event(
                log,
                "paper.stop_fired",
                exchange=self.name,
                symbol=t.stop.symbol,
                stop_id=t.stop.id,
                side=t.stop.side.value,
                trigger=t.stop.trigger_price,
                state=t.stop.state.value,
                fill=t.fill.average_price if t.fill else None,
            )
        return out

    # -- the market -------------------------------------------------------------------------

    async def set_price(self, symbol: str, price: float) -> list[TriggeredStop]:
        """Move the last price by hand (drills); fires every live stop the move crosses.

        The price is rounded to the price step. Stops fill at their trigger plus slippage.
        """
        await self._enter()
        market = self._market(symbol)
        rounded = market.round_price(price) if math.isfinite(price) else 0.0
        if rounded <= 0:
            raise Rejected(f"{symbol}: price {price} is not a positive price")
        async with self.store.write(self.name) as tx:
            old = (await tx.prices())[symbol]
            await tx.set_price(symbol, rounded, self.clock())
            return await self._trigger(tx, market, [old, rounded])

    async def load_candles(
        self, symbol: str, candles: Sequence[Candle], *, timeframe: str = "1h", warmup: int = 0
    ) -> None:
        """Replace the candles replayed for ``symbol`` and rewind the cursor to ``warmup``.

        The first ``warmup`` candles count as already closed (history for ``candles()``,
        no triggers) and the last price becomes the close of the last of them.
        """
        await self._enter()
        self._market(symbol)
        _check_candles(symbol, candles, warmup)
        async with self.store.write(self.name) as tx:
            await tx.replace_candles(symbol, timeframe, list(candles), warmup)
            if warmup > 0:
                await tx.set_price(symbol, candles[warmup - 1].close, self.clock())

    async def advance(self, symbol: str, n: int = 1) -> AdvanceResult:
        """Replay the next ``n`` candles one at a time: stops fire on each candle's high/low
        (a candle that opens beyond a level fills at its open), then last = close."""
        if n < 1:
            raise ValueError(f"advance: n must be at least 1 (got {n})")
        await self._enter()
        market = self._market(symbol)
        async with self.store.write(self.name) as tx:
            replay = await tx.replay_state(symbol)
            if replay.count == 0:
                raise Rejected(f"{symbol}: no candles loaded on paper exchange {self.name}")
            ahead = await tx.candle_range(symbol, replay.cursor, replay.cursor + n)
            triggered: list[TriggeredStop] = []
            for c in ahead:
                path = engine.candle_path(c.open, c.high, c.low, c.close)
                triggered += await self._trigger(tx, market, path)
                await tx.set_price(symbol, c.close, self.clock())
            cursor = replay.cursor + len(ahead)
            await tx.set_cursor(symbol, cursor)
        return AdvanceResult(len(ahead), replay.count - cursor, triggered)

    # -- faults and records -----------------------------------------------------------------

    async def faults(self) -> FaultSettings:
        """The live fault budgets and rates (shared by every process on the database)."""
        await self._seed()
        async with self.store.read(self.name) as tx:
            return (await self._state(tx)).current

    async def set_faults(
        self,
        *,
        seed: int | None = None,
        stop_silent_fail: int | None = None,
        stop_silent_fail_rate: float | None = None,
        entry_timeout_after_fill: int | None = None,
        reject_rate: float | None = None,
        latency_ms: int | None = None,
    ) -> FaultSettings:
        """Change fault budgets at run time; None leaves a value as it is. A new seed restarts
        the random sequence. Raises ValueError for an out-of-range value."""
        given = {
            "seed": seed,
            "stop_silent_fail": stop_silent_fail,
            "stop_silent_fail_rate": stop_silent_fail_rate,
            "entry_timeout_after_fill": entry_timeout_after_fill,
            "reject_rate": reject_rate,
            "latency_ms": latency_ms,
        }
        changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        await self._seed()
        async with self.store.write(self.name) as tx:
            state = await self._state(tx)
            current = replace(state.current, **changes)
            draws = 0 if seed is not None else state.draws
            await tx.save_fault_state(replace(state, current=current, draws=draws))
        return current

    async def trades(self, symbol: str | None = None, since: float | None = None) -> list[Trade]:
        """Every fill (market orders and triggered stops), oldest first."""
        await self._seed()
        async with self.store.read(self.name) as tx:
            return await tx.trades(symbol, since)

    async def fills(
        self, symbol: str | None = None, since: float | None = None
    ) -> list[models.Fill]:
        """The port's view of ``trades``: every fill, with the order's client id."""
        await self._seed()
        out: list[models.Fill] = []
        async with self.store.read(self.name) as tx:
            for t in await tx.trades(symbol, since):
                order = await tx.find_order(t.symbol, t.order_id, None)
                out.append(
                    models.Fill(
                        symbol=t.symbol,
                        order_id=t.order_id,
                        side=t.side,
                        size=t.size,
                        price=t.price,
                        fee=t.fee,
                        ts=t.ts,
                        reduce_only=t.reduce_only,
                        client_id=order.client_id if order is not None else None,
                        stop_id=t.stop_id,
                    )
                )
        return out

    async def realized_pnl(self, symbol: str | None = None, since: float | None = None) -> float:
        """Realised P&L net of taker fees."""
        return sum(t.realized_pnl - t.fee for t in await self.trades(symbol, since))


def _check_candles(symbol: str, candles: Sequence[Candle], warmup: int) -> None:
    if not 0 <= warmup <= len(candles):
        raise ValueError(f"{symbol}: warmup {warmup} is outside 0..{len(candles)}")
    for i, c in enumerate(candles):
        values = (c.open, c.high, c.low, c.close)
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"{symbol}: candle {i} has a price that is not positive")
        if c.low > min(c.open, c.close) or c.high < max(c.open, c.close):
            raise ValueError(f"{symbol}: candle {i} has high/low that do not contain open/close")
        if i and c.ts <= candles[i - 1].ts:
            raise ValueError(f"{symbol}: candle {i} is not after candle {i - 1}")
