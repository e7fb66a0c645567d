"""The deterministic generator of the bundled SYNTHETIC candle data (trading/data/*.csv).

    python -m trading.datagen --out trading/data

rewrites the bundled files byte for byte. The series is a regime-switching random walk on 30m
candles: trending (up or down) and ranging (mean-reverting to an anchor) regimes of random length,
volatility that clusters (shocks that decay), and occasional price gaps (a candle opening away
from the previous close). Only ``random.Random.random()`` and + - x / are used (no numpy, no
``gauss``, no ``exp``/``log``), so the bytes do not depend on the platform's maths library.

It is NOT market data: it exists so the demo, the tests and a first backtest run with no network.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from trading.marketdata import TIMEFRAMES, data_filename, write_candles
from trading.models import Candle

DEFAULT_SEED = 20260225  # the day of the post-mortem's double-open
START_TS = 1_767_225_600  # 2026-01-01T00:00:00Z
TIMEFRAME = "30m"
DAYS = 60


class Regime(StrEnum):
    UP = "up"
    DOWN = "down"
    RANGE = "range"


@dataclass(frozen=True)
class SeriesSpec:
    symbol: str
    start_price: float  # the post-mortem's prices
    price_decimals: int  # the market's tick: 1 -> 0.1
    volume_decimals: int
    base_volume: float  # base units per 30m candle, calm market
    volatility: float  # typical |return| per candle, calm market
    seed_offset: int


SPECS: tuple[SeriesSpec, ...] = (
    SeriesSpec("BTC/USDT:USDT", 69_060.0, 1, 4, 180.0, 0.0030, 1),
    SeriesSpec("ETH/USDT:USDT", 1_950.0, 2, 3, 4_200.0, 0.0040, 2),
)

# Regime lengths in candles, and the drift of a trend in units of the calm volatility
RANGE_LENGTH = (60, 220)
TREND_LENGTH = (40, 160)
TREND_DRIFT = (0.08, 0.25)
REVERSION = 0.04  # per candle, toward the range's anchor
GAP_PROBABILITY = 0.004
GAP_SIZE = (0.006, 0.02)
SHOCK_PROBABILITY = 0.012
SHOCK_SIZE = (0.8, 2.5)
VOL_DECAY = 0.97
FIRST_RANGE = 30  # a short first range, so a breakout comes within the first few dozen candles


@dataclass(frozen=True)
class Bar:
    candle: Candle
    regime: Regime
    gap: bool


class _Rng:
    def __init__(self, seed: int) -> None:
        self._r = random.Random(seed)

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self._r.random()

    def chance(self, p: float) -> bool:
        return self._r.random() < p

    def length(self, bounds: tuple[int, int]) -> int:
        return bounds[0] + int((bounds[1] - bounds[0] + 1) * self._r.random())

    def normal(self) -> float:
        """Irwin-Hall: mean 0, standard deviation 1, within +/-6, from additions only."""
        return sum(self._r.random() for _ in range(12)) - 6.0


def _next_regime(rng: _Rng, current: Regime, drift_from_start: float) -> Regime:
    """After a range a trend, after a trend mostly a range; trends lean back toward the start
    price (``drift_from_start`` = price / start - 1), so the series stays within a plausible band.
    """
    if current is not Regime.RANGE and rng.chance(0.7):
        return Regime.RANGE
    p_up = min(max(0.5 - 2.0 * drift_from_start, 0.15), 0.85)
    if current is Regime.RANGE:
        return Regime.UP if rng.chance(p_up) else Regime.DOWN
    return Regime.DOWN if current is Regime.UP else Regime.UP


def generate(
    spec: SeriesSpec,
    *,
    seed: int = DEFAULT_SEED,
    count: int = DAYS * 86_400 // TIMEFRAMES[TIMEFRAME],
    start_ts: int = START_TS,
    step: int = TIMEFRAMES[TIMEFRAME],
) -> list[Bar]:
    """``count`` candles of ``spec``, each labelled with its regime and whether it gapped."""
    rng = _Rng(seed * 1000 + spec.seed_offset)
    sigma = spec.volatility
    price = spec.start_price
    regime, left = Regime.RANGE, FIRST_RANGE
    anchor, drift = price, 0.0
    vol = 1.0  # the volatility multiplier: shocks push it up, it decays back toward 1
    bars: list[Bar] = []
    for i in range(count):
        if left == 0:
            regime = _next_regime(rng, regime, price / spec.start_price - 1.0)
            left = rng.length(RANGE_LENGTH if regime is Regime.RANGE else TREND_LENGTH)
            anchor = price
            sign = 1.0 if regime is Regime.UP else -1.0
            drift = 0.0 if regime is Regime.RANGE else sign * rng.uniform(*TREND_DRIFT) * sigma
        left -= 1
        vol = 1.0 + (vol - 1.0) * VOL_DECAY + 0.05 * rng.normal()
        if rng.chance(SHOCK_PROBABILITY):
            vol += rng.uniform(*SHOCK_SIZE)
        vol = min(max(vol, 0.5), 4.0)
        gap = rng.chance(GAP_PROBABILITY)
        open_ = price
        if gap:
            open_ = price * (1.0 + (1.0 if rng.chance(0.5) else -1.0) * rng.uniform(*GAP_SIZE))
        pull = REVERSION * (anchor - open_) / anchor if regime is Regime.RANGE else 0.0
        ret = drift + pull + sigma * vol * rng.normal()
        close = open_ * (1.0 + ret)
        wick_up = sigma * vol * abs(rng.normal()) * 0.6
        wick_down = sigma * vol * abs(rng.normal()) * 0.6
        d = spec.price_decimals
        o, c = round(open_, d), round(close, d)
        high = round(max(open_, close) * (1.0 + wick_up), d)
        low = round(min(open_, close) * (1.0 - wick_down), d)
        activity = 1.0 + abs(ret) / sigma
        volume = round(
            spec.base_volume * vol * activity * rng.uniform(0.5, 1.5), spec.volume_decimals
        )
        candle = Candle(float(start_ts + i * step), o, max(high, o, c), min(low, o, c), c, volume)
        bars.append(Bar(candle, regime, gap))
        price = c
    return bars


def candles(spec: SeriesSpec, *, seed: int = DEFAULT_SEED, days: int = DAYS) -> list[Candle]:
    count = days * 86_400 // TIMEFRAMES[TIMEFRAME]
    return [b.candle for b in generate(spec, seed=seed, count=count)]


def write_all(out: Path, *, seed: int = DEFAULT_SEED, days: int = DAYS) -> list[Path]:
    """Write one replay CSV per spec into ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in SPECS:
        path = out / data_filename(spec.symbol, TIMEFRAME)
        write_candles(path, candles(spec, seed=seed, days=days))
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trading.datagen",
        description="Generate the bundled SYNTHETIC 30m candles (deterministic for a seed).",
    )
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--days", type=int, default=DAYS)
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be at least 1")
    for path in write_all(args.out, seed=args.seed, days=args.days):
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
