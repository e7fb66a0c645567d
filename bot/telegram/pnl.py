"""/pnl [days]: realised P&L from the journal's exits, equity from the exchange's balance."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

from bot.charts.model import EquityChartData, EquitySeries
from bot.charts.series import anchored_equity
from bot.telegram.render import b, esc, money, num, utc_day
from bot.telegram.services import BotServices
from trading.errors import ExchangeError
from trading.journal import Exit

DEFAULT_DAYS = 30


@dataclass
class PnlSummary:
    html: str
    chart: EquityChartData | None  # one equity line per exchange whose balance was read


def equity_points(
    exits: list[Exit], equity_now: float, since: float, now: float
) -> tuple[tuple[float, float], ...]:
    """One account's equity curve from its realised P&L, ending at today's equity."""
    return anchored_equity(((e.at, e.pnl) for e in exits), equity_now, since, now)


async def pnl_summary(svc: BotServices, days: int | None) -> PnlSummary:
    days = days or DEFAULT_DAYS
    now = time.time()
    since = now - days * 86400
    lines = [f"<b>P&amp;L</b> · last {days} day(s), since {esc(utc_day(since))}"]
    series: list[EquitySeries] = []
    equity_total = 0.0
    currencies: set[str] = set()
    for acct in svc.accounts.values():
        exits = [e for e in await acct.journal.exits(acct.scope) if e.at >= since]
        realised = sum(e.pnl for e in exits)
        fees = sum(e.fee for e in exits)
        won = sum(1 for e in exits if e.pnl > 0)
        lines += [
            "",
            f"{b(acct.name)}: realised {esc(money(realised))} after fees {num(fees)}"
            f" · {len(exits)} exit(s), {won} won, {len(exits) - won} lost",
        ]
        by_symbol: dict[str, list[float]] = defaultdict(list)
        for e in exits:
            by_symbol[e.symbol].append(e.pnl)
        for symbol, pnls in sorted(by_symbol.items()):
            lines.append(f"   {esc(symbol)}: {esc(money(sum(pnls)))} ({len(pnls)})")
        try:
            bal = await acct.exchange.balance()
        except ExchangeError as exc:
            lines.append(f"   equity: cannot read the exchange ({esc(exc)})")
            continue
        equity_total += bal.total
        series.append(
            EquitySeries(acct.name, equity_points(exits, bal.total, since, now), bal.currency)
        )
        currencies.add(bal.currency)
        free = num(round(bal.free, 2))
        lines.append(f"   equity {num(round(bal.total, 2))} {esc(bal.currency)} (free {free})")
    title = f"Equity · last {days} day(s) · realised P&L steps, ending at today's equity"
    chart = EquityChartData(title, tuple(series)) if series else None
    if len(svc.accounts) > 1 and len(currencies) == 1:
        lines += ["", f"total equity {num(round(equity_total, 2))} {esc(currencies.pop())}"]
    return PnlSummary("\n".join(lines), chart)
