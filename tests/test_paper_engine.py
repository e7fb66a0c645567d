"""The paper exchange's pure rules: no database, exact numbers."""

from __future__ import annotations

import pytest

from trading.errors import InsufficientFunds, Rejected, StopWouldTrigger
from trading.models import Market, OrderSide, PositionSide, StopOrder, StopState
from trading.paper import FaultSettings, FaultState, PaperMarketSettings, PaperPosition, engine
from trading.paper.engine import Rules

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
BTC_MARKET = PaperMarketSettings(BTC, 69060.0, 0.0001, 0.00001, 0.1).market()
ETH_MARKET = PaperMarketSettings(ETH, 1950.0, 0.001, 0.001, 0.01).market()
RULES = Rules(taker_fee=0.0005, slippage_bps=5.0, leverage=5.0)
PRICES = {BTC: 69060.0, ETH: 1950.0}


def long_btc(size: float = 0.00095, entry: float = 69094.5) -> PaperPosition:
    return PaperPosition(BTC, PositionSide.LONG, size, entry)


def stop(id_: str, side: OrderSide, trigger: float, created: float = 0.0) -> StopOrder:
    return StopOrder(BTC, id_, None, side, 0.001, trigger, StopState.LIVE, True, None, created)


def test_market_settings_describe_the_market() -> None:
    assert Market(BTC, "BTC", "USDT", 1.0, 0.0001, 0.00001, 0.1) == BTC_MARKET


@pytest.mark.parametrize(
    ("side", "expected"),
    [(OrderSide.BUY, 69094.5), (OrderSide.SELL, 69025.5)],
)
def test_slippage_is_adverse_and_rounded_to_the_price_step(
    side: OrderSide, expected: float
) -> None:
    # 69060 * 1.0005 = 69094.53 -> 69094.5; 69060 * 0.9995 = 69025.47 -> 69025.5
    assert engine.slipped(BTC_MARKET, side, 69060.0, 5.0) == expected


def test_zero_slippage_fills_at_the_price() -> None:
    assert engine.slipped(BTC_MARKET, OrderSide.BUY, 69060.0, 0.0) == 69060.0


def test_size_below_minimum_is_rejected() -> None:
    with pytest.raises(Rejected, match=r"below the minimum 0\.0001") as exc:
        engine.check_size(BTC_MARKET, 0.00005)
    assert exc.value.code == "51020"


def test_size_off_the_step_is_rejected() -> None:
    with pytest.raises(Rejected, match=r"not a multiple of the size step 0\.00001") as exc:
        engine.check_size(BTC_MARKET, 0.000955)
    assert exc.value.code == "51121"


@pytest.mark.parametrize("size", [float("nan"), float("inf"), 0.0, -0.001])
def test_nonsense_sizes_are_rejected(size: float) -> None:
    with pytest.raises(Rejected):
        engine.check_size(BTC_MARKET, size)


def test_sizes_on_the_grid_pass() -> None:
    engine.check_size(BTC_MARKET, 0.00095)
    engine.check_size(ETH_MARKET, 0.3)


def test_market_buy_opens_a_long_with_fee_and_slippage() -> None:
    fill = engine.fill_market(
        BTC_MARKET, OrderSide.BUY, 0.00095, False, 10_000.0, {}, PRICES, RULES
    )
    assert fill.price == 69094.5
    assert fill.size == 0.00095
    assert fill.fee == pytest.approx(0.0005 * 0.00095 * 69094.5)  # 0.0328198875
    assert fill.realized_pnl == 0.0
    assert fill.cash_delta == pytest.approx(-0.0328198875)
    assert fill.position == long_btc()


def test_adding_averages_the_entry() -> None:
    pos, realized = engine.net(long_btc(0.001, 60000.0), BTC_MARKET, OrderSide.BUY, 0.001, 70000.0)
    assert pos == PaperPosition(BTC, PositionSide.LONG, 0.002, 65000.0)
    assert realized == 0.0


def test_duplicate_entries_add_up() -> None:
    # the post-mortem's double-open: two 0.00095 entries make 0.0019
    pos, _ = engine.net(long_btc(), BTC_MARKET, OrderSide.BUY, 0.00095, 69094.5)
    assert pos is not None and pos.size == 0.0019 and pos.entry_price == 69094.5


def test_partial_reduce_realises_pnl_and_keeps_the_entry() -> None:
    pos, realized = engine.net(long_btc(0.003, 60000.0), BTC_MARKET, OrderSide.SELL, 0.001, 61000.0)
    assert pos == PaperPosition(BTC, PositionSide.LONG, 0.002, 60000.0)
    assert realized == pytest.approx(1.0)


def test_exact_close_leaves_no_position() -> None:
    pos, realized = engine.net(long_btc(0.002, 60000.0), BTC_MARKET, OrderSide.SELL, 0.002, 59000.0)
    assert pos is None
    assert realized == pytest.approx(-2.0)


def test_opposite_order_larger_than_the_position_flips_it() -> None:
    short = PaperPosition(ETH, PositionSide.SHORT, 0.3, 2000.0)
    pos, realized = engine.net(short, ETH_MARKET, OrderSide.BUY, 0.5, 1990.0)
    assert pos == PaperPosition(ETH, PositionSide.LONG, 0.2, 1990.0)
    assert realized == pytest.approx(3.0)  # (2000 - 1990) * 0.3


def test_reduce_only_is_clipped_to_the_position() -> None:
    positions = {BTC: long_btc(0.001, 69000.0)}
    fill = engine.fill_market(
        BTC_MARKET, OrderSide.SELL, 0.005, True, 100.0, positions, PRICES, RULES
    )
    assert fill.size == 0.001
    assert fill.position is None
    assert fill.realized_pnl == pytest.approx((69025.5 - 69000.0) * 0.001)


def test_reduce_only_without_a_position_is_rejected() -> None:
    with pytest.raises(Rejected, match="no position to reduce") as exc:
        engine.fill_market(BTC_MARKET, OrderSide.SELL, 0.001, True, 100.0, {}, PRICES, RULES)
    assert exc.value.code == "51169"


def test_reduce_only_never_adds_to_a_position() -> None:
    positions = {BTC: long_btc()}
    with pytest.raises(Rejected, match="no position to reduce"):
        engine.fill_market(BTC_MARKET, OrderSide.BUY, 0.001, True, 100.0, positions, PRICES, RULES)


def test_margin_plus_fee_beyond_free_balance_is_refused() -> None:
    # 0.01 BTC at 69094.5 = 690.945 notional: margin 138.189 at 5x, fee 0.345
    with pytest.raises(InsufficientFunds, match=r"needs margin 138\.19 \+ fee 0\.35") as exc:
        engine.fill_market(BTC_MARKET, OrderSide.BUY, 0.01, False, 138.0, {}, PRICES, RULES)
    assert exc.value.code == "51008"
    fill = engine.fill_market(BTC_MARKET, OrderSide.BUY, 0.01, False, 138.6, {}, PRICES, RULES)
    assert fill.size == 0.01


def test_other_positions_use_margin_too() -> None:
    positions = {ETH: PaperPosition(ETH, PositionSide.SHORT, 1.0, 1950.0)}  # margin 390
    with pytest.raises(InsufficientFunds):
        engine.fill_market(BTC_MARKET, OrderSide.BUY, 0.01, False, 500.0, positions, PRICES, RULES)


def test_a_flip_only_needs_margin_for_the_new_side() -> None:
    positions = {BTC: long_btc(0.01, 69060.0)}  # margin 138.12 of 150 cash
    fill = engine.fill_market(
        BTC_MARKET, OrderSide.SELL, 0.02, False, 150.0, positions, PRICES, RULES
    )
    assert fill.position == PaperPosition(BTC, PositionSide.SHORT, 0.01, 69025.5)
    with pytest.raises(InsufficientFunds):
        engine.fill_market(BTC_MARKET, OrderSide.SELL, 0.03, False, 150.0, positions, PRICES, RULES)


def test_reducing_needs_no_free_margin() -> None:
    positions = {BTC: long_btc(0.01, 69060.0)}
    fill = engine.fill_market(
        BTC_MARKET, OrderSide.SELL, 0.005, False, 1.0, positions, PRICES, RULES
    )
    assert fill.position == PaperPosition(BTC, PositionSide.LONG, 0.005, 69060.0)


def test_account_view_counts_unrealised_pnl_and_margin() -> None:
    view = engine.account_view(1000.0, [long_btc(0.01, 68060.0)], PRICES, 5.0)
    assert view.unrealized == pytest.approx(10.0)
    assert view.used == pytest.approx(138.12)
    assert view.total == pytest.approx(1010.0)
    assert view.free == pytest.approx(871.88)


@pytest.mark.parametrize(
    ("side", "trigger", "words"),
    [
        (OrderSide.SELL, 69060.0, "cannot be higher than the last price"),
        (OrderSide.SELL, 70000.0, "cannot be higher than the last price"),
        (OrderSide.BUY, 69060.0, "cannot be lower than the last price"),
        (OrderSide.BUY, 68000.0, "cannot be lower than the last price"),
    ],
)
def test_stop_on_the_wrong_side_is_51278(side: OrderSide, trigger: float, words: str) -> None:
    with pytest.raises(StopWouldTrigger, match=words) as exc:
        engine.check_stop_side(BTC, side, trigger, 69060.0)
    assert exc.value.code == "51278"


def test_stops_on_the_protective_side_pass() -> None:
    engine.check_stop_side(BTC, OrderSide.SELL, 65586.3, 69060.0)
    engine.check_stop_side(BTC, OrderSide.BUY, 72000.0, 69060.0)


def test_candle_path_visits_the_near_extreme_first() -> None:
    assert engine.candle_path(100, 110, 90, 105) == [100, 90, 110, 105]  # rising: low first
    assert engine.candle_path(100, 110, 90, 95) == [100, 110, 90, 95]  # falling: high first


def test_hit_fills_at_the_trigger_when_crossed_inside_the_path() -> None:
    assert engine.hit([100, 110, 90, 95], OrderSide.SELL, 98) == (10 + 12, 98)
    assert engine.hit([100, 90, 110, 105], OrderSide.BUY, 108) == (10 + 18, 108)
    assert engine.hit([100, 110, 99, 105], OrderSide.SELL, 98) is None


def test_hit_from_a_gap_fills_at_the_worse_open() -> None:
    assert engine.hit([95, 97, 90, 96], OrderSide.SELL, 98) == (0.0, 95)
    assert engine.hit([112, 115, 111, 113], OrderSide.BUY, 108) == (0.0, 112)


def test_fired_stops_come_in_the_order_the_price_reaches_them() -> None:
    stops = [
        stop("1", OrderSide.SELL, 90.0),
        stop("2", OrderSide.SELL, 99.0),
        stop("3", OrderSide.BUY, 109.0),
        stop("4", OrderSide.BUY, 200.0),
    ]
    fired = engine.fired_stops(stops, [100, 110, 85, 95])
    assert [(s.id, base) for s, base in fired] == [("3", 109.0), ("2", 99.0), ("1", 90.0)]


def test_fill_reduce_clips_and_skips_without_a_position() -> None:
    assert engine.fill_reduce(BTC_MARKET, None, OrderSide.SELL, 0.001, 65586.3, RULES) is None
    fill = engine.fill_reduce(BTC_MARKET, long_btc(), OrderSide.SELL, 0.002, 65586.3, RULES)
    assert fill is not None
    assert fill.size == 0.00095
    assert fill.price == 65553.5  # 65586.3 * 0.9995 = 65553.5068 -> 65553.5
    assert fill.realized_pnl == pytest.approx((65553.5 - 69094.5) * 0.00095)
    assert fill.position is None


def test_draws_are_reproducible_from_seed_and_counter() -> None:
    assert engine.draw(7, 3) == engine.draw(7, 3)
    assert engine.draw(7, 3) != engine.draw(7, 4)
    assert engine.draw(7, 3) != engine.draw(8, 3)


def test_fault_settings_refuse_out_of_range_values() -> None:
    with pytest.raises(ValueError, match="reject_rate must be between 0 and 1"):
        FaultSettings(reject_rate=1.5)
    with pytest.raises(ValueError, match="stop_silent_fail must be >= 0"):
        FaultSettings(stop_silent_fail=-1)


def test_config_changes_are_listed_against_the_creating_config() -> None:
    state = FaultState(FaultSettings(stop_silent_fail=0), FaultSettings(stop_silent_fail=1), 4)
    assert state.config_changes(FaultSettings(stop_silent_fail=1)) == []
    assert state.config_changes(FaultSettings(stop_silent_fail=2)) == [
        "stop_silent_fail=2 (exchange created with 1)"
    ]
