"""/pnl [days]: realised P&L per exchange, the figure `warden pnl` shows, and equity from the
exchange's balance.

The trades come from the same accounting as `warden pnl` (trading.accounting over the
exchange's fills: net of the entry and the exit fee and funding). Only an exchange kind without
the ``fills`` capability falls back to the journal's exit rows.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.charts.model import EquityChartData, EquitySeries
from bot.charts.series import anchored_equity
from bot.exchanges import kind_of
from bot.services import Account
from bot.telegram.render import b, esc, money, num, utc_day
from bot.telegram.services import BotServices
from trading.accounting import account_trades, in_period
from trading.errors import ExchangeError

DEFAULT_DAYS = 30


@dataclass
class PnlSummary:
    html: str
    chart: EquityChartData | None  # one equity line per exchange whose balance was read


class Step(Protocol):
    @property
    def at(self) -> float: ...

    @property
    def pnl(self) -> float: ...


def equity_points(
    closes: Sequence[Step], equity_now: float, since: float, now: float
) -> tuple[tuple[float, float], ...]:
    """One account's equity curve from its realised P&L (closed trades or journal exits),
    ending at today's equity."""
    return anchored_equity(((c.at, c.pnl) for c in closes), equity_now, since, now)


@dataclass(frozen=True)
class Closed:
    """One closed trade as /pnl counts it."""

    symbol: str
    at: float
    pnl: float  # net of every fee (and funding, from fills)
    fees: float


async def closed_trades(svc: BotServices, acct: Account, since: float) -> list[Closed]:
    """The account's trades closed since ``since``: `warden pnl`'s, from the exchange's fills;
    the journal's exits only for a kind whose adapter lists no fills."""
    if kind_of(svc.config.exchanges[acct.name]).capabilities.fills:
        bound = svc.config.accounting.slippage_bound_bps
        trades = await account_trades(acct.name, acct.exchange, acct.journal, acct.scope, bound)
        return [Closed(t.symbol, t.closed_at, t.net_pnl, t.fees) for t in in_period(trades, since)]
    exits = await acct.journal.exits(acct.scope)
    return [Closed(e.symbol, e.at, e.pnl, e.fee) for e in exits if e.at >= since]


async def pnl_summary(svc: BotServices, days: int | None) -> PnlSummary:
    days = days or DEFAULT_DAYS
    now = time.time()
    since = now - days * 86400
    lines = [f"<b>P&amp;L</b> · last {days} day(s), since {esc(utc_day(since))}"]
    series: list[EquitySeries] = []
    equity_total = 0.0
    currencies: set[str] = set()
    for acct in svc.accounts.values():
        try:
            closes = await closed_trades(svc, acct, since)
        except ExchangeError as exc:
            lines += ["", f"{b(acct.name)}: cannot read the exchange's fills ({esc(exc)})"]
            continue
        realised = sum(c.pnl for c in closes)
        fees = sum(c.fees for c in closes)
        won = sum(1 for c in closes if c.pnl > 0)
        lines += [
            "",
            f"{b(acct.name)}: realised {esc(money(realised))} after fees {num(fees)}"
            f" · {len(closes)} closed trade(s), {won} won, {len(closes) - won} lost",
        ]
        by_symbol: dict[str, list[float]] = defaultdict(list)
        for c in closes:
            by_symbol[c.symbol].append(c.pnl)
        for symbol, pnls in sorted(by_symbol.items()):
            lines.append(f"   {esc(symbol)}: {esc(money(sum(pnls)))} ({len(pnls)})")
        try:
            bal = await acct.exchange.balance()
        except ExchangeError as exc:
            lines.append(f"   equity: cannot read the exchange ({esc(exc)})")
            continue
        equity_total += bal.total
        series.append(
            EquitySeries(acct.name, equity_points(closes, bal.total, since, now), bal.currency)
        )
        currencies.add(bal.currency)
        free = num(round(bal.free, 2))
        lines.append(f"   equity {num(round(bal.total, 2))} {esc(bal.currency)} (free {free})")
    title = f"Equity · last {days} day(s) · realised P&L steps, ending at today's equity"
    chart = EquityChartData(title, tuple(series)) if series else None
    if len(svc.accounts) > 1 and len(currencies) == 1:
        lines += ["", f"total equity {num(round(equity_total, 2))} {esc(currencies.pop())}"]
    return PnlSummary("\n".join(lines), chart)
