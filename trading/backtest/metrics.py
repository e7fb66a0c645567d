"""Backtest figures: round trips from the exchange's own fills, drawdown, exposure.

The exchange is the truth here too: trades are rebuilt from the paper exchange's fills (market
orders and triggered stops), not from what the agent believes it did. A round trip starts when a
fill opens a position from flat and ends when the position is flat again; it belongs to the
strategy whose entry opened it. Its P&L is net of every fee paid on the way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trading.models import OrderSide, PositionSide
from trading.paper.store import Trade

EPS = 1e-12


@dataclass(frozen=True)
class RoundTrip:
    strategy: str
    account: str
    symbol: str
    side: PositionSide
    size: float  # the largest size held
    entry_at: float
    entry_price: float  # size-weighted average of the opening fills
    exit_at: float | None  # None: still open at the end
    exit_price: float | None  # size-weighted average of the closing fills
    # why it closed, in the journal's vocabulary (warden pnl's): stop_loss | signal | manual |
    # emergency(<why>) | external; None while still open
    exit_reason: str | None
    pnl: float  # realised, net of all its fees (entry fee included)
    fees: float

    @property
    def closed(self) -> bool:
        return self.exit_at is not None


@dataclass
class _Open:
    strategy: str
    side: PositionSide
    entry_at: float
    size: float = 0.0
    peak: float = 0.0
    entry_value: float = 0.0
    entry_size: float = 0.0
    exit_value: float = 0.0
    exit_size: float = 0.0
    pnl: float = 0.0
    fees: float = 0.0
    reason: str | None = None

    def trip(self, account: str, symbol: str, exit_at: float | None) -> RoundTrip:
        return RoundTrip(
            strategy=self.strategy,
            account=account,
            symbol=symbol,
            side=self.side,
            size=self.peak,
            entry_at=self.entry_at,
            entry_price=self.entry_value / self.entry_size if self.entry_size else 0.0,
            exit_at=exit_at,
            exit_price=self.exit_value / self.exit_size if self.exit_size else None,
            exit_reason=self.reason if exit_at is not None else None,
            pnl=self.pnl,
            fees=self.fees,
        )


def _side_of(side: OrderSide) -> PositionSide:
    return PositionSide.LONG if side is OrderSide.BUY else PositionSide.SHORT


@dataclass
class Ledger:
    """One account's fills, in order, turned into round trips and P&L per strategy."""

    account: str
    trips: list[RoundTrip] = field(default_factory=list)
    open: dict[str, _Open] = field(default_factory=dict)  # by symbol
    realized: dict[str, float] = field(default_factory=dict)  # by strategy, net of fees
    fees: dict[str, float] = field(default_factory=dict)

    def fill(self, trade: Trade, owner: str, reason: str) -> None:
        """``owner``: the strategy if this fill opens a position; ``reason``: why it closes."""
        pos = self.open.get(trade.symbol)
        if pos is None:
            pos = self.open[trade.symbol] = _Open(owner, _side_of(trade.side), trade.ts)
        net = trade.realized_pnl - trade.fee
        pos.pnl += net
        pos.fees += trade.fee
        self.realized[pos.strategy] = self.realized.get(pos.strategy, 0.0) + net
        self.fees[pos.strategy] = self.fees.get(pos.strategy, 0.0) + trade.fee
        if trade.side is pos.side.entry_side:
            pos.size += trade.size
            pos.peak = max(pos.peak, pos.size)
            pos.entry_value += trade.size * trade.price
            pos.entry_size += trade.size
            return
        closing = min(trade.size, pos.size)
        pos.size -= closing
        pos.exit_value += closing * trade.price
        pos.exit_size += closing
        pos.reason = reason
        if pos.size > EPS * max(1.0, pos.peak):
            return
        self.trips.append(pos.trip(self.account, trade.symbol, trade.ts))
        del self.open[trade.symbol]
        left = trade.size - closing
        if left > EPS * max(1.0, trade.size):  # a flip: the rest opens the other way
            flipped = _Open(owner, _side_of(trade.side), trade.ts, left, left)
            flipped.entry_value, flipped.entry_size = left * trade.price, left
            self.open[trade.symbol] = flipped

    def owner_of(self, symbol: str) -> str | None:
        pos = self.open.get(symbol)
        return None if pos is None else pos.strategy

    def open_trips(self) -> list[RoundTrip]:
        return [p.trip(self.account, s, None) for s, p in self.open.items()]


@dataclass
class Drawdown:
    """Peak-to-trough of an equity series, in money and in percent of the peak."""

    peak: float | None = None
    worst: float = 0.0
    worst_pct: float = 0.0

    def update(self, equity: float) -> None:
        if self.peak is None or equity > self.peak:
            self.peak = equity
            return
        drop = self.peak - equity
        self.worst = max(self.worst, drop)
        if self.peak > 0:
            self.worst_pct = max(self.worst_pct, drop / self.peak * 100)


def max_drawdown(curve: list[float]) -> tuple[float, float]:
    """(money, percent) of the deepest fall from a running peak."""
    dd = Drawdown()
    for equity in curve:
        dd.update(equity)
    return dd.worst, dd.worst_pct


def win_rate(trips: list[RoundTrip]) -> float | None:
    """The fraction (0..1, as `warden pnl`) of closed round trips with a P&L above zero after
    fees; None with no closed trade."""
    closed = [t for t in trips if t.closed]
    if not closed:
        return None
    return sum(1 for t in closed if t.pnl > 0) / len(closed)


def exposure(held: int, steps: int) -> float:
    """Percent of steps (candles) that ended with a position open."""
    return held / steps * 100 if steps else 0.0


@dataclass(frozen=True)
class Summary:
    name: str  # a strategy's name, or "total"
    trades: int  # closed round trips (open ones are in open_positions)
    wins: int
    win_rate: float | None  # fraction (0..1) of closed round trips with P&L > 0 after fees
    net_pnl: float  # end equity - start equity (open positions marked to the last close)
    fees: float
    max_drawdown: float
    max_drawdown_pct: float
    exposure_pct: float  # percent of candles ending with a position open
    start_equity: float
    end_equity: float
    open_positions: int
    steps: int


def summarize(
    name: str,
    trips: list[RoundTrip],
    open_positions: int,
    fees: float,
    dd: Drawdown,
    exposure_pct: float,
    start: float,
    end: float,
    steps: int,
) -> Summary:
    return Summary(
        name=name,
        trades=len(trips),
        wins=sum(1 for t in trips if t.pnl > 0),
        win_rate=win_rate(trips),
        net_pnl=end - start,
        fees=fees,
        max_drawdown=dd.worst,
        max_drawdown_pct=dd.worst_pct,
        exposure_pct=exposure_pct,
        start_equity=start,
        end_equity=end,
        open_positions=open_positions,
        steps=steps,
    )
