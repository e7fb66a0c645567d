"""The position picture (`warden chart`, /chart, and the photo on an emergency-close or
stop-repair alert): candles, the last price, the entry, the stop with its state and when it was
last read back live, the liquidation price where the exchange reports one, and the journal's
entry and exit fills."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bot.charts import style
from bot.charts.model import MarkKind, PositionChartData, StopMark
from trading.models import PositionSide, StopState

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

TIMEFRAME_SECONDS = {
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "4h": 14_400,
    "1d": 86_400,
}
FAR = 2.0  # a liquidation further than this many times the plotted range is written, not drawn


def ago(ts: float, now: float) -> str:
    s = max(0.0, now - ts)
    if s < 120:
        span = f"{s:.0f} s"
    elif s < 7200:
        span = f"{s / 60:.0f} min"
    elif s < 172_800:
        span = f"{s / 3600:.1f} h"
    else:
        span = f"{s / 86_400:.0f} d"
    return f"{span} ago ({time.strftime('%H:%M:%S', time.gmtime(ts))} UTC)"


def stop_label(stop: StopMark, now: float) -> str:
    head = f"stop {style.num(stop.level)} · {stop.state.value.upper()}"
    if not stop.placed_by_warden:
        return head + " · your own (set on the venue)"
    if stop.verified_at is None:
        return head + " · never read back live"
    return head + f" · verified live {ago(stop.verified_at, now)}"


def title_text(d: PositionChartData) -> str:
    head = f"{d.exchange} · {d.symbol}"
    p = d.position
    if p is None:
        return head + " · no position"
    sign = "+" if p.unrealized_pnl >= 0 else ""
    return (
        f"{head} · {p.side.value.upper()} {style.num(p.size)} · uPnL {sign}{p.unrealized_pnl:,.2f}"
    )


def _candles(ax: Axes, d: PositionChartData) -> None:
    width = TIMEFRAME_SECONDS.get(d.timeframe or "", 1800) / 86_400 * 0.7  # in days
    times = style.x([c.ts for c in d.candles])
    colors = [style.UP if c.close >= c.open else style.DOWN for c in d.candles]
    wicks = ax.vlines(
        times,
        [c.low for c in d.candles],
        [c.high for c in d.candles],
        colors=colors,
        linewidth=1.2,
    )
    wicks.set_gid("wicks")
    ax.bar(
        times,
        [max(abs(c.close - c.open), 1e-12) for c in d.candles],
        bottom=[min(c.open, c.close) for c in d.candles],
        width=width,
        color=colors,
        align="center",
        label="_candles",  # underscore: kept out of the legend
    )


def _level(ax: Axes, y: float, label: str, color: str, gid: str, style_: str) -> None:
    line = ax.axhline(y, color=color, linewidth=style.LINE, linestyle=style_)
    line.set_gid(gid)
    ax.annotate(
        label,
        (0.01, y),
        xycoords=ax.get_yaxis_transform(),
        xytext=(0, 4),
        textcoords="offset points",
        fontsize=style.FONT - 1,
        color=color,
        va="bottom",
        bbox={
            "boxstyle": "round,pad=0.15",
            "facecolor": "white",
            "edgecolor": "none",
            "alpha": 0.8,
        },
    ).set_gid(f"{gid}-label")


def figure_position(d: PositionChartData) -> Figure:
    fig, (ax,) = style.new_figure()
    if d.candles:
        _candles(ax, d)
    levels: list[float] = [c.high for c in d.candles] + [c.low for c in d.candles]
    if d.last_price is not None:
        levels.append(d.last_price)
        _level(ax, d.last_price, f"last {style.num(d.last_price)}", style.PRICE, "price", ":")
    p = d.position
    if p is not None:
        levels.append(p.entry)
        side = "long" if p.side is PositionSide.LONG else "short"
        _level(ax, p.entry, f"entry {style.num(p.entry)} ({side})", style.ENTRY, "entry", "--")
    if d.stop is not None:
        levels.append(d.stop.level)
        color = style.STOP_LIVE if d.stop.state is StopState.LIVE else style.STOP_OTHER
        _level(ax, d.stop.level, stop_label(d.stop, d.now), color, "stop", "-")
    for kind, marker in ((MarkKind.ENTRY, "o"), (MarkKind.EXIT, "X")):
        marks = [t for t in d.trades if t.kind is kind]
        if not marks:
            continue
        buys = [
            (t.side is PositionSide.LONG) == (kind is MarkKind.ENTRY) for t in marks
        ]  # a long's entry and a short's exit are buys
        dots = ax.scatter(
            style.x([t.ts for t in marks]),
            [t.price for t in marks],
            s=110,
            marker=marker,
            c=[style.UP if b else style.DOWN for b in buys],
            edgecolors="black",
            linewidths=1.0,
            zorder=5,
            label=f"{kind.value} fill (buy green, sell red)",
        )
        dots.set_gid(f"{kind.value}s")
        levels += [t.price for t in marks]
    if not levels:
        ax.text(
            0.5, 0.5, "no price data", transform=ax.transAxes, ha="center", fontsize=style.TITLE
        )
    else:
        low, high = min(levels), max(levels)
        pad = (high - low) * 0.06 or abs(high) * 0.01 or 1.0
        low, high = low - pad, high + pad
        liq = p.liquidation if p is not None else None
        if liq is not None:
            if min(abs(liq - low), abs(liq - high)) <= FAR * (high - low) or low <= liq <= high:
                low, high = min(low, liq - pad), max(high, liq + pad)
                _level(
                    ax, liq, f"liquidation {style.num(liq)}", style.LIQUIDATION, "liquidation", "-."
                )
            else:
                assert p is not None  # liq comes from the position
                ref = d.last_price or p.entry
                ax.text(
                    0.99,
                    0.02 if liq < low else 0.96,
                    f"liquidation {style.num(liq)} ({(liq - ref) / ref:+.1%}, off the chart)",
                    transform=ax.transAxes,
                    ha="right",
                    fontsize=style.FONT - 1,
                    color=style.LIQUIDATION,
                ).set_gid("liquidation-label")
        ax.set_ylim(low, high)
    if d.trades:  # below the plot: inside it, it would cover candles or level labels
        fig.legend(fontsize=style.FONT - 3, loc="outside lower left", ncols=2, frameon=False)
    ax.set_ylabel("price", fontsize=style.FONT)
    style.price_axis(ax)
    if d.candles or d.trades:
        style.time_axis(ax)
    else:
        ax.set_xticks([])
        ax.set_xlabel(
            f"no candles · {time.strftime('%Y-%m-%d %H:%M', time.gmtime(d.now))} UTC",
            fontsize=style.FONT,
        )
    what = f"{d.timeframe} candles" if d.candles else "no candles served"
    sub = " · ".join([what, *d.notes])
    style.title(fig, title_text(d), sub)
    return fig


def position_png(d: PositionChartData) -> bytes:
    with style.LOCK:
        return style.png(figure_position(d))
