"""Chart inputs read from the domain: the exchange port (candles, price, position, stops) and the
journal (when a stop was last read back live, entry and exit fills). Reads only: nothing here
takes the execution lease or writes anywhere."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bot.charts.model import MarkKind, PositionChartData, PositionMark, StopMark, TradeMark
from bot.charts.position import TIMEFRAME_SECONDS
from bot.config import Config
from storage.journal_store import JournalStore
from trading.errors import Rejected
from trading.journal import IntentKind, IntentStatus
from trading.models import Candle, OrderSide, PositionSide
from trading.port import ExchangePort
from trading.protection import shown_stop

DEFAULT_HOURS = 24.0
MAX_HOURS = 720.0  # 30 days
MAX_CANDLES = 300  # OKX serves at most 300 candles per request (GET /api/v5/market/candles)
TARGET_CANDLES = 150  # enough to read the shape, few enough to see each candle on a phone


@dataclass(frozen=True)
class ChartSource:
    """Where one account's chart is read from."""

    name: str  # the configured exchange name
    scope: str
    exchange: ExchangePort
    journal: JournalStore


def timeframe_for(hours: float) -> str:
    """The smallest candle size that shows ``hours`` in at most TARGET_CANDLES candles."""
    for tf, seconds in TIMEFRAME_SECONDS.items():
        if hours * 3600 / seconds <= TARGET_CANDLES:
            return tf
    return "1d"


def strategy_timeframes(config: Config, exchange: str, symbol: str) -> list[str]:
    """The candle sizes of the strategies trading ``symbol`` on ``exchange``: a paper
    exchange's replay serves its own size only."""
    return [
        s.timeframe for s in config.strategies if s.exchange == exchange and symbol in s.symbols
    ]


def check_hours(hours: float) -> float:
    if not math.isfinite(hours) or hours <= 0 or hours > MAX_HOURS:
        raise ValueError(f"hours must be more than 0 and at most {MAX_HOURS:g}, got {hours:g}")
    return hours


async def _candles(
    exchange: ExchangePort, symbol: str, hours: float, hints: Sequence[str]
) -> tuple[str | None, list[Candle]]:
    """The newest candles covering ``hours``. A paper exchange replays one candle size only and
    refuses the others: the strategies' sizes (``hints``), then every size, are tried next."""
    tried: list[str] = []
    for tf in dict.fromkeys([timeframe_for(hours), *hints, *TIMEFRAME_SECONDS]):
        if tf not in TIMEFRAME_SECONDS:
            continue
        limit = min(MAX_CANDLES, math.ceil(hours * 3600 / TIMEFRAME_SECONDS[tf]) + 1)
        try:
            # no ``since``: the newest candles, which for a replay are its recorded dates
            candles = await exchange.candles(symbol, tf, None, limit)
        except Rejected:
            tried.append(tf)
            continue
        return (tf, candles[-limit:]) if candles else (None, [])
    return None, []


async def _trades(
    src: ChartSource, symbol: str, start: float, end: float
) -> tuple[list[TradeMark], int]:
    """The journal's entry and exit fills of ``symbol`` in [start, end], and how many fell
    outside (a replay's candles carry their recorded dates, its fills today's)."""
    marks: list[TradeMark] = []
    for i in await src.journal.intents(src.scope, limit=500):
        if (
            i.symbol == symbol
            and i.kind is IntentKind.ENTRY
            and i.status is IntentStatus.FILLED
            and i.price
        ):
            side = PositionSide.LONG if i.side is OrderSide.BUY else PositionSide.SHORT
            marks.append(TradeMark(i.updated_at, i.price, MarkKind.ENTRY, side, i.filled or i.size))
    for e in await src.journal.exits(src.scope):
        if e.symbol == symbol:
            marks.append(TradeMark(e.at, e.exit_price, MarkKind.EXIT, e.side, e.size))
    inside = sorted((m for m in marks if start <= m.ts <= end), key=lambda m: m.ts)
    return inside, len(marks) - len(inside)


async def position_chart_data(
    src: ChartSource,
    symbol: str,
    hours: float = DEFAULT_HOURS,
    *,
    timeframes: Sequence[str] = (),
    now: float | None = None,
) -> PositionChartData:
    """Everything the position chart shows, read now. Raises ExchangeError when the exchange
    cannot be read."""
    now = time.time() if now is None else now
    exchange = src.exchange
    positions = [p for p in await exchange.positions(symbol) if p.symbol == symbol]
    last = (await exchange.ticker(symbol)).last
    timeframe, candles = await _candles(exchange, symbol, hours, timeframes)
    notes: list[str] = []
    position = stop = None
    if positions:
        p = positions[0]
        position = PositionMark(
            p.side, p.size, p.entry_price, p.unrealized_pnl, p.liquidation_price
        )
        shown = shown_stop(p, await exchange.open_stops(symbol))
        if shown is None:
            notes.append("NO STOP on the exchange")
        else:
            verified = None
            for rec in await src.journal.stops_for(src.scope, symbol):
                if rec.exchange_id == shown.id:
                    verified = rec.verified_at
                    break
            stop = StopMark(shown.trigger_price, shown.state, verified, shown.placed_by_warden)
    start, end = now - hours * 3600, now
    if candles and timeframe:
        start = candles[0].ts
        last_close = candles[-1].ts + TIMEFRAME_SECONDS[timeframe]
        if last_close < now - 2 * TIMEFRAME_SECONDS[timeframe] - 3600:
            # a replay: its candles carry their recorded dates, not today's
            end = last_close
            notes.append("replayed candles (recorded dates)")
    trades, outside = await _trades(src, symbol, start, end)
    if outside:
        notes.append(f"{outside} fill(s) outside these candles' dates not marked")
    return PositionChartData(
        exchange=src.name,
        symbol=symbol,
        timeframe=timeframe,
        candles=tuple(candles),
        last_price=last,
        now=now,
        position=position,
        stop=stop,
        trades=tuple(trades),
        notes=tuple(notes),
    )
