"""Pictures for Telegram: the /pnl equity chart, the /chart position chart, and the position
chart an emergency-close or stop-repair alert carries. Drawing runs in a worker thread (tens to
hundreds of ms of matplotlib) so other commands are answered meanwhile; a picture that cannot
be read or drawn is None and the text goes alone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from bot.charts.model import EquityChartData
from bot.charts.sources import (
    DEFAULT_HOURS,
    ChartSource,
    position_chart_data,
    strategy_timeframes,
)
from bot.config import Config
from bot.services import Account
from trading.logfmt import event

log = logging.getLogger("warden.telegram")
ALERT_CHART_SECONDS = 15.0  # reading and drawing an alert's chart; past this the text goes alone

AlertChart = Callable[[str, str], Awaitable[bytes | None]]  # (scope, symbol) -> PNG
T = TypeVar("T")
# one drawing thread: charts are drawn one at a time anyway (bot.charts.style.LOCK), and
# matplotlib keeps some caches per thread (fonts), which a pool of threads would multiply
_DRAWER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warden-chart")


async def _drawn(fn: Callable[..., T], *args: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(_DRAWER, fn, *args)


def source(acct: Account) -> ChartSource:
    return ChartSource(acct.name, acct.scope, acct.exchange, acct.journal)


def _equity_png_bytes(data: EquityChartData) -> bytes | None:
    from bot.charts.equity import equity_png

    try:
        return equity_png(data)
    except Exception as exc:  # a picture is a nicety: the text reply goes out regardless
        event(log, "telegram.chart_failed", logging.WARNING, error=type(exc).__name__)
        return None


async def equity_png(data: EquityChartData | None) -> bytes | None:
    if data is None:
        return None
    return await _drawn(_equity_png_bytes, data)


async def position_png(acct: Account, symbol: str, hours: float, timeframes: list[str]) -> bytes:
    """The position chart of ``symbol`` on ``acct``; raises ExchangeError when the exchange
    cannot be read (the command says so)."""
    from bot.charts.position import position_png as draw

    data = await position_chart_data(source(acct), symbol, hours, timeframes=timeframes)
    return await _drawn(draw, data)


def alert_chart(
    accounts: Mapping[str, Account],
    config: Config,
    timeout: float = ALERT_CHART_SECONDS,
) -> AlertChart:
    """The notifier's picture for an alert row's (scope, symbol): None (text alone) when the
    account is unknown, the exchange cannot be read, drawing fails, or it takes too long."""

    async def draw(scope: str, symbol: str) -> bytes | None:
        acct = next((a for a in accounts.values() if a.scope == scope), None)
        if acct is None:
            return None
        frames = strategy_timeframes(config, acct.name, symbol)
        try:
            return await asyncio.wait_for(
                position_png(acct, symbol, DEFAULT_HOURS, frames), timeout
            )
        except Exception as exc:
            event(
                log,
                "alert.chart_failed",
                logging.WARNING,
                scope=scope,
                symbol=symbol,
                error=type(exc).__name__,
            )
            return None

    return draw
