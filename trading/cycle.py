"""One strategy cycle, the same for the scheduler, `warden cycle --once`, /cycle and backtests.

fetch closed candles (all symbols at once) -> decide -> size -> execute through the guarded
executor -> guardian check. The caller holds the account lease for the whole cycle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from trading import retry
from trading.accounting import owner_of
from trading.executor import Executor, Outcome
from trading.guardian import Guardian
from trading.journal import Journal
from trading.lease import LeaseGuard
from trading.logfmt import event
from trading.marketdata import closed_candles
from trading.models import Candle, Position
from trading.port import ExchangePort
from trading.sizing import Refused, SizingRules, size_position
from trading.strategies.base import Action, Decision, Strategy

log = logging.getLogger("warden.cycle")

# concurrent candle fetches per cycle: fast for 50 symbols, well inside exchange rate limits
FETCH_CONCURRENCY = 8

# (strategy, symbol) -> the foreign position last reported, so "left alone" is said once per
# position at INFO, not every cycle (a strategy with a 1-minute timeframe would flood the log)
_TOLD_FOREIGN: dict[tuple[str, str], tuple[str, str, float]] = {}


def _left_alone(run: StrategyRun, symbol: str, position: Position, owner: str) -> str:
    """Why the strategy does not touch this position; logged once per (strategy, position)."""
    detail = f"position not opened by this strategy (owner: {owner}): left alone"
    seen = (owner, position.side.value, position.entry_price)
    if _TOLD_FOREIGN.get((run.name, symbol)) != seen:
        _TOLD_FOREIGN[(run.name, symbol)] = seen
        event(
            log,
            "cycle.position_not_owned",
            strategy=run.name,
            symbol=symbol,
            owner=owner,
            side=position.side.value,
            entry_price=position.entry_price,
        )
    return detail


@dataclass
class SymbolOutcome:
    symbol: str
    decision: Decision
    outcome: str  # hold | entered | exited | refused | rejected | emergency_closed | ...
    detail: str = ""

    def line(self) -> str:
        extra = f" -> {self.detail}" if self.detail else ""
        return f"{self.symbol}: {self.decision.action.value} ({self.decision.reason}){extra}"


@dataclass
class CycleReport:
    strategy: str
    symbols: list[SymbolOutcome] = field(default_factory=list)
    guardian_actions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        if self.errors:
            return "error"
        kinds = {s.outcome for s in self.symbols}
        for k in ("emergency_closed", "entered", "exited", "refused", "rejected"):
            if k in kinds:
                return k
        return "hold"

    def summary(self) -> str:
        return "; ".join([s.line() for s in self.symbols] + self.guardian_actions + self.errors)


@dataclass(frozen=True)
class StrategyRun:
    """A configured strategy: its name, rules, symbols and timeframe."""

    name: str
    strategy: Strategy
    symbols: tuple[str, ...]
    timeframe: str
    sizing: SizingRules

    @property
    def purpose(self) -> str:
        return f"cycle {self.name}"


async def _fetch(
    exchange: ExchangePort, run: StrategyRun, now: float | None
) -> dict[str, list[Candle] | Exception]:
    sem = asyncio.Semaphore(FETCH_CONCURRENCY)
    limit = run.strategy.lookback + 2

    async def one(symbol: str) -> list[Candle] | Exception:
        async with sem:
            try:
                candles = await retry.read(
                    lambda: exchange.candles(symbol, run.timeframe, limit=limit)
                )
            except Exception as exc:  # reported per symbol, the others still trade
                return exc
        return closed_candles(candles, now, run.timeframe) if now is not None else candles

    if len(run.symbols) == 1:  # nothing to overlap: no task to schedule
        results = [await one(run.symbols[0])]
    else:
        results = await asyncio.gather(*(one(s) for s in run.symbols))
    return dict(zip(run.symbols, results, strict=True))


async def run_cycle(
    lease: LeaseGuard,
    run: StrategyRun,
    exchange: ExchangePort,
    executor: Executor,
    guardian: Guardian,
    journal: Journal,
    scope: str,
    now: float | None = None,
    allow_entries: bool = True,
    held_back: str = "paused or not yet reconciled",
) -> CycleReport:
    """``now`` drops a still-forming last candle (real exchanges); paper replay passes None.
    ``held_back``: why entries are not allowed, for the refusal (e.g. the pause's reason)."""
    report = CycleReport(run.name)
    fetched = await _fetch(exchange, run, now)
    positions = {p.symbol: p for p in await retry.read(exchange.positions)}
    for symbol in run.symbols:
        got = fetched[symbol]
        if isinstance(got, Exception):
            report.errors.append(f"{symbol}: candles unavailable: {got}")
            continue
        position = positions.get(symbol)
        owner = await journal.position_owner(scope, symbol) if position else None
        mine = position is not None and owner == run.purpose
        decision = run.strategy.decide(got, position)
        if position is not None and not mine:
            outcome = SymbolOutcome(
                symbol, decision, "hold", _left_alone(run, symbol, position, owner_of(owner))
            )
        else:
            _TOLD_FOREIGN.pop((run.name, symbol), None)
            outcome = await _act(
                lease,
                run,
                decision,
                symbol,
                position,
                positions,
                exchange,
                executor,
                allow_entries,
                held_back,
            )
        report.symbols.append(outcome)
        quiet = outcome.outcome == "hold"
        event(
            log,
            "cycle.decision",
            logging.DEBUG if quiet else logging.INFO,
            strategy=run.name,
            symbol=symbol,
            action=decision.action,
            outcome=outcome.outcome,
            reason=decision.reason,
        )
    guard = await guardian.reconcile(lease)
    report.guardian_actions.extend(guard.actions)
    report.errors.extend(guard.errors)
    return report


async def _act(
    lease: LeaseGuard,
    run: StrategyRun,
    decision: Decision,
    symbol: str,
    position: Position | None,
    positions: dict[str, Position],
    exchange: ExchangePort,
    executor: Executor,
    allow_entries: bool,
    held_back: str,
) -> SymbolOutcome:
    if decision.action is Action.HOLD:
        return SymbolOutcome(symbol, decision, "hold")
    if decision.action is Action.EXIT:
        if position is None:
            return SymbolOutcome(symbol, decision, "hold", "no position to exit")
        # a position here is this strategy's own: run_cycle leaves any other one alone
        results = await executor.close(lease, symbol, "signal", run.purpose)
        ok = all(r.outcome is Outcome.CLOSED for r in results)
        return SymbolOutcome(
            symbol, decision, "exited" if ok else "failed", "; ".join(r.detail for r in results)
        )
    if position is not None:
        return SymbolOutcome(symbol, decision, "hold", "a position is already open")
    if not allow_entries:
        return SymbolOutcome(symbol, decision, "refused", f"entries held back ({held_back})")
    assert decision.side is not None and decision.stop is not None and decision.price is not None
    markets = await retry.read(exchange.markets)
    balance = await retry.read(exchange.balance)
    sized = size_position(
        run.sizing,
        markets[symbol],
        side=decision.side,
        equity=balance.total,
        entry=decision.price,
        stop=decision.stop,
        open_positions=len(positions),
    )
    if isinstance(sized, Refused):
        return SymbolOutcome(symbol, decision, "refused", f"sizing: {sized.reason}")
    stop = markets[symbol].round_price(decision.stop)
    res = await executor.open(lease, symbol, decision.side, sized.size, stop, run.purpose)
    outcome = {
        Outcome.PROTECTED: "entered",
        Outcome.REFUSED: "refused",
        Outcome.REJECTED: "rejected",
        Outcome.EMERGENCY_CLOSED: "emergency_closed",
    }.get(res.outcome, res.outcome.value)
    return SymbolOutcome(symbol, decision, outcome, res.detail)


def summarize(reports: Sequence[CycleReport]) -> str:
    return " | ".join(f"{r.strategy}: {r.outcome}" for r in reports)
