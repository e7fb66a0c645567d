"""`warden audit [--json]`: reconcile the exchange against the database. Exit 0 when clean,
1 with findings (informational ones, like lease refusals, do not count)."""

from __future__ import annotations

import sys

from bot import exit_codes
from bot.audit_run import failing, run_audit
from bot.commands.render import print_json
from bot.context import Context, open_db


async def run(ctx: Context) -> int:
    names = (
        [ctx.exchange_name(ctx.args.exchange)] if ctx.args.exchange else list(ctx.config.exchanges)
    )
    async with open_db(ctx) as db:
        findings, errors = await run_audit(ctx.config, db, names, ctx.args.since_days)
    bad = failing(findings)
    ok = not bad and not errors
    if ctx.args.json:
        print_json({"ok": ok, "findings": [f.as_json() for f in findings], "errors": errors})
    else:
        if not findings and not errors:
            print("audit: clean")
        for f in findings:
            where = f"{f.exchange} {f.symbol}".strip()
            print(f"[{f.severity.value}] {f.kind.value} {where}: {f.detail}\n    -> {f.action}")
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        if findings or errors:
            print(
                f"audit: {len(bad)} finding(s), {len(findings) - len(bad)} informational, "
                f"{len(errors)} error(s)"
            )
    return exit_codes.OK if ok else exit_codes.REFUSED
