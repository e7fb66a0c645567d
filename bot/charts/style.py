"""Size, fonts, colours and the PNG step shared by every chart.

A chart is 1280x720 pixels: Telegram scales a photo's longest side down to 1280, so nothing is
resampled, and the fonts are large enough to read on a phone after its JPEG compression. Times
are UTC on every axis.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import io
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WIDTH_IN, HEIGHT_IN, DPI = 12.8, 7.2, 100  # 1280 x 720 px
FONT = 15
TITLE = 17
LINE = 2.2

UP = "#1a9e5a"
DOWN = "#d1403c"
PRICE = "#1f63c8"
ENTRY = "#444b55"
STOP_LIVE = "#d1403c"
STOP_OTHER = "#e08a00"  # a stop not in effect (failed, paused, triggered, canceled)
LIQUIDATION = "#7a2cbf"
DRAWDOWN = "#d1403c"
SERIES = ["#1f63c8", "#e08a00", "#1a9e5a", "#7a2cbf", "#444b55", "#c23b8e"]

# matplotlib's font cache and text layout are not documented as thread-safe; charts are drawn
# in worker threads (off the event loop), one at a time
LOCK = threading.Lock()


def new_figure(rows: int = 1, ratios: Sequence[float] | None = None) -> tuple[Figure, list[Axes]]:
    """A figure on the Agg canvas (no display, no pyplot state to leak) with ``rows`` axes that
    share the time axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    grid: dict[str, Any] = {"height_ratios": list(ratios)} if ratios else {}
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False, gridspec_kw=grid)[:, 0]
    for ax in axes:
        ax.grid(True, color="#e4e7ec", linewidth=0.8)
        ax.tick_params(labelsize=FONT - 2)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return fig, list(axes)


def to_dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def x(ts: Sequence[float]) -> list[float]:
    """Epoch seconds as matplotlib date numbers (days since its epoch): the x of every chart."""
    from matplotlib.dates import date2num

    return [float(v) for v in date2num([to_dt(t) for t in ts])]


def utc_labels(values: Sequence[float]) -> list[str]:
    """Tick labels in UTC: the time of day, with the date under the first tick and under each
    tick where the day changes (so no two ticks read alike and the day is never guessed); the
    date alone when every tick falls on midnight, the year under the first."""
    from matplotlib.dates import num2date

    moments = [num2date(v, tz=UTC) for v in values]
    intraday = any(m.hour or m.minute for m in moments)
    labels: list[str] = []
    day = None
    for i, m in enumerate(moments):
        date = m.strftime("%d %b")
        if intraday:
            label = m.strftime("%H:%M") + (f"\n{date}" if date != day else "")
        else:
            label = date + (f"\n{m.year}" if i == 0 else "")
        labels.append(label)
        day = date
    return labels


def time_axis(ax: Axes, label: str = "time (UTC)") -> None:
    from matplotlib.dates import AutoDateLocator
    from matplotlib.ticker import Formatter

    class UtcFormatter(Formatter):
        def __call__(self, x: float, pos: int | None = None) -> str:
            return utc_labels([x])[0]

        def format_ticks(self, values: Any) -> list[str]:
            return utc_labels(list(values))

    ax.xaxis_date(tz=UTC)
    ax.xaxis.set_major_locator(AutoDateLocator(tz=UTC, minticks=4, maxticks=9))
    ax.xaxis.set_major_formatter(UtcFormatter())
    ax.set_xlabel(label, fontsize=FONT)


def price_axis(ax: Axes) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: num(y)))


def title(fig: Figure, text: str, subtitle: str = "") -> None:
    fig.suptitle(text, fontsize=TITLE, fontweight="bold")
    if subtitle:
        fig.axes[0].set_title(subtitle, fontsize=FONT - 2, color="#555b66", loc="left")


def num(x: float) -> str:
    """A price or size as people read it: no float noise, thousands separated."""
    if abs(x) >= 1000:
        return f"{x:,.2f}".rstrip("0").rstrip(".")
    return f"{x:.8g}"


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    fig.clear()
    _give_back_memory()
    return buf.getvalue()


@functools.cache
def _malloc_trim() -> Any:
    """glibc's malloc_trim, or None elsewhere (musl, macOS)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _give_back_memory() -> None:
    """A chart's buffers (the 1280x720 RGBA canvas, text layouts) are freed after each draw,
    but glibc keeps the freed heap: measured, a daemon sat at ~165 MB after 100 charts and
    drops back by ~48 MB once the heap is trimmed (docs/benchmarks.md, charts)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
