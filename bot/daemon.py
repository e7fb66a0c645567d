"""The agent process: strategy cycles, the stop watchdog and alert delivery on one event loop.

APScheduler runs every job with ``max_instances=1`` and ``coalesce=True``; that only guards one
job inside this process, the SQLite lease guards everything else (I1). Missed and skipped runs
are counted and logged. On start each account is reconciled (unresolved intents resolved by
client id, positions and stops read back) before any strategy may open a position.

Inside the process each account's cycles and watchdog pass one gate (``bot/account_gate.py``), so a
cycle never finds its own agent's watchdog holding the lease; a scheduled cycle refused by another
holder is retried within the misfire grace. Run by `warden run`, the daemon is the holder of the
agent lease (``bot/agent.py``): every job first checks that the lease is still its own, and does
nothing once another agent has taken it over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot import replay
from bot.account_gate import AccountGate
from bot.agent import AgentSeat
from bot.audit_run import run_audit
from bot.config import Config
from bot.cycles import CycleRunner, build_runs
from bot.exchanges import paper_config, replay_of
from bot.notify import Notifier, SeatCheck, TerminalNotifier
from bot.services import Account, build_account
from bot.summary import audit_alerts, collect_daily_summary
from bot.watchdog import Watchdog
from storage.cycle_store import CycleStore
from storage.db import Database
from storage.errors import StorageError
from storage.held_lease import LeaseManager
from storage.lease import LeaseStore
from storage.outbox import Outbox
from trading.errors import ExchangeError
from trading.journal import Severity
from trading.lease import LeaseBusy, LeaseLost
from trading.logfmt import event
from trading.marketdata import timeframe_seconds
from trading.paper.exchange import PaperExchange

log = logging.getLogger("warden.daemon")


class Daemon:
    def __init__(
        self,
        config: Config,
        db: Database,
        notifier: Notifier | None = None,
        agent: AgentSeat | None = None,
    ):
        self.config = config
        self.db = db
        self.agent = agent
        self.notifier: Notifier = notifier or TerminalNotifier()
        self.leases = LeaseManager(
            LeaseStore(db), ttl=config.lease.ttl_seconds, heartbeat=config.lease.heartbeat_seconds
        )
        self.cycles = CycleStore(db)
        self.outbox = Outbox(db)
        self.accounts: dict[str, Account] = {
            name: build_account(config, name, db) for name in config.exchanges
        }
        self.runners: dict[str, list[CycleRunner]] = {name: [] for name in config.exchanges}
        self.gates = {name: AccountGate() for name in config.exchanges}
        for run, sc in zip(build_runs(config), config.strategies, strict=True):
            ex = config.exchanges[sc.exchange]
            runner = CycleRunner(
                run,
                self.accounts[sc.exchange],
                self.leases,
                self.cycles,
                config.scheduler.cycle_timeout_seconds,
                live_clock=replay_of(ex) is None,
                gate=self.gates[sc.exchange],
            )
            runner.entries_allowed = False  # until the account is reconciled
            self.runners[sc.exchange].append(runner)
        self.watchdogs = {
            name: Watchdog(
                acct, self.leases, config.guardian.watchdog_seconds, gate=self.gates[name]
            )
            for name, acct in self.accounts.items()
        }
        self.reconciled: set[str] = set()
        self._reconcile_failures: dict[str, int] = {}
        self.counters: Counter[str] = Counter()
        self.replay_done: set[str] = set()
        self._inflight: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self.scheduler: AsyncIOScheduler | None = None
        self._first_run: dict[str, datetime] = {}  # live cycle job -> its first scheduled run

    # --- start-up reconciliation ------------------------------------------------------------

    async def reconcile(self, name: str) -> bool:
        """Resolve what a previous run left unknown, then guard; entries wait for this."""
        acct = self.accounts[name]
        try:
            async with self.leases.hold(
                acct.scope, "start-up reconciliation", self.config.lease.wait_seconds
            ) as lease:
                for intent in await acct.journal.unresolved_intents(acct.scope):
                    # whoever sent it is done with it: the lease is ours now
                    res = await acct.executor.sender.resolve(intent, sender_gone=True)
                    event(
                        log,
                        "reconcile.intent",
                        scope=acct.scope,
                        client_id=intent.client_id,
                        status=res.status,
                    )
                # a close whose process died before recording its exit (and its incident)
                await acct.guardian.settle_interrupted_closes()
                report = await acct.guardian.reconcile(lease)
        except (LeaseBusy, LeaseLost, ExchangeError, StorageError) as exc:
            # a database locked past its busy timeout is a failed attempt, retried like the rest
            event(log, "reconcile.failed", logging.ERROR, scope=acct.scope, error=str(exc))
            await self._reconcile_failed(name, str(exc))
            return False
        if report.errors:
            errors = "; ".join(report.errors)
            event(log, "reconcile.incomplete", logging.ERROR, scope=acct.scope, errors=errors)
            await self._reconcile_failed(name, errors)
            return False
        self.reconciled.add(name)
        for runner in self.runners[name]:
            runner.entries_allowed = True
        event(log, "reconcile.done", scope=acct.scope, actions=len(report.actions))
        failed = self._reconcile_failures.pop(name, 0)
        if failed:
            await acct.journal.alert(
                Severity.INFO,
                f"{acct.scope}: reconciled after {failed} failed attempt(s); entries allowed again",
                f"reconciled:{acct.scope}",
            )
        return True

    async def _reconcile_failed(self, name: str, why: str) -> None:
        """No entries until it succeeds; a critical alert (re-raised, not spammed); the
        watchdog job and every replay tick try again."""
        acct = self.accounts[name]
        self._reconcile_failures[name] = self._reconcile_failures.get(name, 0) + 1
        # an unwritable outbox is logged by the journal itself; the failure stays a failure
        with contextlib.suppress(StorageError):
            await acct.journal.alert(
                Severity.CRITICAL,
                f"{acct.scope}: start-up reconciliation failed ({why}); no entries until it "
                "succeeds",
                f"reconcile:{acct.scope}",
                repeat_after=900,
            )

    # --- jobs ---------------------------------------------------------------------------------

    def _track(self, fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            if self._stopping:
                # handed over by the scheduler just before stop(): nobody would wait for it
                return
            task = asyncio.current_task()
            if task is not None:
                self._inflight.add(task)
            try:
                if self.agent is not None and not await self.agent.still_active():
                    # another agent took the store over: this one steps down (commands/run.py)
                    return
                await fn()
            except StorageError as exc:
                # the database is busy beyond busy_timeout, full or broken: the job did what it
                # could without it (an order is never sent before its intent is stored) and the
                # next run tries again; said in one line, a traceback would add nothing
                self.counters["job_storage_errors"] += 1
                event(
                    log,
                    "job.storage_failed",
                    logging.ERROR,
                    job=_job_name(fn),
                    error=f"{type(exc).__name__}: {exc}",
                )
            except Exception:
                self.counters["job_errors"] += 1
                log.exception("job.failed")
            finally:
                if task is not None:
                    self._inflight.discard(task)

        return job

    async def _cycles_for(self, name: str, trigger: str) -> list[str]:
        outcomes = []
        deadline = time.time() + self.config.scheduler.misfire_grace_seconds
        for runner in self.runners[name]:
            if self._stopping:
                break  # stopping: the cycle running finishes, the next one does not start
            outcome = await runner.run_retrying(trigger, deadline, self._is_stopping)
            self.counters[f"cycle_{outcome.status}"] += 1
            outcomes.append(outcome.report.outcome if outcome.report else outcome.status)
        return outcomes

    async def _equity_line(self, name: str) -> None:
        ex = paper_config(self.config.exchanges[name])
        if ex is None:
            return
        balance = await self.accounts[name].exchange.balance()
        pnl = balance.total - ex.starting_balance
        await self.accounts[name].journal.alert(
            Severity.INFO,
            f"{name}: equity {balance.total:,.2f} {balance.currency} "
            f"(P&L {pnl:+,.2f} since the start)",
            f"equity:{name}",
        )

    async def _replay_tick(self, name: str) -> None:
        exchange = self.accounts[name].exchange
        assert isinstance(exchange, PaperExchange)
        if name not in self.reconciled and not await self.reconcile(name):
            return
        symbols = sorted({s for r in self.runners[name] for s in r.run_spec.symbols})
        remaining, fired = await replay.tick(exchange, symbols)
        journal = self.accounts[name].journal
        for t in fired:
            fill = t.fill.average_price if t.fill is not None else None
            at = f"filled at {fill}" if fill is not None else "nothing to close"
            await journal.alert(
                Severity.INFO,
                f"stop hit {t.stop.symbol}: {t.stop.side.value} {t.stop.size}, trigger "
                f"{t.stop.trigger_price}, {at}",
                f"stop-hit:{t.stop.id}",
            )
        outcomes = await self._cycles_for(name, "replay")
        if fired or any(o in ("entered", "exited", "emergency_closed") for o in outcomes):
            await self._equity_line(name)
        if remaining == 0 and name not in self.replay_done:
            self.replay_done.add(name)
            await self.accounts[name].journal.alert(
                Severity.INFO, f"{name}: replay data finished; positions stay guarded", "replay"
            )

    async def _watchdog(self, name: str) -> None:
        if name not in self.reconciled:
            await self.reconcile(name)
            return
        await self.watchdogs[name].tick()

    async def _deliver(self) -> None:
        await self.notifier.deliver_pending(self.outbox, self._seat())

    def _seat(self) -> SeatCheck | None:
        return self.agent.still_active if self.agent is not None else None

    async def _daily_summary(self) -> None:
        text = await collect_daily_summary(
            list(self.accounts.values()),
            time.time(),
            self.config.accounting.slippage_bound_bps,
        )
        journal = next(iter(self.accounts.values())).journal
        await journal.alert(Severity.INFO, text, "daily-summary")

    async def _scheduled_audit(self) -> None:
        """The daily audit: each failing finding becomes an alert (re-raised while it lasts)."""
        findings, errors = await run_audit(self.config, self.db, list(self.accounts), 1.0)
        journal = next(iter(self.accounts.values())).journal
        for severity, text, key in audit_alerts(findings):
            await journal.alert(severity, text, key, repeat_after=20 * 3600)
        for e in errors:
            await journal.alert(Severity.WARNING, f"audit: {e}", "audit-error", 3600)

    def _on_missed(self, ev: JobEvent) -> None:
        kind = "missed" if ev.code == EVENT_JOB_MISSED else "skipped_running"
        self.counters[f"job_{kind}"] += 1
        event(log, f"job.{kind}", logging.WARNING, job=ev.job_id)

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        for name, ex in self.config.exchanges.items():
            recorded = replay_of(ex)
            if recorded is not None:
                exchange = self.accounts[name].exchange
                assert isinstance(exchange, PaperExchange)
                symbols = {
                    s: r.run_spec.timeframe for r in self.runners[name] for s in r.run_spec.symbols
                }
                await replay.prepare(exchange, recorded, symbols)
        for name in self.accounts:
            await self.reconcile(name)
        sched = AsyncIOScheduler(timezone=UTC)
        grace = int(self.config.scheduler.misfire_grace_seconds)
        common: dict[str, Any] = {"max_instances": 1, "coalesce": True, "misfire_grace_time": grace}
        now = datetime.now(UTC)
        for name, ex in self.config.exchanges.items():
            recorded = replay_of(ex)
            if recorded is not None:
                if self.runners[name]:
                    sched.add_job(
                        self._track(partial(self._replay_tick, name)),
                        IntervalTrigger(seconds=recorded.seconds_per_candle),
                        id=f"replay:{name}",
                        **common,
                    )
            else:
                for runner in self.runners[name]:
                    period = timeframe_seconds(runner.run_spec.timeframe)
                    first = _next_boundary(now, period) + timedelta(
                        seconds=self.config.scheduler.cycle_delay_seconds
                    )
                    self._first_run[runner.run_spec.name] = first
                    sched.add_job(
                        self._track(partial(self._one_cycle, runner)),
                        IntervalTrigger(seconds=period, start_date=first),
                        id=f"cycle:{runner.run_spec.name}",
                        **common,
                    )
            sched.add_job(
                self._track(partial(self._watchdog, name)),
                IntervalTrigger(seconds=self.config.guardian.watchdog_seconds),
                id=f"watchdog:{name}",
                next_run_time=now,
                **common,
            )
        sched.add_job(
            self._track(self._deliver),
            IntervalTrigger(seconds=self.config.scheduler.outbox_seconds),
            id="outbox",
            next_run_time=now,
            **common,
        )
        sc = self.config.scheduler
        if sc.daily_summary_hour is not None:
            sched.add_job(
                self._track(self._daily_summary),
                CronTrigger(hour=sc.daily_summary_hour, minute=0, timezone=UTC),
                id="daily-summary",
                **common,
            )
        if sc.audit_hour is not None:
            sched.add_job(
                self._track(self._scheduled_audit),
                CronTrigger(hour=sc.audit_hour, minute=5, timezone=UTC),
                id="audit",
                **common,
            )
        sched.add_listener(self._on_missed, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        sched.start()
        self.scheduler = sched

    async def _one_cycle(self, runner: CycleRunner) -> None:
        name = runner.run_spec.name
        exchange_name = next(n for n, rs in self.runners.items() if runner in rs)
        if exchange_name not in self.reconciled and not await self.reconcile(exchange_name):
            return
        # APScheduler 3.x: misfire_grace_time is "how much this job's execution is allowed to be
        # late", judged against the scheduled run time when the run starts (docs: apscheduler.
        # readthedocs.io, modules/job.html, Job.misfire_grace_time). A cycle refused by another
        # holder keeps retrying inside its run until that same bound, counted the same way.
        period = timeframe_seconds(runner.run_spec.timeframe)
        scheduled = _last_run_time(self._first_run.get(name), period, time.time())
        deadline = scheduled + self.config.scheduler.misfire_grace_seconds
        outcome = await runner.run_retrying("scheduled", deadline, self._is_stopping)
        self.counters[f"cycle_{outcome.status}"] += 1
        event(log, "cycle.scheduled", strategy=name, status=outcome.status)

    def _is_stopping(self) -> bool:
        return self._stopping

    async def stop(self) -> None:
        """No new work; let the running jobs finish (bounded by their timeout); release leases.

        APScheduler's asyncio executor CANCELS the jobs still running when it is shut down (a
        cycle could stop between an entry's fill and its stop), so the scheduler is only paused
        here, the jobs in flight are waited for, and it is shut down after them.
        """
        self._stopping = True  # before any await: a job task starting from now on does nothing
        if self.scheduler is not None:
            self.scheduler.pause()
        pending = [t for t in self._inflight if not t.done()]
        if pending:
            event(log, "daemon.waiting", jobs=len(pending))
            # a cycle takes at most its timeout plus, when aborted, one guardian run as long
            _done, still = await asyncio.wait(
                pending, timeout=2 * self.config.scheduler.cycle_timeout_seconds + 5
            )
            for t in still:
                t.cancel()
            if still:
                await asyncio.wait(still, timeout=5)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        # the last delivery pass, unless another agent is active (it delivers them now)
        if self.agent is None or await self.agent.still_active():
            await self.notifier.deliver_pending(self.outbox, self._seat())
        for acct in self.accounts.values():
            await acct.exchange.close()
        event(log, "daemon.stopped", **{k: v for k, v in self.counters.items()})


def _job_name(fn: Callable[[], Awaitable[None]]) -> str:
    """``replay_tick:paper`` for ``partial(self._replay_tick, "paper")``, for the log."""
    func = getattr(fn, "func", fn)
    args = [a if isinstance(a, str) else type(a).__name__ for a in getattr(fn, "args", ())]
    return ":".join([getattr(func, "__name__", "job").lstrip("_"), *args])


def _last_run_time(first: datetime | None, period: int, now: float) -> float:
    """When the interval job starting at ``first`` last fired (at most ``now``): the time its
    misfire grace counts from. Without a known start, now."""
    if first is None or now < first.timestamp():
        return now
    start = first.timestamp()
    return start + (now - start) // period * period


def _next_boundary(now: datetime, period: int) -> datetime:
    ts = now.timestamp()
    return datetime.fromtimestamp((int(ts) // period + 1) * period, UTC)
