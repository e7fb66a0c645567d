"""First-contact drills on a configured exchange account (`warden drill NAME --exchange NAME`).

The same proof as the paper drills, on the trader's own demo/testnet account: the configured
database and journal, the account's execution lease (I1) and persisted intents (I2), the real
adapter. The drill trades the market's minimum size on one symbol the account does not hold,
and always cleans up after itself: everything it opened is closed with a reduce-only market
order, every stop it placed is canceled, and the exchange is read back at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from types import FrameType

from bot import exit_codes
from bot.context import Context, open_db
from bot.drills.harness import DrillRun
from bot.exchanges import build_exchange, kind_of
from bot.logs import redactor
from bot.services import Account, build_account
from bot.symbols import SymbolError, resolve_symbol
from storage.db import Database
from storage.held_lease import LeaseManager
from trading import retry
from trading.errors import ExchangeError
from trading.journal import ExitReason, IntentKind, NewExit
from trading.lease import LeaseBusy, LeaseGuard, LeaseLost
from trading.models import Market, Position, PositionSide, StopOrder, StopState

LIVE_DRILLS = ("double-open", "stop-removed")
DEFAULT_SYMBOL = "BTC"  # BTC/USDT:USDT on OKX and paper, BTC/USDC:USDC on Hyperliquid
DEFAULT_STOP_PERCENT = 3.0
# Hyperliquid refuses an order worth less than $10 (ccxt/ccxt ts/src/hyperliquid.ts: every
# perp market has limits.cost.min 10, and the venue's error "Order must have minimum value of
# $10" is mapped to InvalidOrder). Its Market.min_size is the size step, so the drill's size is
# raised to the smallest step multiple worth this much, with room for the price moving.
MIN_ORDER_VALUE = {"hyperliquid": 10.0}
MIN_VALUE_ROOM = 1.2
LEASE_WAIT = 30.0  # seconds; a cycle or the agent's watchdog may hold the lease a moment
CHILD_TIMEOUT = 300.0


class Refused(Exception):
    """The drill will not start; ``code`` is the exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Target:
    exchange: str
    kind: str
    symbol: str
    market: Market
    last: float
    size: float
    stop: float
    side: PositionSide = PositionSide.LONG


@dataclass
class LiveDrill:
    ctx: Context
    db: Database
    account: Account
    leases: LeaseManager
    target: Target
    run: DrillRun
    children: list[asyncio.subprocess.Process] = field(default_factory=list)


def guard_real_money(ctx: Context, name: str) -> None:
    """A drill trades: on a real exchange only on demo/testnet, or when the trader says so."""
    cfg = ctx.config.exchanges[name]
    kind = kind_of(cfg)
    if not kind.credentials:
        return  # a simulator (the paper exchange): no account, nothing real at stake
    if cfg.model_dump().get("sandbox") or ctx.args.real_money:
        return
    venue = kind.sandbox_name or f"{kind.title}'s test environment"
    raise Refused(
        exit_codes.USAGE,
        f"refused on exchange {name} ({cfg.kind}): it does not have sandbox = true, so the "
        f"drill would trade real money; point it at {venue} (sandbox = true) or pass "
        "--real-money to run it on this account anyway",
    )


def drill_size(kind: str, market: Market, last: float) -> float:
    size = Decimal(repr(market.min_size))
    floor = MIN_ORDER_VALUE.get(kind)
    if floor is not None:
        step = Decimal(repr(market.size_step))
        needed = Decimal(repr(floor * MIN_VALUE_ROOM / last))
        size = max(size, (needed / step).to_integral_value(ROUND_CEILING) * step)
    return float(size)


async def prepare(ctx: Context, acct: Account, name: str) -> Target:
    """The drill's symbol, size and stop; refused while the account holds anything on it."""
    args = ctx.args
    percent = args.stop_percent
    if percent >= ctx.config.risk.max_stop_percent:
        raise Refused(
            exit_codes.USAGE,
            f"--stop-percent {percent:g} is not below risk.max_stop_percent "
            f"{ctx.config.risk.max_stop_percent:g}: the open would be refused",
        )
    markets = await retry.read(acct.exchange.markets)
    try:
        symbol = resolve_symbol(args.symbol, markets)
    except SymbolError as exc:
        raise Refused(exit_codes.USAGE, f"--symbol on exchange {name}: {exc}") from None
    positions = [p for p in await retry.read(acct.exchange.positions) if p.symbol == symbol]
    stops = await retry.read(lambda: acct.exchange.open_stops(symbol))
    if positions or stops:
        held = [f"position {p.side.value} {p.size}" for p in positions]
        held += [f"stop {s.id} at {s.trigger_price}" for s in stops]
        raise Refused(
            exit_codes.BUSY,
            f"refused: exchange {name} already holds {', '.join(held)} on {symbol}; the drill "
            "never touches the trader's positions: choose another --symbol or run it when "
            f"{symbol} is flat",
        )
    market = markets[symbol]
    last = (await retry.read(lambda: acct.exchange.ticker(symbol))).last
    kind = ctx.config.exchanges[name].kind
    size = drill_size(kind, market, last)
    stop = market.round_price(last * (1 - percent / 100))
    return Target(name, kind, symbol, market, last, size, stop)


# -- the drills -----------------------------------------------------------------------------


def _child_cmd(d: LiveDrill) -> list[str]:
    """`warden open` as the trader would type it, on the same config, secrets and database."""
    args, t = d.ctx.args, d.target
    cmd = [sys.executable, "-m", "bot"]
    if d.ctx.config_source != "<built-in defaults>":
        cmd += ["--config", d.ctx.config_source]
    if getattr(args, "env_file", None):
        cmd += ["--env-file", args.env_file]
    return [
        *cmd,
        "--log-level",
        "ERROR",
        "open",
        t.symbol,
        t.side.value,
        "--size",
        repr(t.size),
        "--stop",
        repr(t.stop),
        "--exchange",
        t.exchange,
        "--yes",
        "--json",
    ]


def _child_env() -> dict[str, str]:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


async def double_open(d: LiveDrill) -> None:
    t, run, ex = d.target, d.run, d.account.exchange
    run.step(
        f"two `warden open` processes at the same moment: {t.side.value} {t.size} {t.symbol} "
        f"(the minimum size) with stop {t.stop} on {t.exchange}"
    )
    cmd = _child_cmd(d)
    for _ in range(2):
        d.children.append(
            await asyncio.create_subprocess_exec(
                *cmd,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                stdin=asyncio.subprocess.DEVNULL,
                env=_child_env(),
            )
        )
    outs = await asyncio.wait_for(
        asyncio.gather(*(p.communicate() for p in d.children)), CHILD_TIMEOUT
    )
    codes = sorted(p.returncode if p.returncode is not None else -1 for p in d.children)
    for p, (out, err) in zip(d.children, outs, strict=True):
        line = (err.decode(errors="replace").strip().splitlines() or [""])[-1]
        if p.returncode == 0:
            with contextlib.suppress(ValueError, KeyError, IndexError):
                line = json.loads(out.decode())["results"][0]["detail"]
        run.step(f"  process exited {p.returncode}: {line}")
    run.check(
        codes[0] == 0 and codes[1] in (exit_codes.REFUSED, exit_codes.BUSY),
        "one executor opened, the other was kept out by the lease (75) or by the position "
        f"check (1) (exit codes {codes})",
    )
    held = [p for p in await retry.read(ex.positions) if p.symbol == t.symbol]
    sizes = [p.size for p in held]
    run.check(
        len(held) == 1 and abs(held[0].size - t.size) < t.market.size_step / 2,
        f"exactly one position of {t.size} on the exchange (read back: {sizes})",
    )
    live = [s for s in await retry.read(lambda: ex.open_stops(t.symbol)) if _is_live(s)]
    run.check(
        len(live) == 1 and held != [] and live[0].covers(held[0], t.market),
        f"one live stop covering {t.size} (read back: "
        + (", ".join(f"{s.id} {s.size} at {s.trigger_price}" for s in live) or "none")
        + ")",
    )


async def stop_removed(d: LiveDrill) -> None:
    t, run, acct = d.target, d.run, d.account
    # a running agent's cycle or watchdog may hold the lease for a moment: wait for it
    async with d.leases.hold(acct.scope, "drill stop-removed", wait=LEASE_WAIT) as lease:
        res = await acct.executor.open(
            lease, t.symbol, t.side, t.size, t.stop, "drill stop-removed"
        )
    for note in res.notes:
        run.step(f"  {note}")
    if not run.check(res.outcome.value == "protected", f"opened: {res.detail}"):
        return
    listed = [
        s for s in await retry.read(lambda: acct.exchange.open_stops(t.symbol)) if _is_live(s)
    ]
    if not run.check(len(listed) == 1, f"its stop is listed live on the exchange ({len(listed)})"):
        return
    placed = listed[0]
    # a second adapter, outside the lease: what the trader's click in the venue's UI does
    outside = build_exchange(d.ctx.config, t.exchange, d.db)
    try:
        run.step(
            f"stop {placed.id} canceled through a separate API client, outside Warden's lease "
            "(as from the exchange's web page)"
        )
        await outside.cancel_stop(t.symbol, placed.id)
        removed_wall, removed = time.time(), time.monotonic()
    finally:
        await outside.close()
    interval = d.ctx.config.guardian.watchdog_seconds
    g = d.ctx.config.guardian
    deadline = removed + 3 * interval + g.verify_attempts * (g.verify_delay_seconds + 10) + 30
    run.step(f"guardian every {interval:g}s on {t.symbol}, under the account's lease")
    detected = restored = None
    new: StopOrder | None = None
    while time.monotonic() < deadline and new is None:
        # the removal came just after a watchdog run: the next one is a full interval away
        await asyncio.sleep(interval)
        try:
            async with d.leases.hold(acct.scope, "drill stop-removed watchdog") as lease:
                report = await acct.guardian.reconcile(lease, {t.symbol})
            for action in report.actions:
                run.step(f"  guardian: {action}")
            for error in report.errors:
                run.step(f"  guardian error: {error}")
        except LeaseBusy as exc:
            run.step(f"  lease busy ({exc.holder}): the holder guards the position; next tick")
        if detected is None and any(
            i.symbol == t.symbol
            and i.kind == "unprotected_position"
            and i.opened_at >= removed_wall
            for i in await acct.journal.incidents(acct.scope, limit=20)
        ):
            detected = time.monotonic() - removed
        live = [
            s
            for s in await retry.read(lambda: acct.exchange.open_stops(t.symbol))
            if _is_live(s) and s.id != placed.id
        ]
        if live:
            new, restored = live[0], time.monotonic() - removed
    if detected is not None:
        run.figures["detection_latency"] = detected
    if restored is not None:
        run.figures["restore_latency"] = restored
    run.check(
        detected is not None,
        f"the missing stop detected {_secs(detected)} after the removal",
    )
    seen = None
    if new is not None:
        seen = await retry.read(lambda: acct.exchange.get_stop(t.symbol, stop_id=new.id))
    held = [p for p in await retry.read(acct.exchange.positions) if p.symbol == t.symbol]
    run.check(
        new is not None
        and seen is not None
        and seen.state is StopState.LIVE
        and held != []
        and seen.covers(held[0], t.market),
        f"a new stop placed and read back live {_secs(restored)} after the removal"
        + (
            f" (stop {seen.id} {seen.state.value}, {seen.size} at {seen.trigger_price})"
            if seen
            else ""
        ),
    )
    incidents = [
        i
        for i in await acct.journal.incidents(acct.scope, limit=20)
        if i.symbol == t.symbol and i.kind == "unprotected_position" and i.opened_at >= removed_wall
    ]
    run.check(
        bool(incidents) and incidents[0].attribution.value == "external",
        "incident attributed as external (canceled outside Warden)",
    )


SCENARIOS = {"double-open": double_open, "stop-removed": stop_removed}


def _is_live(s: StopOrder) -> bool:
    return s.state is StopState.LIVE


def _secs(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}s"


# -- cleanup --------------------------------------------------------------------------------


async def _close(d: LiveDrill, lease: LeaseGuard, p: Position) -> str | None:
    """A reduce-only market close through a persisted intent; the error text if it failed.

    The position is closed BEFORE its stops are canceled: if the close fails, the stop is
    still there protecting the position (canceling first, a failed close would leave a
    position with no stop at all)."""
    acct = d.account
    sent = await acct.executor.sender.send(
        lease,
        IntentKind.CLOSE,
        p.symbol,
        p.side.exit_side,
        p.size,
        reduce_only=True,
        purpose="drill cleanup",
    )
    if not sent.filled or sent.order is None or sent.order.average_price is None:
        return sent.error or sent.status.value
    exit_ = NewExit(
        p.symbol,
        p.side,
        sent.order.filled,
        p.entry_price,
        sent.order.average_price,
        ExitReason.MANUAL,
        sent.order.fee,
    )
    await acct.journal.record_event(acct.scope, exit=exit_)
    d.run.step(
        f"  cleanup: closed {p.side.value} {sent.order.filled} at {sent.order.average_price}"
    )
    return None


async def _clean(d: LiveDrill) -> None:
    acct, t = d.account, d.target
    ex = acct.exchange
    async with d.leases.hold(acct.scope, "drill cleanup", wait=LEASE_WAIT) as lease:
        for p in [p for p in await retry.read(ex.positions) if p.symbol == t.symbol]:
            try:
                error = await _close(d, lease, p)
            except ExchangeError as exc:
                error = str(exc)
            if error is not None:
                d.run.step(f"  cleanup: close of {p.side.value} {p.size} failed: {error}")
        if [p for p in await retry.read(ex.positions) if p.symbol == t.symbol]:
            d.run.step("  cleanup: the position remains, so its stops stay: they protect it")
            return
        stops = await retry.read(lambda: ex.open_stops(t.symbol))
        # through the lease's gate, each remembered as canceled by Warden
        for s, failed in await acct.keeper.cancel_stops(lease, acct.scope, stops):
            if failed is not None:
                d.run.step(f"  cleanup: cancel of stop {s.id} failed: {failed}")
            else:
                d.run.step(f"  cleanup: canceled stop {s.id}")


async def cleanup(d: LiveDrill) -> list[str]:
    """Undo everything the drill made, then read the exchange back: what is left, if anything.

    The symbol held nothing before the drill (checked in ``prepare``), so whatever is on it
    now is the drill's own."""
    t, run, ex = d.target, d.run, d.account.exchange
    for p in d.children:  # an interrupted double-open: its `warden open` runs must end first
        if p.returncode is None:
            try:
                await asyncio.wait_for(p.wait(), CHILD_TIMEOUT)
            except TimeoutError:
                p.kill()
                await p.wait()
    run.step(f"cleanup: closing what the drill opened on {t.symbol} and canceling its stops")
    try:
        await _clean(d)
    except (ExchangeError, LeaseBusy, LeaseLost) as exc:
        run.step(f"  cleanup stopped: {exc}")
    try:
        held = [p for p in await retry.read(ex.positions) if p.symbol == t.symbol]
        stops = await retry.read(lambda: ex.open_stops(t.symbol))
    except ExchangeError as exc:
        return [f"unknown: the exchange could not be read back ({exc})"]
    left = [f"position {p.symbol} {p.side.value} {p.size}" for p in held]
    left += [
        f"stop {s.id} on {s.symbol} ({s.side.value} {s.size} at {s.trigger_price})" for s in stops
    ]
    return left


@contextlib.contextmanager
def _no_interrupt(run: DrillRun) -> Iterator[None]:
    """Ctrl-C during the cleanup would leave the drill's orders behind: say so, carry on."""

    def refuse(signum: int, frame: FrameType | None) -> None:
        run.step("cleanup in progress: wait for it to finish")

    try:
        previous = signal.signal(signal.SIGINT, refuse)
    except ValueError:  # not the main thread: nothing to guard
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


async def run_live(ctx: Context, name: str, run: DrillRun) -> int:
    exchange = ctx.exchange_name(ctx.args.exchange)
    try:
        guard_real_money(ctx, exchange)
    except Refused as exc:
        print(f"warden drill: {exc}", file=sys.stderr)
        return exc.code
    if not math.isfinite(ctx.args.stop_percent):
        print("warden drill: --stop-percent must be a finite number", file=sys.stderr)
        return exit_codes.USAGE
    async with open_db(ctx) as db:
        acct = build_account(ctx.config, exchange, db)
        try:
            try:
                target = await prepare(ctx, acct, exchange)
            except Refused as exc:
                print(f"warden drill: {exc}", file=sys.stderr)
                return exc.code
            run.step(
                f"drill {name} on exchange {exchange} ({target.kind}): {target.symbol} last "
                f"{target.last}, size {target.size} (the minimum), stop {target.stop} "
                f"({ctx.args.stop_percent:g}% away)"
            )
            d = LiveDrill(ctx, db, acct, ctx.lease_manager(db), target, run)
            interrupted = False
            try:
                await SCENARIOS[name](d)
            except asyncio.CancelledError:
                interrupted = True
                run.step("interrupted: cleaning up before exit")
            except Exception as exc:  # whatever stopped it, the cleanup below still runs
                why = redactor()(f"{type(exc).__name__}: {exc}")
                run.check(False, f"the drill stopped: {why}")
            finally:
                with _no_interrupt(run):
                    left = await cleanup(d)
            return report(run, target, left, interrupted)
        finally:
            await acct.exchange.close()


def report(run: DrillRun, t: Target, left: list[str], interrupted: bool) -> int:
    if left:
        run.step(f"LEFT ON EXCHANGE {t.exchange} by the drill (cleanup failed):")
        for item in left:
            run.step(f"  {item}")
        if any(item.startswith("position ") for item in left):
            todo = (
                f"close it with `warden close {t.symbol} --exchange {t.exchange} --yes` (it "
                "cancels the position's stops too) or in the venue's app"
            )
        else:
            todo = "cancel the stop(s) listed above in the venue's app"
        run.step(f"what to do: {todo}, then check with `warden status --exchange {t.exchange}`")
        return exit_codes.REFUSED
    run.step(f"cleanup: read back from {t.exchange}: no position and no stop on {t.symbol}")
    if interrupted:
        return 130
    return exit_codes.OK if run.passed else exit_codes.REFUSED
