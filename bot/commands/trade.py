"""`warden open` and `warden close`: manual trades through the guarded executor and the lease."""

from __future__ import annotations

import sys
from typing import Any

from bot import exit_codes
from bot.commands.render import print_json
from bot.context import Context, open_db
from bot.services import Account, build_account
from bot.symbols import SymbolError, resolve_symbol
from storage.db import Database
from trading.errors import ExchangeError
from trading.executor import BadRequest, ExecResult, Outcome, RefusedError
from trading.lease import LeaseBusy, LeaseLost
from trading.models import PositionSide


def _confirm(ctx: Context, command: str, question: str) -> int | None:
    """None when confirmed, else the exit code: 2 with no terminal to ask on, 1 declined."""
    if ctx.args.yes:
        return None
    if not sys.stdin.isatty():
        print(
            f"warden {command}: refusing without --yes: no terminal to confirm on; "
            "nothing was sent",
            file=sys.stderr,
        )
        return exit_codes.USAGE
    if input(f"{question} [y/N] ").strip().lower() in ("y", "yes"):
        return None
    print(f"warden {command}: not confirmed; nothing was sent", file=sys.stderr)
    return exit_codes.REFUSED


async def _symbol(acct: Account, command: str, text: str) -> str | None:
    """The listed symbol for a shorthand (btc, BTCUSDT), as Telegram reads it; None (after
    saying why) when it names none or several."""
    markets = await acct.exchange.markets()
    try:
        return resolve_symbol(text, markets)
    except SymbolError as exc:
        print(f"warden {command}: {exc}; nothing was sent", file=sys.stderr)
        return None


def _result_json(r: ExecResult) -> dict[str, Any]:
    return {
        "outcome": r.outcome.value,
        "symbol": r.symbol,
        "detail": r.detail,
        "fill_price": r.fill_price,
        "size": r.size,
        "stop_attempts": r.stop_attempts,
        "detection_latency_seconds": r.detection_latency,
        "notes": r.notes,
    }


def _report(ctx: Context, results: list[ExecResult]) -> int:
    if ctx.args.json:
        print_json(
            {"ok": all(r.ok for r in results), "results": [_result_json(r) for r in results]}
        )
    else:
        for r in results:
            print(f"{r.symbol}: {r.outcome.value}: {r.detail}")
            for note in r.notes:
                print(f"  - {note}")
    return exit_codes.OK if all(r.ok for r in results) else exit_codes.REFUSED


async def _account(ctx: Context, db: Database) -> Account:
    return build_account(ctx.config, ctx.exchange_name(ctx.args.exchange), db)


async def open_(ctx: Context) -> int:
    args = ctx.args
    side = PositionSide(args.side)
    ctx.exchange_name(args.exchange)  # a wrong --exchange is a usage error before any I/O
    async with open_db(ctx) as db:
        acct = await _account(ctx, db)
        try:
            symbol = await _symbol(acct, "open", args.symbol)
            if symbol is None:
                return exit_codes.USAGE
            why = await acct.journal.pause_reason(acct.scope)
            if why is not None:
                # the executor checks it again under the lease; here the user learns why
                text = f"trading is paused ({why or 'no reason given'}); `warden resume` ends it"
                await acct.journal.record_refusal(acct.scope, symbol, "open", text, "cli")
                print(f"warden open: refused: {text}; nothing was sent", file=sys.stderr)
                return exit_codes.REFUSED
            try:
                _, last = await acct.executor.check_open(symbol, side, args.size, args.stop)
            except BadRequest as exc:
                print(f"warden open: {exc}; nothing was sent", file=sys.stderr)
                return exit_codes.USAGE
            except RefusedError as exc:
                await acct.journal.record_refusal(acct.scope, symbol, "open", str(exc), "cli")
                print(f"warden open: refused: {exc}; nothing was sent", file=sys.stderr)
                return exit_codes.REFUSED
            question = (
                f"open {side.value} {args.size} {symbol} on {acct.name} at about "
                f"{last} with stop {args.stop}?"
            )
            declined = _confirm(ctx, "open", question)
            if declined is not None:
                return declined
            manager = ctx.lease_manager(db)
            try:
                async with manager.hold(acct.scope, "cli open") as lease:
                    result = await acct.executor.open(
                        lease, symbol, side, args.size, args.stop, "cli open"
                    )
            except LeaseBusy as exc:
                await acct.journal.record_refusal(acct.scope, symbol, "open", str(exc), "cli")
                print(f"warden open: busy: {exc}", file=sys.stderr)
                return exit_codes.BUSY
            except LeaseLost as exc:
                print(f"warden open: stopped: {exc}", file=sys.stderr)
                return exit_codes.REFUSED
            except ExchangeError as exc:
                print(f"warden open: exchange error: {exc}", file=sys.stderr)
                return exit_codes.REFUSED
            return _report(ctx, [result])
        finally:
            await acct.exchange.close()


async def close(ctx: Context) -> int:
    args = ctx.args
    target = args.target
    ctx.exchange_name(args.exchange)
    async with open_db(ctx) as db:
        acct = await _account(ctx, db)
        try:
            if target != "all":
                found = await _symbol(acct, "close", target)
                if found is None:
                    return exit_codes.USAGE
                target = found
            positions = [
                p for p in await acct.exchange.positions() if target == "all" or p.symbol == target
            ]
            if not positions:
                return _report(ctx, [ExecResult(Outcome.NOTHING, target, "no open position")])
            what = ", ".join(f"{p.side.value} {p.size} {p.symbol}" for p in positions)
            declined = _confirm(ctx, "close", f"close {what} on {acct.name} at market?")
            if declined is not None:
                return declined
            manager = ctx.lease_manager(db)
            try:
                async with manager.hold(acct.scope, f"cli close {target}") as lease:
                    results = await acct.executor.close(lease, target, "manual", "cli close")
            except LeaseBusy as exc:
                await acct.journal.record_refusal(acct.scope, target, "close", str(exc), "cli")
                print(f"warden close: busy: {exc}", file=sys.stderr)
                return exit_codes.BUSY
            except (LeaseLost, ExchangeError) as exc:
                print(f"warden close: stopped: {exc}", file=sys.stderr)
                return exit_codes.REFUSED
            return _report(ctx, results)
        finally:
            await acct.exchange.close()
