"""Replayed market data for paper exchanges: load CSV candles once, advance one per tick."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from bot.config.errors import ConfigError
from bot.config.schema import ReplayConfig
from trading.logfmt import event
from trading.marketdata import CandleFileError, data_filename, read_candles
from trading.paper.core import TriggeredStop
from trading.paper.exchange import PaperExchange

log = logging.getLogger("warden.replay")


def data_path(replay: ReplayConfig, symbol: str, timeframe: str) -> Path:
    if replay.data == "bundled":
        folder = Path(str(resources.files("trading.data")))
    else:
        folder = Path(replay.data)
    return folder / data_filename(symbol, timeframe)


async def prepare(exchange: PaperExchange, replay: ReplayConfig, symbols: dict[str, str]) -> None:
    """Load each symbol's candles unless this exchange already replays them (a restart keeps
    its place: the cursor lives in the database)."""
    for symbol, timeframe in symbols.items():
        if await exchange.candles(symbol, timeframe, limit=1):
            continue
        path = data_path(replay, symbol, timeframe)
        if not path.is_file():
            raise ConfigError(f"replay data for {symbol} {timeframe}: {path} not found")
        try:
            candles = read_candles(path, timeframe)
        except CandleFileError as exc:
            raise ConfigError(str(exc)) from None
        warmup = min(replay.warmup_candles, max(0, len(candles) - 1))
        await exchange.load_candles(symbol, candles, timeframe=timeframe, warmup=warmup)
        event(
            log,
            "replay.loaded",
            exchange=exchange.name,
            symbol=symbol,
            candles=len(candles),
            warmup=warmup,
            source=str(path),
        )


async def tick(exchange: PaperExchange, symbols: list[str]) -> tuple[int, list[TriggeredStop]]:
    """Advance every symbol one candle; returns the fewest candles left and the stops fired."""
    remaining: list[int] = []
    fired: list[TriggeredStop] = []
    for symbol in symbols:
        result = await exchange.advance(symbol)
        remaining.append(result.remaining)
        fired.extend(result.triggered)
    return (min(remaining) if remaining else 0), fired
