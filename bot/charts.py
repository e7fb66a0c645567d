"""Equity-curve charts as PNG files, written with zlib and struct only (no imaging library).

``equity_png(path, points)`` draws a line chart of (time, equity) points: the curve, the start
level dashed, light grid lines, the running drawdown shaded, and small labels (highest and
lowest equity, first and last date) in a built-in 3x5 pixel font. Used by ``warden backtest
--png`` and meant for /pnl as well.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)
GRID: RGB = (228, 231, 236)
AXIS: RGB = (120, 126, 136)
LINE: RGB = (31, 99, 200)
START: RGB = (150, 150, 150)
DRAWDOWN: RGB = (250, 214, 214)
TEXT: RGB = (60, 64, 72)

# 3x5 glyphs, one string of 15 pixels per character, row by row
_FONT = {
    "0": "111101101101111",
    "1": "010110010010111",
    "2": "111001111100111",
    "3": "111001111001111",
    "4": "101101111001001",
    "5": "111100111001111",
    "6": "111100111101111",
    "7": "111001010010010",
    "8": "111101111101111",
    "9": "111101111001111",
    "-": "000000111000000",
    "+": "000010111010000",
    ".": "000000000000010",
    ",": "000000000010100",
    ":": "000010000010000",
    " ": "000000000000000",
}
SCALE = 2
MARGIN = 14


class Canvas:
    def __init__(self, width: int, height: int, background: RGB = WHITE) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray(bytes(background) * (width * height))

    def set(self, x: int, y: int, color: RGB) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i : i + 3] = bytes(color)

    def vline(self, x: int, y0: int, y1: int, color: RGB) -> None:
        for y in range(min(y0, y1), max(y0, y1) + 1):
            self.set(x, y, color)

    def hline(self, y: int, x0: int, x1: int, color: RGB, dash: int = 0) -> None:
        for x in range(min(x0, x1), max(x0, x1) + 1):
            if not dash or (x // dash) % 2 == 0:
                self.set(x, y, color)

    def text(self, x: int, y: int, text: str, color: RGB = TEXT) -> None:
        """Draw ``text`` with its top-left corner at (x, y); unknown characters are blanks."""
        for n, ch in enumerate(text):
            glyph = _FONT.get(ch, _FONT[" "])
            for k, bit in enumerate(glyph):
                if bit == "1":
                    gx, gy = x + (n * 4 + k % 3) * SCALE, y + (k // 3) * SCALE
                    for dx in range(SCALE):
                        for dy in range(SCALE):
                            self.set(gx + dx, gy + dy, color)

    def png(self) -> bytes:
        return png_bytes(self.width, self.height, bytes(self.pixels))


def text_width(text: str) -> int:
    return len(text) * 4 * SCALE


def png_bytes(width: int, height: int, rgb: bytes) -> bytes:
    """An 8-bit RGB PNG of ``rgb`` (rows top to bottom, 3 bytes per pixel)."""
    if len(rgb) != width * height * 3:
        raise ValueError(f"expected {width * height * 3} bytes of RGB, got {len(rgb)}")
    stride = width * 3
    raw = b"".join(b"\x00" + rgb[y * stride : (y + 1) * stride] for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def _money(x: float) -> str:
    return f"{x:.2f}"


def _date(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def equity_chart(
    points: Sequence[tuple[float, float]], width: int = 900, height: int = 320
) -> Canvas:
    if not points:
        raise ValueError("an equity chart needs at least one point")
    c = Canvas(width, height)
    values = [v for _, v in points]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    label_w = text_width(_money(max(abs(lo), abs(hi)) * -1)) + 8
    left, right = MARGIN + label_w, width - MARGIN
    top, bottom = MARGIN, height - MARGIN - 5 * SCALE - 8
    plot_w, plot_h = right - left, bottom - top

    def y_of(v: float) -> int:
        return bottom - round((v - lo) / (hi - lo) * plot_h)

    for k in range(5):
        c.hline(top + k * plot_h // 4, left, right, GRID)
    c.hline(y_of(values[0]), left, right, START, dash=4)
    # columns: each pixel column covers a run of points (min..max), drawdown shaded to the peak
    n = len(values)
    peak = values[0]
    prev: int | None = None
    for x in range(plot_w + 1):
        a = x * n // (plot_w + 1)
        b = max(a + 1, (x + 1) * n // (plot_w + 1))
        chunk = values[a:b]
        peak = max(peak, *chunk)
        low, high = y_of(min(chunk)), y_of(max(chunk))
        if y_of(peak) < high:
            c.vline(left + x, y_of(peak), high - 1, DRAWDOWN)
        if prev is not None:
            low, high = max(low, prev), min(high, prev)
        c.vline(left + x, low, high, LINE)
        prev = y_of(chunk[-1])
    c.vline(left, top, bottom, AXIS)
    c.hline(bottom, left, right, AXIS)
    c.text(MARGIN, y_of(hi) - SCALE * 2, _money(hi))
    c.text(MARGIN, y_of(lo) - SCALE * 2, _money(lo))
    c.text(left, bottom + 6, _date(points[0][0]))
    last = _date(points[-1][0])
    c.text(right - text_width(last), bottom + 6, last)
    return c


def equity_png(path: str | Path, points: Sequence[tuple[float, float]]) -> None:
    """Write the equity chart of (time, equity) points to ``path`` as a PNG."""
    Path(path).write_bytes(equity_chart(points).png())
