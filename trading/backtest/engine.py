"""The backtest loop: live trading's own cycle, driven by a simulated clock as fast as it goes.

Per candle close, exactly what the daemon's replay tick does: advance every symbol one candle on
the paper exchange (stops fire on the candle's path), then ``trading.cycle.run_cycle`` for each
strategy whose symbols moved, through the real Executor, StopKeeper and Guardian. Only the
persistence is different (in memory, ``memory_paper`` / ``memory_journal``), the read-back delay
is 0 and nothing sleeps, so a backtest and live trading cannot drift apart.

Strategies on one configured exchange share one simulated account (balance, risk limits), as
they do under ``warden run``; each exchange is its own account.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from trading.backtest.lease import InProcessLease
from trading.backtest.memory_journal import MemoryJournal
from trading.backtest.memory_paper import MemoryPaperStore
from trading.backtest.metrics import Drawdown, Ledger, RoundTrip, Summary, exposure, summarize
from trading.cycle import StrategyRun, run_cycle
from trading.executor import Executor
from trading.guardian import Guardian
from trading.journal import (
    ExitReason,
    Intent,
    IntentKind,
    PurposeKind,
    exit_reason_text,
)
from trading.marketdata import timeframe_seconds
from trading.models import Candle
from trading.orders import OrderSender
from trading.paper import FaultSettings, PaperExchange, PaperSettings, Trade
from trading.settings import RiskLimits, StopPolicy
from trading.stops import StopKeeper

Progress = Callable[[int, int], None]
PROGRESS_EVERY = 500  # steps between progress calls


@dataclass(frozen=True)
class SymbolData:
    candles: Sequence[Candle]  # oldest first
    warmup: int = 0  # the first ``warmup`` candles are history only: nothing trades on them


@dataclass(frozen=True)
class AccountSpec:
    """One simulated account: the paper settings, its strategies and their candles."""

    name: str
    settings: PaperSettings
    runs: tuple[StrategyRun, ...]
    data: Mapping[str, SymbolData]


@dataclass(frozen=True)
class BacktestResult:
    strategies: list[Summary]
    total: Summary
    trips: list[RoundTrip]  # closed and still-open round trips, by entry time
    curve: list[tuple[float, float]]  # (candle close time, total equity), one per step
    start: float  # the first traded candle's open time
    end: float  # the last traded candle's close time
    errors: list[str] = field(default_factory=list)  # cycle errors (first ones)
    incidents: int = 0


class _NoSleep:
    async def __call__(self, seconds: float) -> None:
        return None


class SimClock:
    """The simulated time: set to each candle's close, then 1 ms later at every reading, so
    the events inside one step keep their order (an exit recorded after an entry is later than
    it) as they do on a wall clock."""

    TICK = 0.001

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def set(self, now: float) -> None:
        self.now = max(self.now, now)

    def __call__(self) -> float:
        self.now += self.TICK
        return self.now


@dataclass
class _Strat:
    run: StrategyRun
    drawdown: Drawdown = field(default_factory=Drawdown)
    steps: int = 0
    held: int = 0


class _Account:
    """One account wired exactly like ``bot.services.build_account``, in memory."""

    def __init__(
        self, spec: AccountSpec, clock: SimClock, risk: RiskLimits, policy: StopPolicy
    ) -> None:
        self.spec = spec
        self.scope = f"{spec.name}:backtest"
        nap = _NoSleep()
        store = MemoryPaperStore()
        self.exchange = PaperExchange(spec.name, spec.settings, store, clock=clock, sleep=nap)
        self.book = store.book(spec.name)  # figures are read here, not through the port
        self.journal = MemoryJournal(clock=clock)
        self.lease = InProcessLease(self.scope)
        sender = OrderSender(self.exchange, self.journal, sleep=nap)
        keeper = StopKeeper(self.exchange, self.journal, sender, policy, clock=clock, sleep=nap)
        self.guardian = Guardian(self.exchange, self.journal, keeper, self.scope, policy, clock)
        self.executor = Executor(
            self.exchange, self.journal, sender, keeper, self.guardian, self.scope, risk, clock
        )
        self.strats = [_Strat(r) for r in spec.runs]
        self.by_purpose = {r.purpose: r.name for r in spec.runs}
        self.ledger = Ledger(spec.name)
        self.start_equity = spec.settings.starting_balance
        self.equity = self.start_equity
        self.last_unrealized: dict[str, float] = {}  # by symbol, at the end
        for st in self.strats:
            st.drawdown.update(self.start_equity)

    async def load(self) -> None:
        timeframes = _timeframes(self.spec)
        for symbol, d in self.spec.data.items():
            await self.exchange.load_candles(
                symbol, d.candles, timeframe=timeframes[symbol], warmup=d.warmup
            )

    async def step(self, now: float, symbols: list[str], errors: list[str]) -> None:
        for symbol in sorted(symbols):
            await self.exchange.advance(symbol)
        moved = set(symbols)
        ran = []
        for st in self.strats:
            if moved.isdisjoint(st.run.symbols):
                continue
            report = await run_cycle(
                self.lease,
                st.run,
                self.exchange,
                self.executor,
                self.guardian,
                self.journal,
                self.scope,
            )
            errors.extend(f"{st.run.name}: {e}" for e in report.errors)
            ran.append(st)
        await self._measure(now, ran)

    async def _measure(self, now: float, ran: list[_Strat]) -> None:
        book = self.book
        for t in await book.trades(None, now):
            intent = self.journal.intent_for_order(t.order_id)
            purpose = intent.purpose if intent is not None else "external"
            self.ledger.fill(t, self.by_purpose.get(purpose, purpose), _exit_reason(t, intent))
        unrealized: dict[str, float] = {}
        prices = await book.prices()
        for p in (await book.positions()).values():
            owner = self.ledger.owner_of(p.symbol) or "external"
            unrealized[owner] = unrealized.get(owner, 0.0) + p.unrealized(prices[p.symbol])
        self.equity = (await book.cash() or 0.0) + sum(unrealized.values())
        for st in ran:
            name = st.run.name
            st.steps += 1
            st.held += name in unrealized
            mine = self.ledger.realized.get(name, 0.0) + unrealized.get(name, 0.0)
            st.drawdown.update(self.start_equity + mine)

    def summaries(self) -> list[Summary]:
        out = []
        for st in self.strats:
            name = st.run.name
            trips = [t for t in self.ledger.trips if t.strategy == name]
            opened = [t for t in self.ledger.open_trips() if t.strategy == name]
            end = self.start_equity + self.ledger.realized.get(name, 0.0)
            end += sum(self.last_unrealized.get(t.symbol, 0.0) for t in opened)
            out.append(
                summarize(
                    name,
                    trips,
                    len(opened),
                    self.ledger.fees.get(name, 0.0),
                    st.drawdown,
                    exposure(st.held, st.steps),
                    self.start_equity,
                    end,
                    st.steps,
                )
            )
        return out

    async def finish(self) -> None:
        self.last_unrealized = {p.symbol: p.unrealized_pnl for p in await self.exchange.positions()}


def _exit_reason(trade: Trade, intent: Intent | None) -> str:
    """Why a fill closes, in the journal's vocabulary (the words `warden pnl` prints; see
    trading.attribution.exit_reason, which reads the same from a live account's journal)."""
    if trade.stop_id is not None:
        return ExitReason.STOP_LOSS.value
    if intent is None or intent.kind is IntentKind.ENTRY:
        return ExitReason.EXTERNAL.value
    purpose = intent.typed_purpose
    if intent.kind is IntentKind.EMERGENCY_CLOSE:
        why = purpose.why if purpose.kind is PurposeKind.EMERGENCY else purpose.text
        return exit_reason_text(ExitReason.EMERGENCY, why)
    return exit_reason_text(ExitReason.of_close(purpose))


def _timeframes(spec: AccountSpec) -> dict[str, str]:
    """Each symbol's timeframe; one symbol replays one timeframe per account."""
    out: dict[str, str] = {}
    for run in spec.runs:
        for symbol in run.symbols:
            if out.setdefault(symbol, run.timeframe) != run.timeframe:
                raise ValueError(
                    f"{spec.name}: {symbol} is traded on {out[symbol]} and {run.timeframe} "
                    "candles; one symbol replays one timeframe per account"
                )
            if symbol not in spec.data:
                raise ValueError(f"{spec.name}: no candles for {symbol} ({run.name})")
    return out


def backtest_settings(settings: PaperSettings, faults: bool) -> PaperSettings:
    """The account's paper settings for a backtest: no latency; faults only when asked."""
    kept = replace(settings.faults, latency_ms=0) if faults else FaultSettings()
    return replace(settings, faults=kept)


async def run_backtest(
    accounts: Sequence[AccountSpec],
    risk: RiskLimits,
    policy: StopPolicy,
    progress: Progress | None = None,
) -> BacktestResult:
    clock = SimClock()
    policy = replace(policy, verify_delay=0.0)
    sims = [_Account(spec, clock, risk, policy) for spec in accounts]
    schedule: dict[float, list[tuple[int, str]]] = {}
    opens: list[float] = []
    for i, sim in enumerate(sims):
        timeframes = _timeframes(sim.spec)
        for symbol, d in sim.spec.data.items():
            step = timeframe_seconds(timeframes[symbol])
            for c in d.candles[d.warmup :]:
                schedule.setdefault(c.ts + step, []).append((i, symbol))
            opens.extend(c.ts for c in d.candles[d.warmup : d.warmup + 1])
    if not schedule:
        raise ValueError("no candles to trade in the chosen range")
    for sim in sims:
        await sim.load()
    times = sorted(schedule)
    curve: list[tuple[float, float]] = []
    total_dd, held = Drawdown(), 0
    errors: list[str] = []
    start = sum(s.start_equity for s in sims)
    total_dd.update(start)
    for n, now in enumerate(times, start=1):
        clock.set(now)
        groups: dict[int, list[str]] = {}
        for i, symbol in schedule[now]:
            groups.setdefault(i, []).append(symbol)
        for i, symbols in groups.items():
            await sims[i].step(now, symbols, errors)
        equity = sum(s.equity for s in sims)
        curve.append((now, equity))
        total_dd.update(equity)
        held += any(s.ledger.open for s in sims)
        if progress is not None and (n % PROGRESS_EVERY == 0 or n == len(times)):
            progress(n, len(times))
    for sim in sims:
        await sim.finish()
    per = [s for sim in sims for s in sim.summaries()]
    trips = sorted(
        (t for sim in sims for t in [*sim.ledger.trips, *sim.ledger.open_trips()]),
        key=lambda t: t.entry_at,
    )
    closed = [t for t in trips if t.closed]
    total = summarize(
        "total",
        closed,
        len(trips) - len(closed),
        sum(s.fees for s in per),
        total_dd,
        exposure(held, len(times)),
        start,
        curve[-1][1],
        len(times),
    )
    return BacktestResult(
        strategies=per,
        total=total,
        trips=trips,
        curve=curve,
        start=min(opens),
        end=times[-1],
        errors=errors[:20],
        incidents=sum(s.journal.incident_count for s in sims),
    )
