"""`warden doctor`: is this installation ready to run? Config, secrets, database."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot import exit_codes
from bot.commands.render import print_json
from bot.config.schema import HyperliquidExchangeConfig, OkxExchangeConfig
from bot.context import Context
from storage.db import Database
from storage.errors import StorageError
from storage.migrations import LATEST, current_version

REQUIRED_SECRETS = {
    OkxExchangeConfig: ("OKX_API_KEY", "OKX_API_SECRET", "OKX_API_PASSPHRASE"),
    HyperliquidExchangeConfig: ("HYPERLIQUID_WALLET_ADDRESS", "HYPERLIQUID_PRIVATE_KEY"),
}


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str


async def _checks(ctx: Context) -> list[Check]:
    checks = [Check("config", "ok", f"valid ({ctx.config_source})")]
    for name, ex in ctx.config.exchanges.items():
        needed = REQUIRED_SECRETS.get(type(ex), ())
        missing = [s for s in needed if not ctx.secrets.get(s)]
        if missing:
            status, detail = "fail", f"{ex.kind}: missing secrets {', '.join(missing)}"
        elif ex.kind != "paper":
            status, detail = "fail", f"{ex.kind}: secrets set, but this version supports only paper"
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
