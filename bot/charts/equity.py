"""The P&L picture (/pnl, `warden pnl --png`): equity over time, one line per exchange, each
with its drawdown below the running peak shaded."""

from __future__ import annotations

from itertools import accumulate
from typing import TYPE_CHECKING

from bot.charts import style
from bot.charts.model import EquityChartData, EquitySeries

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _series(ax: Axes, s: EquitySeries, color: str, shade: str) -> None:
    times = style.x([t for t, _ in s.points])
    values = [v for _, v in s.points]
    peaks = list(accumulate(values, max))
    label = f"{s.label} ({s.currency})" if s.currency else s.label
    # equity moves at each exit: a step, not a slope between exits
    (line,) = ax.plot(times, values, color=color, linewidth=style.LINE, label=label)
    line.set_drawstyle("steps-post")
    line.set_gid(f"equity:{s.label}")
    band = ax.fill_between(
        times,
        values,
        peaks,
        where=[v < p for v, p in zip(values, peaks, strict=True)],
        step="post",
        color=shade,
        alpha=0.22,
        linewidth=0,
    )
    band.set_gid(f"drawdown:{s.label}")
    ax.annotate(
        style.num(values[-1]),
        (times[-1], values[-1]),
        xytext=(6, 0),
        textcoords="offset points",
        va="center",
        fontsize=style.FONT - 1,
        color=color,
    )


def figure_equity(data: EquityChartData) -> Figure:
    series = [s for s in data.series if s.points]
    if not series:
        raise ValueError("an equity chart needs at least one series with points")
    fig, (ax,) = style.new_figure()
    several = len(series) > 1
    for i, s in enumerate(series):
        color = style.SERIES[i % len(style.SERIES)]
        _series(ax, s, color, color if several else style.DRAWDOWN)
    currencies = {s.currency for s in series if s.currency}
    ax.set_ylabel(
        "equity" + (f" ({currencies.pop()})" if len(currencies) == 1 else ""), fontsize=style.FONT
    )
    style.price_axis(ax)
    style.time_axis(ax)
    ax.margins(x=0.06)
    from matplotlib.patches import Patch

    handles, _ = ax.get_legend_handles_labels()
    shade = Patch(color=style.DRAWDOWN if not several else "#999999", alpha=0.3)
    ax.legend(
        [*handles, shade],
        [*(str(h.get_label()) for h in handles), "drawdown from peak"],
        fontsize=style.FONT - 2,
        loc="best",
    )
    style.title(fig, data.title)
    return fig


def equity_png(data: EquityChartData) -> bytes:
    with style.LOCK:
        return style.png(figure_equity(data))
