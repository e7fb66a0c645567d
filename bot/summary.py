"""Accounting for the bot: trades across accounts, the daily summary, the scheduled audit's alerts.

``daily_summary`` and ``audit_alerts`` are pure (text in, text out); ``collect_daily_summary``
reads the accounts the daemon already holds. Reading never takes the execution lease.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.services import Account
from trading import retry
from trading.accounting import Trade, account_trades, in_period, summarize, totals
from trading.attribution import DEFAULT_SLIPPAGE_BOUND_BPS
from trading.audit import Finding, Level
from trading.errors import ExchangeError
from trading.journal import Severity
from trading.models import Position, StopOrder

DAY = 86_400.0


async def load_trades(
    accounts: Iterable[Account], bound_bps: float = DEFAULT_SLIPPAGE_BOUND_BPS
) -> tuple[list[Trade], list[str]]:
    """Every closed trade of the accounts, by closing time; an account whose exchange cannot
    be read is an error line, the others still count."""
    trades: list[Trade] = []
    errors: list[str] = []
    for acct in accounts:
        try:
            trades += await account_trades(
                acct.name, acct.exchange, acct.journal, acct.scope, bound_bps
            )
        except ExchangeError as exc:
            errors.append(f"{acct.name}: cannot read the exchange: {exc}")
    return sorted(trades, key=lambda t: t.closed_at), errors


@dataclass(frozen=True)
class OpenPosition:
    exchange: str
    position: Position
    stops: tuple[StopOrder, ...]  # the live stops on the closing side

    def stop_state(self) -> str:
        if not self.stops:
            return "NO LIVE STOP"
        s = self.stops[0]
        size = abs(s.size - self.position.size) <= 1e-9
        cover = "full size" if size else f"covers {s.size:g} of {self.position.size:g}"
        extra = f" (+{len(self.stops) - 1} more)" if len(self.stops) > 1 else ""
        return f"stop {s.trigger_price:g} live, {cover}{extra}"


async def open_positions(accounts: Iterable[Account]) -> tuple[list[OpenPosition], list[str]]:
    out: list[OpenPosition] = []
    errors: list[str] = []
    for acct in accounts:
        try:
            positions = await retry.read(acct.exchange.positions)
            stops = await retry.read(acct.exchange.open_stops)
        except ExchangeError as exc:
            errors.append(f"{acct.name}: cannot read the exchange: {exc}")
            continue
        for p in positions:
            mine = tuple(s for s in stops if s.symbol == p.symbol and s.side is p.side.exit_side)
            out.append(OpenPosition(acct.name, p, mine))
    return out, errors


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def daily_summary(
    trades: Sequence[Trade],
    positions: Sequence[OpenPosition],
    since: float,
    until: float,
    currency: str = "USDT",
    errors: Sequence[str] = (),
) -> str:
    """The day in a few lines: P&L, trades, execution-fault cost, open positions and stops.

    ``trades`` may hold more than the day: only those closed in [since, until) count."""
    day = in_period(trades, since, until)
    tot = totals(day)
    lines = [f"Daily summary {_day(since)} - {_day(until)}"]
    if day:
        lines.append(
            f"P&L {tot.net_pnl:+,.2f} {currency} net of fees over {tot.trades} closed trade(s) "
            f"({tot.wins} won, {tot.trades - tot.wins} lost; open positions not included); "
            f"fees {tot.fees:,.2f}"
        )
        faults: dict[str, float] = {}
        for f in (f for t in day for f in t.faults):
            faults[f.kind.value] = faults.get(f.kind.value, 0.0) + f.cost
        detail = ", ".join(f"{k} {v:,.2f}" for k, v in sorted(faults.items()))
        lines.append(
            f"Execution-fault cost {tot.execution_cost:,.2f} {currency}"
            + (f" ({detail})" if detail else " (none)")
        )
        for row in summarize(day):
            lines.append(
                f"  {row.exchange} {row.strategy}: {row.trades} closed trade(s), win rate "
                f"{row.win_rate:.0%}, net {row.net_pnl:+,.2f}, execution {row.execution_cost:,.2f}"
            )
    else:
        lines.append("No trades closed.")
    if positions:
        lines.append(f"Open positions ({len(positions)}):")
        for o in positions:
            p = o.position
            lines.append(
                f"  {o.exchange} {p.symbol} {p.side.value} {p.size:g} @ {p.entry_price:g}, "
                f"uPnL {p.unrealized_pnl:+,.2f}: {o.stop_state()}"
            )
    else:
        lines.append("No open positions.")
    lines += [f"error: {e}" for e in errors]
    return "\n".join(lines)


async def collect_daily_summary(
    accounts: Sequence[Account],
    now: float,
    bound_bps: float = DEFAULT_SLIPPAGE_BOUND_BPS,
    currency: str = "USDT",
) -> str:
    """The summary of the 24 hours before ``now``, read from the accounts' exchanges."""
    trades, errors = await load_trades(accounts, bound_bps)
    positions, more = await open_positions(accounts)
    return daily_summary(trades, positions, now - DAY, now, currency, [*errors, *more])


_SEVERITY = {Level.CRITICAL: Severity.CRITICAL, Level.WARNING: Severity.WARNING}


def audit_alerts(findings: Sequence[Finding]) -> list[tuple[Severity, str, str]]:
    """(severity, text, key) per alert for the scheduled audit.

    One alert per finding that fails the audit, keyed by kind, exchange, symbol and its rank
    among the same (the exchange's history order is stable), so ``journal.alert(...,
    repeat_after=...)`` re-raises a lasting finding without spamming and a new one alerts. The
    informational findings (lease refusals) are one summary line; a clean audit says so."""
    out: list[tuple[Severity, str, str]] = []
    info = [f for f in findings if f.severity is Level.INFO]
    seen: Counter[tuple[str, str, str]] = Counter()
    for f in findings:
        if f.severity is Level.INFO:
            continue
        where = f"{f.exchange} {f.symbol}".strip()
        ident = (f.kind.value, f.exchange, f.symbol)
        key = f"audit:{':'.join(ident)}:{seen[ident]}"
        seen[ident] += 1
        text = f"audit: {f.kind.value} {where}: {f.detail} -> {f.action}"
        out.append((_SEVERITY[f.severity], text, key))
    if info:
        kinds = Counter(f.kind.value for f in info)
        text = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        out.append((Severity.INFO, f"audit: informational: {text}", "audit:info"))
    if not out:
        out.append((Severity.INFO, "audit: clean", "audit:clean"))
    return out
