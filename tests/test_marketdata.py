"""The replay CSV format, its validation (every error as file:line: reason), timeframes and
which candles are closed."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading.marketdata import (
    HEADER,
    CandleFileError,
    closed_candles,
    data_filename,
    format_candles,
    parse_candles,
    read_candles,
    timeframe_name,
    timeframe_seconds,
    write_candles,
)
from trading.models import Candle

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def test_timeframes() -> None:
    assert [timeframe_seconds(t) for t in ("1m", "5m", "15m", "30m", "1h", "4h", "1d")] == [
        60,
        300,
        900,
        1800,
        3600,
        14_400,
        86_400,
    ]
    assert timeframe_name(1800) == "30m" and timeframe_seconds(3600) == 3600
    with pytest.raises(ValueError, match=r"unsupported timeframe '2h' \(supported: 1m, 5m"):
        timeframe_seconds("2h")
    with pytest.raises(ValueError, match="no supported timeframe lasts 7 s"):
        timeframe_name(7)
    assert data_filename("BTC/USDT:USDT", "30m") == "BTC-USDT-USDT_30m.csv"


def test_closed_candles_leave_out_the_one_still_forming() -> None:
    candles = [Candle(float(T0 + i * 1800), 1, 1, 1, 1, 0) for i in range(3)]
    assert closed_candles(candles, T0 + 3599, "30m") == candles[:1]
    assert closed_candles(candles, T0 + 3600, "30m") == candles[:2]  # closes exactly now
    assert closed_candles(candles, T0 + 10_000, 1800) == candles
    assert closed_candles(candles, T0, "30m") == []


def test_write_then_read_gives_the_same_candles(tmp_path: Path) -> None:
    candles = [
        Candle(float(T0), 69060.0, 69128.5, 68709.9, 68793.5, 359.8609),
        Candle(float(T0 + 1800), 0.1 + 0.2, 0.5, 0.1, 0.30000000000000004, 0.0),
    ]
    path = tmp_path / "c.csv"
    write_candles(path, candles)
    assert path.read_bytes().decode() == (
        f"{HEADER}\n"
        "2026-01-01T00:00:00Z,69060.0,69128.5,68709.9,68793.5,359.8609\n"
        "2026-01-01T00:30:00Z,0.30000000000000004,0.5,0.1,0.30000000000000004,0.0\n"
    )
    assert read_candles(path, "30m") == candles


prices = st.floats(0.0001, 1e7, allow_nan=False, allow_infinity=False)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(prices, prices, prices, prices, st.floats(0, 1e9)), max_size=30))
def test_round_trip_is_exact_for_any_valid_candles(rows: list[tuple[float, ...]]) -> None:
    candles = []
    for i, (a, b, c, d, v) in enumerate(rows):
        lo, o, cl, hi = sorted((a, b, c, d))
        candles.append(Candle(float(T0 + i * 60), o, hi, lo, cl, v))
    if not candles:
        return
    assert parse_candles(format_candles(candles).splitlines(), "x.csv", "1m") == candles


def test_epoch_seconds_offsets_bom_and_crlf_are_read(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(
        (
            "\ufefftimestamp,open,high,low,close,volume\r\n"
            f"{T0},10,11,9,10.5,1\r\n"
            "2026-01-01T01:30:00+01:00,10.5,12,10,11,2\r\n"  # = 00:30 UTC
            "\r\n"
            "2026-01-01T01:00:00.000Z,11,11,11,11,0\r\n"
        ).encode()
    )
    got = read_candles(path, "30m")
    assert [c.ts for c in got] == [T0, T0 + 1800, T0 + 3600]
    assert got[1] == Candle(float(T0 + 1800), 10.5, 12.0, 10.0, 11.0, 2.0)


BAD_ROWS = [
    ("2026-01-01T00:00:00Z,10,11,9,10,1", None),
    ("2026-01-01T00:30:00Z,abc,11,9,10,1", "open 'abc' is not a number"),
    ("2026-01-01T00:30:00Z,10,NaN,9,10,1", "high is 'NaN'; must be a finite number"),
    ("2026-01-01T00:30:00Z,10,inf,9,10,1", "high is 'inf'; must be a finite number"),
    ("2026-01-01T00:30:00Z,10,9,11,10,1", "high 9.0 is below low 11.0"),
    ("2026-01-01T00:30:00Z,12,11,9,10,1", "open 12.0 and close 10.0 must lie within low 9.0..high"),
    ("2026-01-01T00:30:00Z,10,11,9,10,-1", "volume -1.0 must be >= 0"),
    ("2026-01-01T00:30:00Z,0,11,0,10,1", "open 0.0 must be > 0"),
    (
        "2026-01-01T00:30:00Z,10,11,9,10",
        "expected 6 columns (timestamp,open,high,low,close,volume)",
    ),
    ("2026-01-01 00:30:00,10,11,9,10,1", "has no timezone; write UTC as 2026-01-01 00:30:00Z"),
    ("1767227400000,10,11,9,10,1", "looks like epoch milliseconds; write seconds"),
    ("yesterday,10,11,9,10,1", "timestamp 'yesterday' is neither ISO-8601 nor epoch seconds"),
    ("2026-01-01T00:10:00Z,10,11,9,10,1", "is not aligned to the 1800 s timeframe"),
    ("2026-01-01T00:00:00Z,10,11,9,10,1", "2026-01-01T00:00:00Z is not after 2026-01-01T00:00:00Z"),
    ("2026-01-01T01:00:00Z,10,11,9,10,1", None),
    ("2026-01-01T00:30:00Z,10,11,9,10,1", "2026-01-01T00:30:00Z is not after 2026-01-01T01:00:00Z"),
]


def test_every_bad_row_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "\n" + "\n".join(row for row, _ in BAD_ROWS) + "\n")
    with pytest.raises(CandleFileError) as info:
        read_candles(path, "30m")
    expected = [
        f"{path}:{line}: {reason}"
        for line, (_, reason) in enumerate(BAD_ROWS, start=2)
        if reason is not None
    ]
    got = str(info.value).splitlines()
    assert len(got) == len(expected)
    for line, want in zip(got, expected, strict=True):
        assert line.startswith(want.split(": ", 1)[0] + ": ")
        assert want.split(": ", 1)[1] in line


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "x.csv:1: empty file; expected the header 'timestamp,open,high,low,close,volume'"),
        (HEADER + "\n", "x.csv:1: no candles after the header"),
        (
            "2026-01-01T00:00:00Z,10,11,9,10,1\n",
            "x.csv:1: expected the header 'timestamp,open,high,low,close,volume', got '2026-01-01",
        ),
        ("time,o,h,l,c,v\n1,1,1,1,1,1\n", "x.csv:1: expected the header"),
    ],
)
def test_header_is_required(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text(text)
    with pytest.raises(CandleFileError) as info:
        read_candles(path)
    assert str(info.value).startswith(str(tmp_path / message))


def test_a_long_list_of_errors_is_cut_short() -> None:
    lines = [HEADER] + [f"{T0 + i * 60},x,1,1,1,1" for i in range(25)]
    with pytest.raises(CandleFileError) as info:
        parse_candles(lines, "many.csv")
    assert len(info.value.errors) == 20
    assert str(info.value).splitlines()[-1] == "many.csv: ... and 5 more bad lines"
