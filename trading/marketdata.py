"""Candle files for replay, timeframes, and which candles are closed.

The replay CSV format (one file per symbol and timeframe, oldest candle first)::

    timestamp,open,high,low,close,volume
    2026-01-01T00:00:00Z,69060.0,69120.5,69011.2,69087.3,41.2345

- The header line is required, exactly these six columns in this order.
- ``timestamp`` is the candle's OPEN time: ISO-8601 with a timezone (``Z`` or ``+00:00``; other
  offsets are converted to UTC) or epoch seconds. Written as ISO-8601 UTC with ``Z``.
- Prices are positive finite numbers with low <= open, close <= high; volume is >= 0.
- Timestamps strictly increase; with a timeframe given, each is a multiple of it (UTC-aligned).

The reader checks every row and reports all problems (up to ``MAX_REPORTED``) as
``file:line: reason``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from trading.models import Candle

TIMEFRAMES: dict[str, int] = {
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "4h": 14_400,
    "1d": 86_400,
}
CSV_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
HEADER = ",".join(CSV_COLUMNS)
MAX_REPORTED = 20
_MS_THRESHOLD = 1e11  # an epoch above this (year 5138) in seconds is surely milliseconds


def timeframe_seconds(timeframe: str | int) -> int:
    """Seconds in a timeframe name ("30m" -> 1800); an int is checked and returned."""
    if isinstance(timeframe, int) and timeframe in TIMEFRAMES.values():
        return timeframe
    if isinstance(timeframe, str) and timeframe in TIMEFRAMES:
        return TIMEFRAMES[timeframe]
    raise ValueError(f"unsupported timeframe {timeframe!r} (supported: {', '.join(TIMEFRAMES)})")


def timeframe_name(seconds: int) -> str:
    """The name of a timeframe in seconds (1800 -> "30m")."""
    for name, value in TIMEFRAMES.items():
        if value == seconds:
            return name
    raise ValueError(
        f"no supported timeframe lasts {seconds} s (supported: {', '.join(TIMEFRAMES)})"
    )


def close_time(candle: Candle, timeframe: str | int) -> float:
    return candle.ts + timeframe_seconds(timeframe)


def closed_candles(candles: Sequence[Candle], now: float, timeframe: str | int) -> list[Candle]:
    """The candles whose close time (open + timeframe) is at or before ``now``.

    ``candles`` are oldest first, so the closed ones are a prefix; the candle still forming (as
    exchanges return it last) is left out.
    """
    cutoff = now - timeframe_seconds(timeframe)
    return list(candles[: bisect.bisect_right(candles, cutoff, key=lambda c: c.ts)])


def data_filename(symbol: str, timeframe: str) -> str:
    """The replay file name of a symbol: "BTC/USDT:USDT", "30m" -> "BTC-USDT-USDT_30m.csv"."""
    timeframe_seconds(timeframe)
    return symbol.replace("/", "-").replace(":", "-") + f"_{timeframe}.csv"


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str


class CandleFileError(ValueError):
    """One or more bad lines; ``str()`` lists them as ``file:line: reason``."""

    def __init__(self, source: str, errors: list[RowError], more: int = 0) -> None:
        self.source = source
        self.errors = errors
        lines = [f"{source}:{e.line}: {e.reason}" for e in errors]
        if more:
            lines.append(f"{source}: ... and {more} more bad lines")
        super().__init__("\n".join(lines))


def parse_timestamp(text: str) -> float:
    """ISO-8601 with a timezone, or epoch seconds, to epoch seconds."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"timestamp {text!r} is not a valid epoch time")
        if value >= _MS_THRESHOLD:
            raise ValueError(f"timestamp {text!r} looks like epoch milliseconds; write seconds")
        return value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"timestamp {text!r} is neither ISO-8601 nor epoch seconds") from None
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no timezone; write UTC as {text}Z")
    return moment.timestamp()


def format_timestamp(ts: float) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    spec = "seconds" if ts == int(ts) else "microseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def _number(text: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{column} {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{column} is {text.strip()!r}; must be a finite number")
    return value


def parse_row(fields: list[str], step: int | None) -> Candle:
    if len(fields) != len(CSV_COLUMNS):
        raise ValueError(f"expected {len(CSV_COLUMNS)} columns ({HEADER}), got {len(fields)}")
    ts = parse_timestamp(fields[0])
    o, h, low, c, v = (_number(t, col) for t, col in zip(fields[1:], CSV_COLUMNS[1:], strict=True))
    for value, column in ((o, "open"), (h, "high"), (low, "low"), (c, "close")):
        if value <= 0:
            raise ValueError(f"{column} {value!r} must be > 0")
    if v < 0:
        raise ValueError(f"volume {v!r} must be >= 0")
    if h < low:
        raise ValueError(f"high {h!r} is below low {low!r}")
    if not low <= min(o, c) <= max(o, c) <= h:
        raise ValueError(f"open {o!r} and close {c!r} must lie within low {low!r}..high {h!r}")
    if step is not None and ts % step:
        raise ValueError(f"timestamp {fields[0].strip()} is not aligned to the {step} s timeframe")
    return Candle(ts, o, h, low, c, v)


def parse_candles(
    lines: Iterable[str], source: str = "<candles>", timeframe: str | None = None
) -> list[Candle]:
    """Candles from the lines of a replay CSV; raises ``CandleFileError`` listing bad lines."""
    step = timeframe_seconds(timeframe) if timeframe is not None else None
    errors: list[RowError] = []
    candles: list[Candle] = []
    header_seen = False
    for number, raw in enumerate(lines, start=1):
        line = raw.strip().lstrip("\ufeff") if number == 1 else raw.strip()
        if not line:
            continue
        if not header_seen:
            header_seen = True
            if [f.strip().lower() for f in line.split(",")] != list(CSV_COLUMNS):
                errors.append(RowError(number, f"expected the header {HEADER!r}, got {line!r}"))
                break
            continue
        try:
            candle = parse_row(line.split(","), step)
        except ValueError as exc:
            errors.append(RowError(number, str(exc)))
            continue
        if candles and candle.ts <= candles[-1].ts:
            prev = format_timestamp(candles[-1].ts)
            errors.append(
                RowError(number, f"timestamp {format_timestamp(candle.ts)} is not after {prev}")
            )
            continue
        candles.append(candle)
    if not header_seen:
        errors.append(RowError(1, f"empty file; expected the header {HEADER!r}"))
    elif not candles and not errors:
        errors.append(RowError(1, "no candles after the header"))
    if errors:
        raise CandleFileError(source, errors[:MAX_REPORTED], max(0, len(errors) - MAX_REPORTED))
    return candles


def read_candles(path: str | Path, timeframe: str | None = None) -> list[Candle]:
    """Read and validate a replay CSV file."""
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as fh:
        return parse_candles(fh, str(path), timeframe)


# --- writing ----------------------------------------------------------------------------------


def format_candles(candles: Iterable[Candle]) -> str:
    """The replay CSV text of candles (``repr`` floats: reading it back gives the same values)."""
    rows = [HEADER]
    for c in candles:
        values = (c.open, c.high, c.low, c.close, c.volume)
        rows.append(",".join([format_timestamp(c.ts), *(repr(float(v)) for v in values)]))
    return "\n".join(rows) + "\n"


def write_candles(path: str | Path, candles: Iterable[Candle]) -> None:
    """Write candles as a replay CSV (LF line endings, UTF-8), replacing the file."""
    Path(path).write_text(format_candles(candles), encoding="utf-8", newline="\n")


# --- the bundled data set ---------------------------------------------------------------------


def bundled_path(symbol: str, timeframe: str = "30m") -> Path:
    """The bundled SYNTHETIC replay file of ``symbol`` (see trading/data/README.md)."""
    folder = Path(str(resources.files("trading.data")))
    path = folder / data_filename(symbol, timeframe)
    if not path.is_file():
        have = ", ".join(sorted(p.name for p in folder.glob("*.csv"))) or "none"
        raise FileNotFoundError(f"no bundled candles for {symbol} {timeframe} (bundled: {have})")
    return path


def read_bundled(symbol: str, timeframe: str = "30m") -> list[Candle]:
    return read_candles(bundled_path(symbol, timeframe), timeframe)
