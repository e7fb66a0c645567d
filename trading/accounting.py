"""Honest accounting: trades built from the exchange's fills, matched with Warden's journal.

Per symbol, in the exchange's order: a trade opens when the net position leaves 0 and closes
when it returns to 0; a fill that crosses 0 closes one trade and opens the next. Realised P&L
comes from the fills (prices, fees, funding where reported), never from Warden's own notes;
the journal only says whose fills they were and why (trading.attribution).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from functools import partial
from typing import Any

from trading import retry
from trading.attribution import (
    EPS,
    AccountingJournal,
    Fault,
    JournalView,
    Label,
    Part,
    attribute,
    exit_reason,
    read_journal,
    strategy_of,
    warden_entries,
    warden_size,
)
from trading.errors import ExchangeError
from trading.journal import Intent, exit_pnl
from trading.models import Fill, OrderSide, PositionSide
from trading.port import ExchangePort


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(x: float) -> float:
    return round(x, 8)


def owner_of(purpose: str | None) -> str:
    """Who a position belongs to, from the purpose of the entry that opened it: a strategy's
    name, "manual" (cli, Telegram), or "external" (no Warden entry: opened elsewhere)."""
    return "external" if purpose is None else strategy_of(purpose)


def trade_pnl(
    side: PositionSide,
    size: float,
    entry_price: float,
    exit_price: float,
    fees: float,
    funding: float = 0.0,
) -> float:
    """Realised P&L of a round trip net of every fee paid (entry and exit) and funding, behind
    `warden pnl`, the daily summary and the closing alerts: the journal's exit P&L formula
    (``exit_pnl``, the one an exit row is written with), less funding."""
    return exit_pnl(side, size, entry_price, exit_price, fees) - funding


async def closing_pnl(
    exchange: ExchangePort,
    entry: Intent | None,
    side: PositionSide,
    size: float,
    exit_price: float,
    exit_fee: float,
    entry_price: float,
) -> float:
    """What a closing alert shows: ``trade_pnl`` with the entry's own fill price and fee read
    from the exchange's entry order (its share for the size closed), as `warden pnl` reads
    them from the fills. Without that order (not Warden's entry, or unreadable) the entry fee
    is unknown and only the exit fee is taken, at ``entry_price``."""
    entry_fee = 0.0
    if entry is not None:
        # get_order is part of every adapter (the port); only the exchange's own errors are
        # expected here
        with contextlib.suppress(ExchangeError):
            order = await retry.read(
                partial(exchange.get_order, entry.symbol, client_id=entry.client_id)
            )
            if order is not None and order.filled:
                entry_fee = order.fee * min(1.0, size / order.filled)
                entry_price = order.average_price or entry_price
    return trade_pnl(side, size, entry_price, exit_price, entry_fee + exit_fee)


@dataclass(frozen=True)
class RoundTrip:
    """The fills of one trade: entries (away from 0) and exits (back to 0)."""

    symbol: str
    side: PositionSide
    entries: tuple[Part, ...]
    exits: tuple[Part, ...]


@dataclass
class _Building:
    symbol: str
    side: PositionSide
    entries: list[Part] = field(default_factory=list)
    exits: list[Part] = field(default_factory=list)


def round_trips(fills: Iterable[Fill]) -> tuple[list[RoundTrip], list[RoundTrip]]:
    """(closed, still open) trades from fills given oldest first."""
    closed: list[RoundTrip] = []
    current: dict[str, _Building] = {}
    net: dict[str, float] = defaultdict(float)
    for f in fills:
        sign = 1.0 if f.side is OrderSide.BUY else -1.0
        left = f.size
        trip = current.get(f.symbol)
        if trip is not None and net[f.symbol] * sign < 0:
            closing = min(left, abs(net[f.symbol]))
            trip.exits.append(Part(f, closing))
            net[f.symbol] += sign * closing
            left -= closing
            if abs(net[f.symbol]) < EPS:
                net[f.symbol] = 0.0
                closed.append(_freeze(trip))
                del current[f.symbol]
        if left > EPS:
            trip = current.setdefault(
                f.symbol,
                _Building(f.symbol, PositionSide.LONG if sign > 0 else PositionSide.SHORT),
            )
            trip.entries.append(Part(f, left))
            net[f.symbol] += sign * left
    return closed, [_freeze(t) for t in current.values()]


def _freeze(t: _Building) -> RoundTrip:
    return RoundTrip(t.symbol, t.side, tuple(t.entries), tuple(t.exits))


@dataclass(frozen=True)
class Trade:
    exchange: str
    symbol: str
    strategy: str  # a strategy's name, "manual", or "external" (no Warden entry)
    side: PositionSide
    size: float  # base units entered (and closed)
    warden_size: float  # of which Warden's own entry fills
    entry_price: float  # average
    exit_price: float  # average
    gross_pnl: float  # from prices alone
    fees: float
    funding: float
    net_pnl: float  # gross - fees - funding
    exit_reason: str
    opened_at: float
    closed_at: float
    attribution: Label
    strategy_loss: float
    execution_cost: float
    external_loss: float
    faults: tuple[Fault, ...] = ()

    @property
    def holding_seconds(self) -> float:
        return self.closed_at - self.opened_at

    @property
    def win(self) -> bool:
        return self.net_pnl > 0

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update({k: _money(data[k]) for k in MONEY_FIELDS})
        data.update(
            side=self.side.value,
            opened_at=iso(self.opened_at),
            closed_at=iso(self.closed_at),
            holding_seconds=round(self.holding_seconds, 3),
            attribution=self.attribution.value,
            faults=[f.as_json() for f in self.faults],
        )
        return {k: data[k] for k in CSV_FIELDS}

    def csv_row(self) -> list[str]:
        data = self.as_json()
        data["faults"] = "; ".join(f"{f.kind.value} {f.cost:.2f}" for f in self.faults)
        return [str(data[k]) for k in CSV_FIELDS]


MONEY_FIELDS = (
    "gross_pnl",
    "fees",
    "funding",
    "net_pnl",
    "strategy_loss",
    "execution_cost",
    "external_loss",
)
# the columns of the CSV export and the keys of a trade in JSON, in this order
CSV_FIELDS = (*(f.name for f in fields(Trade)), "holding_seconds")


def build_trade(exchange: str, trip: RoundTrip, view: JournalView, bound_bps: float) -> Trade:
    size = sum(p.size for p in trip.entries)
    out = sum(p.size for p in trip.exits)
    paid = sum(p.size * p.fill.price for p in trip.entries)
    got = sum(p.size * p.fill.price for p in trip.exits)
    fees = sum(p.fee for p in (*trip.entries, *trip.exits))
    funding = sum(p.funding for p in (*trip.entries, *trip.exits))
    # a closed trip's exits add up to its entries: priced per base unit, at the averages
    gross = trade_pnl(trip.side, 1.0, paid, got, 0.0)
    net = trade_pnl(trip.side, 1.0, paid, got, fees, funding)
    mine = warden_entries(trip.entries, view)
    split = attribute(trip.side, trip.entries, trip.exits, net, view, bound_bps)
    return Trade(
        exchange=exchange,
        symbol=trip.symbol,
        strategy=strategy_of(mine[0].purpose) if mine else "external",
        side=trip.side,
        size=size,
        warden_size=warden_size(trip.entries, view),
        entry_price=round(paid / size, 10),
        exit_price=round(got / out, 10),
        gross_pnl=gross,
        fees=fees,
        funding=funding,
        net_pnl=net,
        exit_reason=exit_reason(trip.exits[-1].fill, view),
        opened_at=trip.entries[0].fill.ts,
        closed_at=trip.exits[-1].fill.ts,
        attribution=split.label,
        strategy_loss=split.strategy_loss,
        execution_cost=split.execution_cost,
        external_loss=split.external_loss,
        faults=split.faults,
    )


def build_trades(
    exchange: str, fills: Iterable[Fill], view: JournalView, bound_bps: float
) -> list[Trade]:
    closed, _ = round_trips(fills)
    trades = [build_trade(exchange, t, view, bound_bps) for t in closed]
    return sorted(trades, key=lambda t: t.closed_at)


async def account_trades(
    exchange_name: str,
    exchange: ExchangePort,
    journal: AccountingJournal,
    scope: str,
    bound_bps: float,
    decision_prices: Mapping[str, float] | None = None,
) -> list[Trade]:
    """Every closed trade on one account. All fills are read (a trade closed in a period may
    have opened before it): filter the result with ``in_period``."""
    fills = await retry.read(lambda: exchange.fills(None, None))
    history = await retry.read(lambda: exchange.stop_history(None, None))
    view = await read_journal(journal, scope, {f.symbol for f in fills}, history, decision_prices)
    return build_trades(exchange_name, fills, view, bound_bps)


def in_period(
    trades: Iterable[Trade], since: float | None, until: float | None = None
) -> list[Trade]:
    """Trades closed at or after ``since`` and before ``until``."""
    return [
        t
        for t in trades
        if (since is None or t.closed_at >= since) and (until is None or t.closed_at < until)
    ]


@dataclass(frozen=True)
class SummaryRow:
    exchange: str
    strategy: str
    trades: int
    wins: int
    net_pnl: float
    gross_pnl: float
    fees: float
    funding: float
    execution_cost: float
    strategy_loss: float
    external_loss: float

    @property
    def win_rate(self) -> float:
        return self.wins / self.trades if self.trades else 0.0

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            f.name: _money(v) if isinstance(v := getattr(self, f.name), float) else v
            for f in fields(self)
        }
        data["losses"] = self.trades - self.wins
        data["win_rate"] = round(self.win_rate, 6)  # a fraction in [0, 1], as everywhere
        # "trades" counts closed trades only; the explicit name says so (open ones have no
        # realised P&L yet: `warden status` shows them)
        data["closed_trades"] = self.trades
        return data


def _row(exchange: str, strategy: str, trades: Sequence[Trade]) -> SummaryRow:
    return SummaryRow(
        exchange=exchange,
        strategy=strategy,
        trades=len(trades),
        wins=sum(1 for t in trades if t.win),
        net_pnl=sum((t.net_pnl for t in trades), 0.0),
        gross_pnl=sum((t.gross_pnl for t in trades), 0.0),
        fees=sum((t.fees for t in trades), 0.0),
        funding=sum((t.funding for t in trades), 0.0),
        execution_cost=sum((t.execution_cost for t in trades), 0.0),
        strategy_loss=sum((t.strategy_loss for t in trades), 0.0),
        external_loss=sum((t.external_loss for t in trades), 0.0),
    )


def summarize(trades: Iterable[Trade]) -> list[SummaryRow]:
    """One row per (exchange, strategy), sorted by both."""
    groups: dict[tuple[str, str], list[Trade]] = defaultdict(list)
    for t in trades:
        groups[(t.exchange, t.strategy)].append(t)
    return [_row(ex, st, ts) for (ex, st), ts in sorted(groups.items())]


def totals(trades: Sequence[Trade]) -> SummaryRow:
    return _row("all", "all", trades)


def equity_curve(trades: Iterable[Trade]) -> list[tuple[float, float]]:
    """(close time, cumulative net P&L) after each trade, in closing order."""
    points: list[tuple[float, float]] = []
    total = 0.0
    for t in sorted(trades, key=lambda t: t.closed_at):
        total += t.net_pnl
        points.append((t.closed_at, total))
    return points
