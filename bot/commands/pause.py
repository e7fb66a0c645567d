"""`warden pause` / `warden resume`: no new entries while paused; stops stay guarded."""

from __future__ import annotations

from bot import exit_codes
from bot.context import Context, open_db
from bot.logs import redactor
from storage.journal_store import JournalStore


def _scope(ctx: Context) -> str:
    if ctx.args.exchange is None:
        return "*"
    return ctx.config.lease_scope(ctx.exchange_name(ctx.args.exchange))


async def pause(ctx: Context) -> int:
    scope = _scope(ctx)
    async with open_db(ctx) as db:
        journal = JournalStore(db, redact=redactor())
        await journal.set_paused(scope, True, ctx.args.reason)
    where = "all exchanges" if scope == "*" else scope
    print(
        f"paused {where} ({ctx.args.reason}): no new entries; stops keep being guarded; "
        "`warden status` shows the reason"
    )
    return exit_codes.OK


async def resume(ctx: Context) -> int:
    scope = _scope(ctx)
    async with open_db(ctx) as db:
        journal = JournalStore(db, redact=redactor())
        await journal.set_paused(scope, False, "")
        if scope == "*":
            # "all exchanges" means all: an exchange paused on its own is resumed too
            for name in ctx.config.exchanges:
                await journal.set_paused(ctx.config.lease_scope(name), False, "")
        still = [s for s in ("*",) if scope != "*" and await journal.is_paused(s)]
    where = "all exchanges" if scope == "*" else scope
    print(
        f"resumed {where}"
        + (" (but all exchanges are still paused: `warden resume`)" if still else "")
    )
    return exit_codes.OK
