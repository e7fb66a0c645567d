"""Strategies: exact numbers on hand-made candles, the no-look-ahead property, the registry and
the ``[[strategies]]`` config entry."""

from __future__ import annotations

import typing
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.config import schema
from bot.config import strategy as strategy_config
from bot.config.strategy import StrategyConfig, Timeframe, _StrictModel
from trading.marketdata import TIMEFRAMES, closed_candles
from trading.models import Candle, Position, PositionSide
from trading.strategies import (
    Action,
    Bollinger,
    BollingerParams,
    Decision,
    ParamError,
    Strategy,
    UnknownKindError,
    create,
    default_params,
    kinds,
)
from trading.strategies.indicators import atr, bollinger_bands, sma, stddev

LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
STEP = 1800


def bars(*ohlc: tuple[float, float, float, float]) -> list[Candle]:
    return [Candle(float(i * STEP), o, h, lo, c, 1.0) for i, (o, h, lo, c) in enumerate(ohlc)]


def flat(*closes: float) -> list[Candle]:
    return bars(*((c, c, c, c) for c in closes))


def pos(side: PositionSide, entry: float = 100.0) -> Position:
    return Position("BTC/USDT:USDT", side, 1.0, entry)


BREAKOUT = bars(
    (100, 101, 99, 100),
    (100, 102, 99, 101),
    (101, 103, 100, 102),
    (102, 104, 101, 103),  # close 103 = the 3-bar high: no breakout
    (103, 107, 102, 106),  # close 106 > 104, the high of the 3 candles before it
    (106, 106.5, 101.5, 102),  # above the 2-bar low 101
    (102, 102.5, 100, 100.5),  # below the 2-bar low 101.5
)
MB = create("momentum_breakout", {"channel": 3, "atr_period": 3, "exit_channel": 2})


# --- indicators -------------------------------------------------------------------------------


def test_indicator_values() -> None:
    gap = bars((10, 11, 9, 10), (13, 14, 12.5, 13.5), (13.5, 14, 13, 13.2))
    assert atr(gap, 2) == pytest.approx((4 + 1) / 2)  # the gap widens the first true range
    assert atr(BREAKOUT[:5], 3) == pytest.approx(11 / 3)
    assert sma([1, 2, 3, 4], 2) == 3.5
    assert stddev([12, 10, 12, 8], 4) == pytest.approx(2.75**0.5)
    b = bollinger_bands([10, 12, 10, 12, 8], 4, 1.0)
    assert (b.lower, b.middle, b.upper) == pytest.approx((10.5 - 2.75**0.5, 10.5, 10.5 + 2.75**0.5))
    with pytest.raises(ValueError, match="need 4 values, have 3"):
        atr(gap, 3)


# --- momentum_breakout ------------------------------------------------------------------------


def test_breakout_enters_long_with_atr_stop() -> None:
    assert MB.lookback == 4
    assert MB.decide(BREAKOUT[:3]).reason == "warming up: need 4 candles, have 3"
    assert MB.decide(BREAKOUT[:4]) == Decision.hold(
        "close 103 inside the 3-bar channel 99..103", 103
    )
    d = MB.decide(BREAKOUT[:5])
    assert (d.action, d.side, d.price) == (Action.ENTER, LONG, 106)
    assert d.stop == pytest.approx(106 - 2 * 11 / 3)
    assert d.reason == (
        "close 106 broke the 3-bar high 104; stop 2xATR(3) = 106 - 2x3.6666667 = 98.666667"
    )


def test_breakout_exits_on_the_opposite_channel() -> None:
    assert MB.decide(BREAKOUT[:6], pos(LONG)).reason == (
        "holding long: close 102 above the 2-bar exit level 101"
    )
    d = MB.decide(BREAKOUT[:7], pos(LONG))
    assert d == Decision.exit("close 100.5 fell below the 2-bar low 101.5", 100.5)


def test_breakout_short_percent_stop_and_no_channel_exit() -> None:
    down = [
        Candle(c.ts, 200 - c.open, 200 - c.low, 200 - c.high, 200 - c.close, 1) for c in BREAKOUT
    ]
    strategy = create("momentum_breakout", {"channel": 3, "stop": "percent", "exit_channel": 0})
    d = strategy.decide(down[:5])
    assert (d.action, d.side, d.price) == (Action.ENTER, SHORT, 94)
    assert d.stop == pytest.approx(94 * 1.05)
    assert d.reason == "close 94 broke the 3-bar low 96; stop 5% = 98.7"
    held = strategy.decide(down[:6], pos(SHORT))
    assert held.action is Action.HOLD and "the stop ends the trade" in held.reason


def test_open_position_never_gets_an_entry() -> None:
    same = MB.decide(BREAKOUT[:5], pos(LONG))
    assert same.action is Action.HOLD
    no_exit = create("momentum_breakout", {"channel": 3, "atr_period": 3, "exit_channel": 0})
    opposite = no_exit.decide(BREAKOUT[:5], pos(SHORT))
    assert opposite.action is Action.EXIT
    assert opposite.reason.startswith("opposite signal while short: close 106 broke")


def test_unusable_stop_holds_with_the_reason() -> None:
    params = {"channel": 3, "atr_period": 3, "atr_multiplier": 20, "exit_channel": 2}
    wild = bars(
        (10, 11, 9, 10), (10, 12, 8, 10), (10, 13, 7, 10), (10, 12, 9, 11), (11, 16, 10, 15)
    )
    d = create("momentum_breakout", params).decide(wild)  # ATR 5: the stop would be 15 - 100
    assert d.action is Action.HOLD and (
        d.reason == "close 15 broke the 3-bar high 13; stop 20xATR(3) = 15 - 20x5 = -85; "
        "not entering: the stop -85 is not a positive price below the close 15"
    )


# --- bollinger --------------------------------------------------------------------------------

SERIES = flat(10, 12, 10, 12, 8, 10)  # last 4 of the first 5: mean 10.5, sigma sqrt(2.75)
SIGMA = 2.75**0.5


def bb(**params: object) -> Strategy:
    return create("bollinger", {"period": 4, "width": 1.0, "stop": "percent", **params})


def test_bollinger_mean_reversion_enters_and_exits_at_the_middle() -> None:
    strategy = bb()
    assert strategy.decide(SERIES[:4]).action is Action.HOLD
    d = strategy.decide(SERIES[:5])
    assert (d.action, d.side, d.price) == (Action.ENTER, LONG, 8)
    assert d.stop == pytest.approx(7.6)
    assert d.reason == "mean_reversion: close 8 below the lower band 8.8416876; stop 5% = 7.6"
    out = strategy.decide(SERIES, pos(LONG, 8))
    assert out == Decision.exit("close 10 reached the middle band 10", 10)


def test_bollinger_breakout_enters_with_the_move_and_exits_back_at_the_middle() -> None:
    strategy = bb(mode="breakout")
    d = strategy.decide(SERIES[:5])
    assert (d.action, d.side, d.stop) == (Action.ENTER, SHORT, pytest.approx(8.4))
    out = strategy.decide(SERIES, pos(SHORT, 8))
    assert out == Decision.exit("close 10 came back to the middle band 10", 10)


def test_bollinger_stop_rules_and_exit_rules() -> None:
    band = bb(stop="band", stop_sigma=3.0).decide(SERIES[:5])
    assert band.stop == pytest.approx(10.5 - 3 * SIGMA)
    # a mean-reversion long's stop at the middle band would sit above the close: no entry
    assert bb(stop="band", stop_sigma=0.0).decide(SERIES[:5]).action is Action.HOLD
    assert bb(mode="breakout", stop="band", stop_sigma=0.0).decide(SERIES[:5]).stop == 10.5
    assert bb(stop="atr", atr_period=2).decide(SERIES[:5]).stop == pytest.approx(8 - 2 * 3)
    far = bb(exit="opposite_band").decide(SERIES, pos(LONG, 8))
    assert far.action is Action.HOLD and "still below the upper band" in far.reason
    assert bb(exit="none").decide(SERIES, pos(LONG, 8)).action is Action.HOLD


# --- no look-ahead ----------------------------------------------------------------------------

CONFIGS: list[tuple[str, dict[str, object]]] = [
    ("momentum_breakout", {"channel": 3, "atr_period": 3, "exit_channel": 2}),
    ("momentum_breakout", {"channel": 4, "stop": "percent", "exit_channel": 0}),
    ("momentum_breakout", {}),
    ("bollinger", {"period": 4, "width": 1.0, "stop": "percent"}),
    ("bollinger", {"period": 4, "mode": "breakout", "stop": "band", "stop_sigma": 0.5}),
    ("bollinger", {"period": 5, "width": 1.5, "atr_period": 3, "exit": "opposite_band"}),
    ("bollinger", {}),
]
configured = st.sampled_from(CONFIGS).map(lambda kp: create(*kp))

moves = st.tuples(
    st.floats(-3, 3), st.floats(0, 2), st.floats(0, 2), st.floats(-1, 1) | st.just(0.0)
)


def walk(steps: Sequence[tuple[float, float, float, float]], start: float = 100.0) -> list[Candle]:
    out, close = [], start
    for i, (move, up, down, gap) in enumerate(steps):
        o = max(close + gap, 1.0)
        c = max(o + move, 1.0)
        out.append(Candle(float(i * STEP), o, max(o, c) + up, max(min(o, c) - down, 0.5), c, 1.0))
        close = c
    return out


positions = st.sampled_from([None, pos(LONG), pos(SHORT)])


@settings(max_examples=150, deadline=None)
@given(
    configured,
    st.lists(moves, min_size=1, max_size=50),
    st.lists(moves, min_size=1, max_size=10),
    st.data(),
    positions,
)
def test_a_decision_never_depends_on_later_candles(
    strategy: Strategy, past: list, future: list, data: st.DataObject, position: Position | None
) -> None:
    series = walk(past + future)
    k = data.draw(st.integers(0, len(past)), label="k")
    alone = walk(past)[:k]
    before = list(alone)
    decided = strategy.decide(alone, position)
    assert alone == before  # the input is not mutated
    assert strategy.decide(series[:k], position) == decided
    # the caller's path: all candles known, only those closed at the k-th close passed on
    now = k * STEP
    assert strategy.decide(closed_candles(series, now, STEP), position) == decided
    # only the last `lookback` candles matter, so a short live window equals the full history
    assert strategy.decide(alone[-strategy.lookback :] if k else [], position) == decided
    assert decided.reason
    if position is not None:
        assert decided.action is not Action.ENTER


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(CONFIGS), st.lists(moves, min_size=1, max_size=60), positions)
def test_incremental_decisions_equal_fresh_decisions_on_each_prefix(
    config: tuple[str, dict[str, object]], steps: list, position: Position | None
) -> None:
    series = walk(steps)
    strategy = create(*config)
    incremental = [strategy.decide(series[:k], position) for k in range(len(series) + 1)]
    for k in reversed(range(len(series) + 1)):  # another order, a fresh instance each time
        assert create(*config).decide(series[:k], position) == incremental[k]


# --- decisions, registry, config --------------------------------------------------------------


def test_decision_invariants_and_registry_errors_naming_the_parameter() -> None:
    with pytest.raises(ValueError, match="must be below"):
        Decision.enter(LONG, 101.0, 100.0, "bad stop")
    with pytest.raises(ValueError, match="reason"):
        Decision.hold(" ")
    with pytest.raises(ValueError, match="no side or stop"):
        Decision(Action.HOLD, "x", side=LONG)
    assert kinds() == ("bollinger", "momentum_breakout")
    assert default_params("momentum_breakout")["channel"] == 20
    cases: list[tuple[dict[str, object], str, str]] = [
        ({"chanel": 20}, "chanel", "is unknown (known: atr_multiplier, atr_period, channel"),
        ({"channel": "20"}, "channel", "must be an integer, got str '20'"),
        ({"channel": True}, "channel", "must be an integer"),
        ({"channel": 1}, "channel", "must be between 2 and 500, got 1"),
        ({"stop": "trailing"}, "stop", "must be one of 'atr', 'percent', got 'trailing'"),
        ({"atr_multiplier": float("nan")}, "atr_multiplier", "must be a finite number"),
    ]
    for raw, param, detail in cases:
        with pytest.raises(ParamError) as info:
            create("momentum_breakout", raw)
        assert info.value.param == param and detail in str(info.value)
        assert str(info.value).startswith(f"momentum_breakout parameter '{param}' ")
    with pytest.raises(UnknownKindError, match="known: bollinger, momentum_breakout"):
        create("rsi", {})
    assert isinstance(BollingerParams(width=2).width, float)
    assert isinstance(create("bollinger"), Bollinger)


def entry(**overrides: object) -> dict[str, object]:
    base = {"name": "btc-breakout", "kind": "momentum_breakout", "exchange": "paper"}
    return {**base, "symbols": ["BTC/USDT:USDT"], "params": {"channel": 30}, **overrides}


def test_strategy_config_entry() -> None:
    cfg = StrategyConfig.model_validate(entry(risk={"sizing": "fixed", "size": 0.001}))
    assert cfg.timeframe == "30m" and cfg.risk.size == 0.001 and cfg.risk.max_leverage is None
    assert cfg.build_strategy().lookback == 31
    bad = [
        (entry(params={"chanel": 3}), "momentum_breakout parameter 'chanel' is unknown"),
        (entry(kind="bollinger", params={"width": 0}), "parameter 'width' must be between"),
        (entry(kind="rsi"), "Input should be 'momentum_breakout' or 'bollinger'"),
        (entry(symbols=[]), "at least 1 item"),
        (entry(symbols=["BTC/USDT:USDT"] * 2), "listed more than once: BTC/USDT:USDT"),
        (entry(timeframe="2h"), "Input should be '1m'"),
        (entry(name="bad name!"), "should match pattern"),
        (entry(risk={"sizing": "fixed"}), 'sizing = "fixed" needs size'),
        (entry(risk={"size": 1.0}), 'size is only used with sizing = "fixed"'),
        (entry(risk={"max_leverage": 200.0}), "less than or equal to 125"),
        (entry(risk={"risk_per_trade": 0.01, "sizing": "fixed", "size": 1.0}), "only used with"),
        (entry(params={"channel": 20.0}), "parameter 'channel' must be an integer, got float"),
        (entry(extra=1), "Extra inputs are not permitted"),
    ]
    for raw, message in bad:
        with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
            StrategyConfig.model_validate(raw)


def test_config_stays_in_step_with_the_schema_and_the_domain() -> None:
    assert _StrictModel.model_config == schema.StrictModel.model_config
    assert set(typing.get_args(Timeframe)) == set(TIMEFRAMES)
    assert set(typing.get_args(strategy_config.StrategyKindName)) == set(kinds())

    def pattern(alias: object) -> str:
        return str(typing.get_args(alias)[1].metadata[0].pattern)

    assert pattern(strategy_config.Name) == pattern(schema.Name)
