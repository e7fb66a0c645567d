"""Position sizing: risk at the stop, caps, rounding down, and refusals that say why."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading.models import Market, PositionSide
from trading.settings import RiskLimits
from trading.sizing import Refused, Sized, SizingMode, SizingRules, size_position

BTC = Market("BTC/USDT:USDT", "BTC", "USDT", 1.0, 0.0001, 0.00001, 0.1)
ETH = Market("ETH/USDT:USDT", "ETH", "USDT", 1.0, 0.001, 0.001, 0.01)
LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
ENTRY = 69_060.0
STOP = ENTRY * (1 - 0.0503)  # the post-mortem's -5.03% stop


def sized(result: Sized | Refused) -> Sized:
    assert isinstance(result, Sized), result
    return result


def test_the_post_mortem_btc_trade() -> None:
    """1% of 331 USDT at a 5.03% stop from 69,060 is 0.00095 BTC: about $3.30 lost at the stop.
    The double-open's 0.0019 BTC loses twice that, the $6.63 of the post-mortem (with fees)."""
    rules = SizingRules(risk_per_trade=0.01)
    s = sized(size_position(rules, BTC, side=LONG, equity=331.0, entry=ENTRY, stop=STOP))
    assert s.size == 0.00095
    assert s.risk == pytest.approx(3.30, abs=0.005)
    assert s.notional == pytest.approx(65.607)
    assert s.reason == (
        "risk 0.01 of equity 331 = 3.31 at 3473.718 (5.03%) from the stop -> 0.00095286952 BTC; "
        "rounded down to the step 1e-05 -> 0.00095 BTC"
    )
    assert PositionSide.LONG.loss_at(ENTRY, STOP, 2 * s.size) == pytest.approx(-6.60, abs=0.01)


def test_refusal_below_the_market_minimum_is_never_a_zero() -> None:
    rules = SizingRules(risk_per_trade=0.01)
    r = size_position(rules, BTC, side=LONG, equity=30.0, entry=ENTRY, stop=STOP)
    assert isinstance(r, Refused)
    assert r.reason == (
        "size refused: risk 0.01 of equity 30 = 0.30 at 3473.718 (5.03%) from the stop -> "
        "8.6362796e-05 BTC; rounded down to the step 1e-05 -> 8e-05 BTC; "
        "below the market minimum 0.0001 BTC"
    )
    tiny = size_position(rules, BTC, side=LONG, equity=1.0, entry=ENTRY, stop=STOP)
    assert isinstance(tiny, Refused) and "-> 0 BTC" in tiny.reason


def test_fixed_size_and_short_side() -> None:
    rules = SizingRules(mode=SizingMode.FIXED, size=0.05)
    s = sized(size_position(rules, ETH, side=SHORT, equity=1000.0, entry=1950.0, stop=1983.41))
    assert s.size == 0.05
    assert s.risk == pytest.approx(0.05 * 33.41)
    assert s.reason == "fixed size 0.05 ETH"


def test_leverage_and_notional_caps() -> None:
    rules = SizingRules(risk_per_trade=0.5, max_leverage=5.0)
    s = sized(size_position(rules, BTC, side=LONG, equity=100.0, entry=ENTRY, stop=ENTRY - 10))
    assert s.size == 0.00724  # 500 / 69060 = 0.0072401, rounded down
    assert s.notional <= 100.0 * 5.0
    assert "capped by max_leverage 5 -> 0.0072400811 BTC" in s.reason
    capped = SizingRules(risk_per_trade=0.5, max_notional=200.0)
    n = sized(size_position(capped, BTC, side=LONG, equity=100.0, entry=ENTRY, stop=ENTRY - 10))
    assert n.size == 0.00289 and n.notional <= 200.0
    assert "capped by max_notional 200" in n.reason
    fixed = SizingRules(mode=SizingMode.FIXED, size=2.0, max_leverage=2.0)
    f = sized(size_position(fixed, ETH, side=LONG, equity=1000.0, entry=1950.0, stop=1900.0))
    assert f.size == 1.025  # 2000 / 1950 = 1.02564, rounded down to 0.001


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"open_positions": 2}, "2 positions open, the limit is 2"),
        ({"equity": 0.0}, "equity 0.0 is not positive"),
        ({"equity": math.nan}, "equity nan is not positive"),
        ({"stop": ENTRY + 1}, "a long stop must be below the entry 69060, got 69061"),
        ({"stop": ENTRY}, "a long stop must be below the entry"),
        ({"stop": -1.0}, "must be positive prices"),
        ({"side": SHORT}, "a short stop must be above the entry 69060"),
    ],
)
def test_refusals_say_why(kwargs: dict[str, object], reason: str) -> None:
    args: dict[str, object] = {"side": LONG, "equity": 1000.0, "entry": ENTRY, "stop": STOP}
    r = size_position(SizingRules(), BTC, **{**args, **kwargs})  # type: ignore[arg-type]
    assert isinstance(r, Refused) and reason in r.reason


def test_rules_are_checked_and_built_from_the_global_limits() -> None:
    with pytest.raises(ValueError, match="fixed sizing needs a size"):
        SizingRules(mode=SizingMode.FIXED)
    with pytest.raises(ValueError, match="risk_per_trade"):
        SizingRules(risk_per_trade=0.0)
    with pytest.raises(ValueError, match="max_open_positions"):
        SizingRules(max_open_positions=0)
    rules = SizingRules.from_limits(
        RiskLimits(max_leverage=3.0, max_open_positions=4, max_notional=500.0),
        risk_per_trade=0.02,
    )
    assert (rules.max_leverage, rules.max_open_positions, rules.max_notional) == (3.0, 4, 500.0)
    assert rules.mode is SizingMode.RISK and rules.risk_per_trade == 0.02


@settings(max_examples=300, deadline=None)
@given(
    equity=st.floats(0.01, 1e7),
    risk=st.floats(0.0001, 1.0),
    stop_pct=st.floats(0.01, 50.0),
    leverage=st.floats(0.1, 125.0),
    max_notional=st.none() | st.floats(1.0, 1e6),
    side=st.sampled_from([LONG, SHORT]),
    market=st.sampled_from([BTC, ETH]),
)
def test_a_size_is_a_legal_order_within_every_cap_or_a_refusal(
    equity: float,
    risk: float,
    stop_pct: float,
    leverage: float,
    max_notional: float | None,
    side: PositionSide,
    market: Market,
) -> None:
    entry = ENTRY if market is BTC else 1950.0
    stop = entry * (1 - stop_pct / 100 if side is LONG else 1 + stop_pct / 100)
    rules = SizingRules(risk_per_trade=risk, max_leverage=leverage, max_notional=max_notional)
    r = size_position(rules, market, side=side, equity=equity, entry=entry, stop=stop)
    if isinstance(r, Refused):
        assert "below the market minimum" in r.reason
        return
    assert r.size >= market.min_size
    assert market.round_size(r.size) == r.size
    assert r.risk <= equity * risk * (1 + 1e-9)
    assert r.notional <= equity * leverage * (1 + 1e-9)
    assert max_notional is None or r.notional <= max_notional * (1 + 1e-9)
