"""Pure rules of the paper exchange: sizes, slippage, netting, margin, fees and stop triggers.

No SQL, no I/O, no clock: every function takes the state it needs and returns the new state,
so the rules are unit-tested without a database and the exchange only loads, applies, saves.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from trading.errors import InsufficientFunds, Rejected, StopWouldTrigger
from trading.models import Market, OrderSide, Position, PositionSide, StopOrder

EPS = 1e-9


def _dec(x: float) -> Decimal:
    return Decimal(repr(x))


def fmt(x: float) -> str:
    """A number as people write it: 0.00001, not 1e-05."""
    return format(_dec(x).normalize(), "f") if math.isfinite(x) else str(x)


def on_step(value: float, step: float) -> bool:
    return _dec(value) % _dec(step) == 0


def snap(value: float, step: float) -> float:
    """The nearest multiple of ``step`` (float sums drift; positions stay on the size grid)."""
    s = _dec(step)
    return float((_dec(value) / s).to_integral_value(ROUND_HALF_UP) * s)


def draw(seed: int, n: int) -> float:
    """The n-th random number of a seed: reproducible across processes and restarts."""
    return random.Random(f"{seed}:{n}").random()


@dataclass(frozen=True)
class PaperPosition:
    symbol: str
    side: PositionSide
    size: float  # base units, > 0
    entry_price: float

    def unrealized(self, last: float) -> float:
        return self.side.loss_at(self.entry_price, last, self.size)

    def margin(self, last: float, leverage: float) -> float:
        return self.size * last / leverage

    def view(self, last: float, leverage: float) -> Position:
        return Position(
            symbol=self.symbol,
            side=self.side,
            size=self.size,
            entry_price=self.entry_price,
            unrealized_pnl=self.unrealized(last),
            leverage=leverage,
        )


@dataclass(frozen=True)
class AccountView:
    cash: float
    unrealized: float
    used: float

    @property
    def total(self) -> float:
        return self.cash + self.unrealized

    @property
    def free(self) -> float:
        """May go negative: the paper exchange does not model liquidation."""
        return self.total - self.used


def account_view(
    cash: float,
    positions: Iterable[PaperPosition],
    prices: Mapping[str, float],
    leverage: float,
) -> AccountView:
    unrealized = used = 0.0
    for p in positions:
        last = prices[p.symbol]
        unrealized += p.unrealized(last)
        used += p.margin(last, leverage)
    return AccountView(cash, unrealized, used)


@dataclass(frozen=True)
class Rules:
    taker_fee: float
    slippage_bps: float
    leverage: float


@dataclass(frozen=True)
class Fill:
    symbol: str
    side: OrderSide
    size: float  # base units filled
    price: float
    fee: float
    realized_pnl: float  # before the fee
    position: PaperPosition | None  # after the fill

    @property
    def cash_delta(self) -> float:
        return self.realized_pnl - self.fee


def check_size(market: Market, size: float) -> None:
    if not math.isfinite(size):
        raise Rejected(f"{market.symbol}: size {fmt(size)} is not a number")
    if not market.size_ok(size) or size <= 0:
        raise Rejected(
            f"{market.symbol}: size {fmt(size)} is below the minimum {fmt(market.min_size)}",
            code="51020",
        )
    if not on_step(size, market.size_step):
        raise Rejected(
            f"{market.symbol}: size {fmt(size)} is not a multiple of the size step "
            f"{fmt(market.size_step)}",
            code="51121",
        )


def slipped(market: Market, side: OrderSide, base: float, bps: float) -> float:
    """``base`` moved against the taker by ``bps``, rounded to the price step."""
    factor = 1 + bps / 1e4 if side is OrderSide.BUY else 1 - bps / 1e4
    return market.round_price(base * factor)


def reducible(position: PaperPosition | None, side: OrderSide) -> float:
    """How much a reduce-only order on ``side`` may close (0 when it would open or add)."""
    if position is None or position.side.exit_side is not side:
        return 0.0
    return position.size


def net(
    position: PaperPosition | None,
    market: Market,
    side: OrderSide,
    size: float,
    price: float,
) -> tuple[PaperPosition | None, float]:
    """Apply a fill to a net position: add (averaging the entry), reduce, close or flip.

    Returns the new position and the realised P&L (before fees) of the closed part.
    """
    step = market.size_step
    if position is None or position.side.entry_side is side:
        if position is None:
            return PaperPosition(market.symbol, _side_of(side), snap(size, step), price), 0.0
        total = snap(position.size + size, step)
        entry = (position.size * position.entry_price + size * price) / (position.size + size)
        return PaperPosition(market.symbol, position.side, total, entry), 0.0
    closed = min(size, position.size)
    realized = position.side.loss_at(position.entry_price, price, closed)
    left = snap(position.size - closed, step)
    opened = snap(size - closed, step)
    if left > 0:
        return PaperPosition(market.symbol, position.side, left, position.entry_price), realized
    if opened > 0:
        return PaperPosition(market.symbol, _side_of(side), opened, price), realized
    return None, realized


def _side_of(side: OrderSide) -> PositionSide:
    return PositionSide.LONG if side is OrderSide.BUY else PositionSide.SHORT


def fill_market(
    market: Market,
    side: OrderSide,
    size: float,
    reduce_only: bool,
    cash: float,
    positions: Mapping[str, PaperPosition],
    prices: Mapping[str, float],
    rules: Rules,
) -> Fill:
    """A market order filled at once at the last price with adverse slippage.

    Raises Rejected (bad size, nothing to reduce) or InsufficientFunds; then nothing happened.
    """
    check_size(market, size)
    position = positions.get(market.symbol)
    if reduce_only:
        size = min(size, reducible(position, side))
        if size <= 0:
            raise Rejected(
                f"{market.symbol}: reduce-only {side.value} order: no position to reduce",
                code="51169",
            )
    price = slipped(market, side, prices[market.symbol], rules.slippage_bps)
    fee = rules.taker_fee * size * price
    after, realized = net(position, market, side, size, price)
    closed = min(size, reducible(position, side))
    opened = snap(size - closed, market.size_step)
    if opened > 0:
        _check_margin(
            market, side, size, closed, opened, price, fee, cash, positions, prices, rules
        )
    return Fill(market.symbol, side, size, price, fee, realized, after)


def _check_margin(
    market: Market,
    side: OrderSide,
    size: float,
    closed: float,
    opened: float,
    price: float,
    fee: float,
    cash: float,
    positions: Mapping[str, PaperPosition],
    prices: Mapping[str, float],
    rules: Rules,
) -> None:
    """The opening part's margin plus the fee must fit in the free balance left after the
    closing part (a flip first releases the margin of what it closes)."""
    others = {k: v for k, v in positions.items() if k != market.symbol}
    position = positions.get(market.symbol)
    realized = 0.0
    if closed > 0 and position is not None:
        kept, realized = net(position, market, side, closed, price)
        if kept is not None:
            others[market.symbol] = kept
    elif position is not None:
        others[market.symbol] = position
    free = account_view(cash + realized, others.values(), prices, rules.leverage).free
    margin = opened * price / rules.leverage
    if margin + fee > free + EPS:
        raise InsufficientFunds(
            f"{market.symbol}: {side.value} {fmt(size)} needs margin {margin:.2f} + fee {fee:.2f} "
            f"USDT at {rules.leverage:g}x, free balance is {free:.2f} USDT",
            code="51008",
        )


def fill_reduce(
    market: Market,
    position: PaperPosition | None,
    side: OrderSide,
    size: float,
    base_price: float,
    rules: Rules,
) -> Fill | None:
    """A reduce-only fill (a triggered stop): clipped to the position; None if nothing to do."""
    size = min(size, reducible(position, side))
    if size <= 0:
        return None
    price = slipped(market, side, base_price, rules.slippage_bps)
    after, realized = net(position, market, side, size, price)
    fee = rules.taker_fee * size * price
    return Fill(market.symbol, side, size, price, fee, realized, after)


def check_stop_side(symbol: str, side: OrderSide, trigger: float, last: float) -> None:
    """A sell stop sits below the last price, a buy stop above (OKX 51278 otherwise)."""
    if side is OrderSide.SELL and trigger >= last:
        raise StopWouldTrigger(
            f"{symbol}: SL trigger price {fmt(trigger)} cannot be higher than the last price "
            f"{fmt(last)} (a sell stop must sit below the market)",
            code="51278",
        )
    if side is OrderSide.BUY and trigger <= last:
        raise StopWouldTrigger(
            f"{symbol}: SL trigger price {fmt(trigger)} cannot be lower than the last price "
            f"{fmt(last)} (a buy stop must sit above the market)",
            code="51278",
        )


def candle_path(open_: float, high: float, low: float, close: float) -> list[float]:
    """The price path assumed inside a candle: a falling candle visits its high first."""
    if close < open_:
        return [open_, high, low, close]
    return [open_, low, high, close]


def _crossed(side: OrderSide, price: float, trigger: float) -> bool:
    return price <= trigger if side is OrderSide.SELL else price >= trigger


def hit(path: Sequence[float], side: OrderSide, trigger: float) -> tuple[float, float] | None:
    """Where along ``path`` a stop fires: (distance travelled, base fill price), or None.

    A sell stop fires when the price falls to the trigger or below, a buy stop when it rises to
    it or above. Already crossed at the start of the path (a gap) -> fills from the start
    price, when that is worse than the trigger.
    """
    if _crossed(side, path[0], trigger):
        return 0.0, path[0]
    travelled = 0.0
    for a, b in itertools.pairwise(path):
        if _crossed(side, b, trigger):
            return travelled + abs(a - trigger), trigger
        travelled += abs(b - a)
    return None


def fired_stops(stops: Iterable[StopOrder], path: Sequence[float]) -> list[tuple[StopOrder, float]]:
    """The stops a price path fires, in the order it reaches them, with their base price."""
    found: list[tuple[float, float, int, str, StopOrder, float]] = []
    for s in stops:
        at = hit(path, s.side, s.trigger_price)
        if at is not None:
            found.append((at[0], s.created_at, len(s.id), s.id, s, at[1]))
    found.sort(key=lambda t: t[:4])
    return [(t[4], t[5]) for t in found]
