"""`warden doctor`: is this installation ready to run? Config, secrets, database."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from bot import exit_codes
from bot.commands.render import print_json
from bot.config.errors import ConfigError
from bot.config.schema import HyperliquidExchangeConfig, OkxExchangeConfig
from bot.context import Context
from bot.exchanges import build_exchange
from storage.db import Database
from storage.errors import StorageError
from storage.migrations import LATEST, current_version
from trading.errors import ExchangeError

REQUIRED_SECRETS = {
    OkxExchangeConfig: ("OKX_API_KEY", "OKX_API_SECRET", "OKX_API_PASSPHRASE"),
    HyperliquidExchangeConfig: ("HYPERLIQUID_WALLET_ADDRESS", "HYPERLIQUID_PRIVATE_KEY"),
}


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str


PROBE_SECONDS = 15.0


async def _probe(ctx: Context, name: str) -> tuple[str, str]:
    """Read-only checks against a real exchange: reachable, clock, account fit to trade."""
    import time

    from storage.db import Database

    db = await Database.open(":memory:")
    try:
        exchange = build_exchange(ctx.config, name, db, ctx.secrets)
    except ConfigError as exc:
        await db.close()
        return "fail", str(exc)
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            markets = await exchange.markets()
            balance = await exchange.balance()
            notes = [f"{len(markets)} markets", f"equity {balance.total:,.2f} {balance.currency}"]
            server_time = getattr(exchange, "server_time", None)
            if server_time is not None:
                skew = abs(await server_time() - time.time())
                if skew > 5:
                    return "fail", f"clock is {skew:.1f}s off the exchange's: fix NTP"
                notes.append(f"clock skew {skew:.2f}s")
            account_config = getattr(exchange, "account_config", None)
            if account_config is not None:
                problems = (await account_config()).problems()
                if problems:
                    return "fail", "; ".join(problems)
            return "ok", f"{ctx.config.exchanges[name].kind} reachable: " + ", ".join(notes)
    except TimeoutError:
        return "fail", f"no answer within {PROBE_SECONDS:g}s"
    except ExchangeError as exc:
        return "fail", f"{type(exc).__name__}: {exc}"
    finally:
        await exchange.close()
        await db.close()


async def _checks(ctx: Context) -> list[Check]:
    checks = [Check("config", "ok", f"valid ({ctx.config_source})")]
    for name, ex in ctx.config.exchanges.items():
        needed = REQUIRED_SECRETS.get(type(ex), ())
        missing = [s for s in needed if not ctx.secrets.get(s)]
        if missing:
            status, detail = "fail", f"{ex.kind}: missing secrets {', '.join(missing)}"
        elif ex.kind != "paper":
            status, detail = await _probe(ctx, name)
        else:
            status, detail = "ok", f"{ex.kind}, lease scope {ctx.config.lease_scope(name)}"
        checks.append(Check(f"exchange {name}", status, detail))
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
    if path != ":memory:" and not Path(path).exists():
        checks.append(Check("database", "ok", f"{path}: not created yet (made on first start)"))
        return checks
    try:
        db = await Database.open(path, migrate=False)
        try:
            version = await current_version(db)
        finally:
            await db.close()
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


async def run(ctx: Context) -> int:
    checks = await _checks(ctx)
    ok = all(c.status != "fail" for c in checks)
    if ctx.args.json:
        print_json({"ok": ok, "checks": [c.__dict__ for c in checks]})
    else:
        for c in checks:
            print(f"[{c.status:>4}] {c.name}: {c.detail}")
    return exit_codes.OK if ok else exit_codes.REFUSED
