"""`warden doctor`: is this installation ready to run? Config, secrets, database, and on real
exchanges the leverage and margin mode each traded or held symbol runs with."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot import exit_codes
from bot.commands.paper import drift_warning, fault_drift_by_exchange
from bot.commands.render import print_json
from bot.config.errors import ConfigError
from bot.context import Context
from bot.exchanges import build_exchange, kind_of
from storage.db import Database
from storage.errors import StorageError
from storage.migrations import LATEST, current_version
from trading.errors import ExchangeError


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    data: dict[str, Any] | None = field(default=None)  # only in --json, only when set


PROBE_SECONDS = 15.0


async def _leverage(ctx: Context, name: str, exchange: Any) -> Check | None:
    """Each symbol the strategies trade on this exchange, and each one it holds: the leverage
    and margin mode the exchange has for it now, flagged when they differ from the config.
    Read only; called for kinds with the ``leverage_setting`` capability, whose config tables
    carry ``leverage`` and ``margin_mode``."""
    cfg = ctx.config.exchanges[name]
    options = cfg.model_dump()
    want_lever, want_mode = options.get("leverage"), options.get("margin_mode")
    read = exchange.leverage_setting
    symbols = {s for sc in ctx.config.strategies if sc.exchange == name for s in sc.symbols}
    symbols |= {p.symbol for p in await exchange.positions()}
    rows, differ = [], []
    for symbol in sorted(symbols):
        got = await read(symbol)
        lever_off = None not in (want_lever, got.leverage) and got.leverage != want_lever
        mode_off = None not in (want_mode, got.margin_mode) and got.margin_mode != want_mode
        rows.append(
            {
                "symbol": symbol,
                "leverage": got.leverage,
                "margin_mode": got.margin_mode,
                "differs": bool(lever_off or mode_off),
            }
        )
        if lever_off or mode_off:
            lever = f"{got.leverage:g}x" if got.leverage is not None else "leverage unknown"
            differ.append(f"{symbol} {lever} {got.margin_mode or ''}".rstrip())
    data = {"leverage": want_lever, "margin_mode": want_mode, "symbols": rows}
    check = f"leverage {name}"
    if not rows:
        return Check(check, "ok", "no symbol traded by a strategy or held", data)
    if differ:
        return Check(
            check,
            "warn",
            f"config is {want_lever}x {want_mode}; differs: {', '.join(differ)} (set before "
            "Warden's next entry on the symbol; an open position keeps its own)",
            data,
        )
    return Check(check, "ok", f"{len(rows)} symbol(s) at {want_lever}x {want_mode}", data)


async def _probe(ctx: Context, name: str) -> tuple[str, str, Check | None]:
    """Read-only checks against a real exchange: reachable, clock, account fit to trade; and
    the leverage check (None when the kind has no ``leverage_setting`` capability)."""
    import time

    from storage.db import Database

    db = await Database.open(":memory:")
    try:
        exchange = build_exchange(ctx.config, name, db, ctx.secrets)
    except ConfigError as exc:
        await db.close()
        return "fail", str(exc), None
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            markets = await exchange.markets()
            balance = await exchange.balance()
            notes = [f"{len(markets)} markets", f"equity {balance.total:,.2f} {balance.currency}"]
            caps = kind_of(ctx.config.exchanges[name]).capabilities
            venue: Any = exchange  # the methods the capabilities below promise
            if caps.server_time:
                skew = abs(await venue.server_time() - time.time())
                if skew > 5:
                    return "fail", f"clock is {skew:.1f}s off the exchange's: fix NTP", None
                notes.append(f"clock skew {skew:.2f}s")
            if caps.account_config:
                problems = (await venue.account_config()).problems()
                if problems:
                    return "fail", "; ".join(problems), None
            detail = f"{ctx.config.exchanges[name].kind} reachable: " + ", ".join(notes)
            if not caps.leverage_setting:
                return "ok", detail, None
            if not caps.leverage_setting:
                return "ok", detail, None
            try:
                lever = await _leverage(ctx, name, exchange)
            except ExchangeError as exc:
                why = f"could not be read: {type(exc).__name__}: {exc}"
                lever = Check(f"leverage {name}", "warn", why)
            return "ok", detail, lever
    except TimeoutError:
        return "fail", f"no answer within {PROBE_SECONDS:g}s", None
    except ExchangeError as exc:
        return "fail", f"{type(exc).__name__}: {exc}", None
    finally:
        await exchange.close()
        await db.close()


async def _checks(ctx: Context) -> list[Check]:
    checks = [Check("config", "ok", f"valid ({ctx.config_source})")]
    for name, ex in ctx.config.exchanges.items():
        kind = kind_of(ex)
        missing = kind.missing(ctx.secrets.get)
        lever: Check | None = None
        if missing:
            status, detail = "fail", f"{ex.kind}: missing secrets {', '.join(missing)}"
        elif kind.credentials:
            # a venue behind keys: reachable, clock, account, leverage (read only)
            status, detail, lever = await _probe(ctx, name)
        else:
            status, detail = "ok", f"{ex.kind}, lease scope {ctx.config.lease_scope(name)}"
        checks.append(Check(f"exchange {name}", status, detail))
        if lever is not None:
            checks.append(lever)
    if ctx.secrets.get("TELEGRAM_BOT_TOKEN"):
        if ctx.secrets.telegram_allowed_user_ids:
            n = len(ctx.secrets.telegram_allowed_user_ids)
            checks.append(Check("telegram", "ok", f"token set, {n} allowed user id(s)"))
        else:
            checks.append(
                Check(
                    "telegram",
                    "fail",
                    "TELEGRAM_BOT_TOKEN is set but TELEGRAM_ALLOWED_USER_IDS is empty",
                )
            )
    elif "telegram" in ctx.config.model_fields_set:
        # a [telegram] table (what `warden init --telegram` writes) says Telegram is wanted: an
        # empty token would leave every alert in a terminal nobody reads
        checks.append(
            Check(
                "telegram",
                "fail",
                "[telegram] is configured but TELEGRAM_BOT_TOKEN is empty: put the token from "
                "@BotFather in .env (or remove the [telegram] table)",
            )
        )
    else:
        checks.append(Check("telegram", "warn", "no TELEGRAM_BOT_TOKEN: alerts go to the terminal"))
    path = ctx.config.storage.path
    if ctx.database_url is not None:
        checks.append(await _postgres_check(ctx))
        return checks
    if path != ":memory:" and not Path(path).exists():
        checks.append(Check("database", "ok", f"{path}: not created yet (made on first start)"))
        return checks
    try:
        db = await Database.open(path, migrate=False)
        try:
            version = await current_version(db)
            drift = await fault_drift_by_exchange(ctx.config, db) if version == LATEST else {}
        finally:
            await db.close()
        # the database's faults are in force (the config only seeds them once): say so
        for name, lines in drift.items():
            checks.append(Check(f"paper faults {name}", "warn", drift_warning(name, lines)))
        if version > LATEST:
            checks.append(
                Check(
                    "database",
                    "fail",
                    f"{path}: schema {version} is newer than this Warden ({LATEST})",
                )
            )
        elif version < LATEST:
            checks.append(
                Check(
                    "database", "ok", f"{path}: schema {version}, will migrate to {LATEST} on start"
                )
            )
        else:
            checks.append(Check("database", "ok", f"{path}: schema {version}"))
    except StorageError as exc:
        checks.append(Check("database", "fail", str(exc)))
    return checks


async def _postgres_check(ctx: Context) -> Check:
    """The server reachable, its version, the schema's version (read-only: nothing created)."""
    assert ctx.database_url is not None
    where = ctx.database
    try:
        db = await Database.open(ctx.database_url, migrate=False)
        try:
            server = (await db.server_info())["version"]
            version = await current_version(db)
        finally:
            await db.close()
    except StorageError as exc:
        return Check("database", "fail", str(exc))
    head = f"{where}: PostgreSQL {server}"
    if version > LATEST:
        return Check(
            "database", "fail", f"{head}, schema {version} is newer than this Warden ({LATEST})"
        )
    if version == 0:
        return Check("database", "ok", f"{head}, empty: schema {LATEST} made on first start")
    if version < LATEST:
        return Check(
            "database", "ok", f"{head}, schema {version}, will migrate to {LATEST} on start"
        )
    return Check("database", "ok", f"{head}, schema {version}")


async def run(ctx: Context) -> int:
    checks = await _checks(ctx)
    ok = all(c.status != "fail" for c in checks)
    if ctx.args.json:
        print_json(
            {
                "ok": ok,
                "checks": [{k: v for k, v in c.__dict__.items() if v is not None} for c in checks],
            }
        )
    else:
        for c in checks:
            print(f"[{c.status:>4}] {c.name}: {c.detail}")
    return exit_codes.OK if ok else exit_codes.REFUSED
