"""The backtest picture (`warden backtest --png`): equity with each trade's exit marked (green
won, red lost), the drawdown below it, and a title naming the strategies, their parameters and
the data, which says SYNTHETIC when the candles were generated."""

from __future__ import annotations

import bisect
from itertools import accumulate
from typing import TYPE_CHECKING

from bot.charts import style
from bot.charts.model import BacktestChartData

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def title_text(d: BacktestChartData) -> str:
    head = "Backtest · " + "; ".join(d.strategies)
    return head + (" · SYNTHETIC DATA" if d.synthetic else "")


def equity_at(curve: tuple[tuple[float, float], ...], ts: float) -> float:
    """The equity at ``ts``: the last point at or before it (the first one before the start)."""
    i = bisect.bisect_right([t for t, _ in curve], ts) - 1
    return curve[max(i, 0)][1]


def figure_backtest(d: BacktestChartData) -> Figure:
    if not d.curve:
        raise ValueError("a backtest chart needs at least one equity point")
    fig, (ax, dd_ax) = style.new_figure(2, ratios=(3, 1))
    times = style.x([t for t, _ in d.curve])
    values = [v for _, v in d.curve]
    (line,) = ax.plot(times, values, color=style.PRICE, linewidth=style.LINE, label="equity")
    line.set_gid("equity")
    start = ax.axhline(
        values[0],
        color="#999999",
        linestyle="--",
        linewidth=1.2,
        label=f"start {style.num(values[0])}",
    )
    start.set_gid("start")
    for won, color, marker in ((True, style.UP, "^"), (False, style.DOWN, "v")):
        trips = [t for t in d.trades if (t.pnl > 0) == won]
        if not trips:
            continue
        dots = ax.scatter(
            style.x([t.exit_at for t in trips]),
            [equity_at(d.curve, t.exit_at) for t in trips],
            marker=marker,
            s=70,
            color=color,
            edgecolors="black",
            linewidths=0.6,
            zorder=5,
            label=f"{'won' if won else 'lost'} ({len(trips)})",
        )
        dots.set_gid("won" if won else "lost")
    ax.set_ylabel("equity", fontsize=style.FONT)
    style.price_axis(ax)
    ax.legend(fontsize=style.FONT - 3, loc="best")
    peaks = list(accumulate(values, max))
    drawdown = [(v - p) / p * 100 if p else 0.0 for v, p in zip(values, peaks, strict=True)]
    band = dd_ax.fill_between(times, drawdown, 0, color=style.DRAWDOWN, alpha=0.35, linewidth=0)
    band.set_gid("drawdown")
    dd_ax.set_ylabel("drawdown %", fontsize=style.FONT)
    dd_ax.set_ylim(top=0.0, bottom=min(min(drawdown) * 1.1, -0.1))
    style.time_axis(dd_ax)
    style.title(fig, title_text(d), "data: " + "; ".join(d.data))
    return fig


def backtest_png(d: BacktestChartData) -> bytes:
    with style.LOCK:
        return style.png(figure_backtest(d))
