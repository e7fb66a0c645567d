"""Telegram HTML rendering: short lines for a phone, everything from data escaped.

Every tag opens and closes on one line, so a message can be split at any line boundary and
each part is still valid HTML. Telegram's limit (4,096) counts UTF-16 code units of the text
after entity parsing; the raw HTML length measured here is never below that, so a part within
the limit here is within Telegram's.
"""

from __future__ import annotations

import html
import math
import time

LIMIT = 4096
# sendPhoto: "Photo caption ..., 0-1024 characters after entities parsing"
# (https://core.telegram.org/bots/api#sendphoto); measured on the raw HTML, as LIMIT is
CAPTION_LIMIT = 1024
TRUNCATED = "… (truncated)"


def esc(value: object) -> str:
    return html.escape(str(value), quote=False)


def b(value: object) -> str:
    return f"<b>{esc(value)}</b>"


def code(value: object) -> str:
    return f"<code>{esc(value)}</code>"


def num(x: float | None) -> str:
    """A price or size without float noise: 69060.0 -> 69,060; 0.00095 -> 0.00095."""
    if x is None or not math.isfinite(x):
        return "?"
    text = f"{x:,.8f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def money(x: float) -> str:
    return f"{x:+,.2f}"


def utc(ts: float | None) -> str:
    if ts is None:
        return "never"
    return time.strftime("%H:%M:%SZ", time.gmtime(ts))


def utc_day(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%MZ", time.gmtime(ts))


def ago(ts: float | None, now: float | None = None) -> str:
    if ts is None:
        return "never"
    seconds = max(0.0, (now if now is not None else time.time()) - ts)
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f}h ago"
    return f"{seconds / 86400:.1f}d ago"


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _hard_split(line: str, limit: int) -> list[str]:
    parts: list[str] = []
    while _units(line) > limit:
        cut = limit
        while _units(line[:cut]) > limit:
            cut -= 1
        # do not cut inside an HTML entity such as &amp;
        amp = line.rfind("&", max(0, cut - 8), cut)
        if amp != -1 and ";" not in line[amp:cut]:
            cut = amp
        parts.append(line[:cut])
        line = line[cut:]
    parts.append(line)
    return parts


def split_message(text: str, limit: int = LIMIT) -> list[str]:
    """Parts of at most ``limit`` units, split on line boundaries (a longer line is cut)."""
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.split("\n"):
        for piece in _hard_split(line, limit):
            extra = _units(piece) + (1 if current else 0)
            if current and size + extra > limit:
                parts.append("\n".join(current))
                current, size = [], 0
                extra = _units(piece)
            current.append(piece)
            size += extra
    if current:
        parts.append("\n".join(current))
    return [p for p in parts if p.strip()] or ["(empty)"]


def fits_caption(text: str) -> bool:
    return _units(text) <= CAPTION_LIMIT


def trim(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` units, saying so: whole lines, then as much of the next one as
    fits when it carries no tag (cutting inside a tag would break the HTML)."""
    if _units(text) <= limit:
        return text
    room = limit - _units(TRUNCATED) - 1
    kept: list[str] = []
    size = 0
    for line in text.split("\n"):
        extra = _units(line) + (1 if kept else 0)
        if size + extra <= room:
            kept.append(line)
            size += extra
            continue
        left = room - size - (1 if kept else 0)
        if left > 0 and "<" not in line:
            kept.append(_hard_split(line, left)[0])
        break
    return "\n".join(kept) + "\n" + TRUNCATED


def truncate(text: str, limit: int = LIMIT) -> str:
    """One part only (an alert): cut on a line boundary and say so."""
    parts = split_message(text, limit - _units(TRUNCATED) - 1)
    return parts[0] if len(parts) == 1 else parts[0] + "\n" + TRUNCATED


ICONS = {"critical": "🚨", "warning": "⚠️", "info": "ℹ️"}


def alert_html(severity: str, text: str, created_at: float, repeat: int = 0) -> str:
    head = f"{ICONS.get(severity, '•')} {b(severity.upper())} {esc(utc(created_at))}"
    if repeat:
        head += f" · repeat {repeat}, not acknowledged"
    return truncate(head + "\n" + esc(text))
