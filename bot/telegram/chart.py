"""The /pnl equity-curve picture (``bot.charts``), drawn off the event loop."""

from __future__ import annotations

import asyncio
import logging

from bot.charts import equity_chart
from trading.logfmt import event

log = logging.getLogger("warden.telegram")


def equity_png_bytes(points: list[tuple[float, float]]) -> bytes | None:
    """PNG bytes of the curve; None (text only) when it cannot be drawn."""
    if len(points) < 2:
        return None
    try:
        return equity_chart(points).png()
    except Exception as exc:  # a picture is a nicety: the text reply goes out regardless
        event(log, "telegram.chart_failed", logging.WARNING, error=type(exc).__name__)
        return None


async def equity_png(points: list[tuple[float, float]]) -> bytes | None:
    # drawing is pure Python (tens of ms): a thread keeps other commands answered meanwhile
    return await asyncio.to_thread(equity_png_bytes, points)
