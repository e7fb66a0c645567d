"""Equity series from realised P&L and today's equity: the one `warden pnl --png` and /pnl
both draw."""

from __future__ import annotations

from collections.abc import Iterable

from bot.charts.model import Point


def anchored_equity(
    steps: Iterable[tuple[float, float]], equity_now: float, since: float, now: float
) -> tuple[Point, ...]:
    """(time, equity) from (close time, net P&L) steps, anchored so that it ends at today's
    equity: it starts at ``equity_now`` minus the period's realised P&L, moves at each close,
    and its last step (the last close to now) is unrealised P&L, funding and transfers."""
    ordered = sorted(steps)
    level = equity_now - sum(pnl for _, pnl in ordered)
    points: list[Point] = [(since, level)]
    for at, pnl in ordered:
        level += pnl
        points.append((at, level))
    points.append((now, equity_now))
    return tuple(points)


def cumulative_pnl(steps: Iterable[tuple[float, float]], since: float) -> tuple[Point, ...]:
    """From zero: for an account whose equity could not be read."""
    points: list[Point] = [(since, 0.0)]
    total = 0.0
    for at, pnl in sorted(steps):
        total += pnl
        points.append((at, total))
    return tuple(points)
