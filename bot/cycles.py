"""Running strategy cycles under the account lease, with a hard timeout and a stored record.

The scheduler, `warden cycle --once` and Telegram's /cycle all come through ``CycleRunner.run``:
a busy lease is a recorded skip naming the holder (never a wait), so two paths can never both
trade the account, which is exactly the post-mortem's double-open.

Inside the agent a cycle first passes its account's gate (``bot/account_gate.py``), waiting for a
watchdog tick in progress (bounded by the cycle timeout), so it never finds its own agent holding
the lease. A scheduled cycle refused by another holder (a manual run) keeps its recorded skip and
is retried once that holder lets go, until the scheduled time plus the misfire grace
(``run_retrying``): a decision is not dropped for a whole candle because of a short manual hold.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.account_gate import AccountGate
from bot.config import Config
from bot.services import Account, risk_limits
from storage.cycle_store import CycleStore
from storage.held_lease import HeldLease, LeaseManager
from trading.cycle import CycleReport, StrategyRun, run_cycle
from trading.errors import ExchangeError
from trading.journal import Severity
from trading.lease import LeaseBusy, LeaseLost
from trading.logfmt import event
from trading.sizing import SizingMode, SizingRules
from trading.strategies.registry import create

log = logging.getLogger("warden.cycles")
RETRY_POLL_SECONDS = 0.25  # how often a refused scheduled cycle looks at the lease again


def build_runs(config: Config) -> list[StrategyRun]:
    runs = []
    global_limits = risk_limits(config)
    for sc in config.strategies:
        risk = sc.risk
        limits = SizingRules(
            mode=SizingMode(risk.sizing or "risk"),
            size=risk.size,
            risk_per_trade=(
                risk.risk_per_trade
                if risk.risk_per_trade is not None
                else config.risk.risk_per_trade
            ),
            max_leverage=(
                risk.max_leverage if risk.max_leverage is not None else global_limits.max_leverage
            ),
            max_notional=(
                risk.max_notional if risk.max_notional is not None else global_limits.max_notional
            ),
            max_open_positions=(
                risk.max_open_positions
                if risk.max_open_positions is not None
                else global_limits.max_open_positions
            ),
        )
        runs.append(
            StrategyRun(
                sc.name, create(sc.kind, dict(sc.params)), tuple(sc.symbols), sc.timeframe, limits
            )
        )
    return runs


@dataclass
class CycleOutcome:
    status: str  # done | busy | timeout | error | lease_lost
    report: CycleReport | None = None
    detail: str = ""


class CycleRunner:
    def __init__(
        self,
        run: StrategyRun,
        account: Account,
        leases: LeaseManager,
        cycles: CycleStore,
        timeout: float,
        live_clock: bool,
        gate: AccountGate | None = None,
    ) -> None:
        self.run_spec = run
        self.gate = gate
        self.account = account
        self.leases = leases
        self.cycles = cycles
        self.timeout = timeout
        # real exchanges return the forming candle last: drop it by the wall clock
        self.live_clock = live_clock
        self.entries_allowed = True

    async def run(
        self, trigger: str, wait: float = 0.0, *, record_busy: bool = True
    ) -> CycleOutcome:
        if self.gate is None:
            return await self._run(trigger, wait, record_busy)
        # past the bound the cycle goes on to the lease: a hung tick still holding it is a
        # recorded skip naming the holder, never an unbounded wait
        async with self.gate.cycle(self.timeout):
            return await self._run(trigger, wait, record_busy)

    async def run_retrying(
        self, trigger: str, deadline: float, stopping: Callable[[], bool]
    ) -> CycleOutcome:
        """``run``; when another holder refused it (a recorded skip), retry as soon as the lease
        is free again, until ``deadline`` (wall clock) or ``stopping()``. Retries that find it
        busy again add no record: the skip is on record once."""
        outcome = await self.run(trigger)
        first = outcome
        while outcome.status == "busy" and not stopping():
            remaining = deadline - time.time()
            if remaining <= 0:
                event(
                    log,
                    "cycle.retry_given_up",
                    logging.WARNING,
                    strategy=self.run_spec.name,
                    holder=outcome.detail,
                )
                break
            await asyncio.sleep(min(RETRY_POLL_SECONDS, remaining))
            if await self._held_by_another():
                continue
            outcome = await self.run(trigger, record_busy=False)
            if outcome.status != "busy":
                event(
                    log,
                    "cycle.retried",
                    strategy=self.run_spec.name,
                    after=first.detail,
                    status=outcome.status,
                )
        return outcome

    async def _held_by_another(self) -> bool:
        """A read, not an attempt: is the account's lease held and not yet free to take over?"""
        store = self.leases.store
        holder = await store.holder(self.account.scope)
        return holder is not None and store.free_reason(holder, store.clock()) is None

    async def _run(self, trigger: str, wait: float, record_busy: bool) -> CycleOutcome:
        spec, acct = self.run_spec, self.account
        started = time.time()
        guarded: list[str] = []
        try:
            async with self.leases.hold(acct.scope, f"{trigger} cycle {spec.name}", wait) as lease:
                pause = await acct.journal.pause_reason(acct.scope)
                try:
                    report = await asyncio.wait_for(
                        run_cycle(
                            lease,
                            spec,
                            acct.exchange,
                            acct.executor,
                            acct.guardian,
                            acct.journal,
                            acct.scope,
                            now=time.time() if self.live_clock else None,
                            allow_entries=self.entries_allowed and pause is None,
                            held_back=held_back(pause, self.entries_allowed),
                        ),
                        timeout=self.timeout,
                    )
                except TimeoutError:
                    guarded = await self._guard_after_abort(lease)
                    raise
        except LeaseBusy as exc:
            if record_busy:
                await self.cycles.record(
                    spec.name, acct.scope, trigger, started, "skipped_busy", error=exc.holder
                )
                event(log, "cycle.skipped", logging.WARNING, strategy=spec.name, holder=exc.holder)
            return CycleOutcome("busy", detail=exc.holder)
        except TimeoutError:
            msg = f"cycle exceeded its {self.timeout:g}s timeout and was aborted"
            await self.cycles.record(
                spec.name,
                acct.scope,
                trigger,
                started,
                "timeout",
                decisions="; ".join(guarded),
                error=msg,
            )
            await acct.journal.alert(
                Severity.CRITICAL,
                f"{spec.name}: {msg}",
                f"cycle-timeout:{spec.name}",
                repeat_after=300,
            )
            return CycleOutcome("timeout", detail=msg)
        except LeaseLost as exc:
            await self.cycles.record(
                spec.name, acct.scope, trigger, started, "lease_lost", error=str(exc)
            )
            await acct.journal.alert(
                Severity.CRITICAL, f"{spec.name}: {exc}", f"lease-lost:{acct.scope}"
            )
            return CycleOutcome("lease_lost", detail=str(exc))
        except ExchangeError as exc:
            await self.cycles.record(
                spec.name, acct.scope, trigger, started, "error", error=str(exc)
            )
            return CycleOutcome("error", detail=str(exc))
        except Exception as exc:
            # a bug (a strategy, an adapter): the run is still on record, then it goes on up
            await self.cycles.record(
                spec.name,
                acct.scope,
                trigger,
                started,
                "error",
                error=f"{type(exc).__name__}: {exc}",
            )
            raise
        await self.cycles.record(
            spec.name, acct.scope, trigger, started, report.outcome, decisions=report.summary()
        )
        event(
            log,
            "cycle.done",
            logging.DEBUG,
            strategy=spec.name,
            outcome=report.outcome,
            seconds=round(time.time() - started, 3),
        )
        return CycleOutcome("done", report)

    async def _guard_after_abort(self, lease: HeldLease) -> list[str]:
        """The hard timeout can strike anywhere, e.g. between an entry's fill and its stop:
        before the lease is let go the guardian runs once (bounded by the same timeout), so an
        aborted cycle never leaves a position without a live stop until the next watchdog run."""
        acct = self.account
        try:
            report = await asyncio.wait_for(acct.guardian.reconcile(lease), timeout=self.timeout)
        except (TimeoutError, ExchangeError, LeaseLost) as exc:
            event(
                log,
                "cycle.guard_after_timeout_failed",
                logging.ERROR,
                strategy=self.run_spec.name,
                error=str(exc) or type(exc).__name__,
            )
            return [f"guardian after the timeout failed: {str(exc) or type(exc).__name__}"]
        for action in report.actions:
            event(
                log,
                "cycle.guarded_after_timeout",
                logging.WARNING,
                strategy=self.run_spec.name,
                action=action,
            )
        return ["guardian after the timeout: " + a for a in report.actions + report.errors]


def held_back(pause: str | None, reconciled: bool) -> str:
    """Why a cycle sends no entry: the pause with the reason `warden pause --reason` gave, or
    the start-up reconciliation still to finish."""
    if pause is not None:
        return f"paused: {pause}" if pause else "paused, no reason given"
    return "not yet reconciled" if not reconciled else "entries allowed"
