"""`warden audit [--json]`: reconcile the exchange against the database.

Exit 0 unless a finding needs the owner now (exit 1): an unprotected or mismatched position, an
unresolved order, a failed stop placement never repaired. History that was repaired (a stop
that failed and was re-placed live) and evidence that the lease worked are shown as
informational and do not fail it. Read-only: a missing database is an error, never created.
"""

from __future__ import annotations

import sys

from bot import exit_codes
from bot.audit_run import failing, run_audit
from bot.commands.render import print_json
from bot.context import Context, open_db
from trading.audit import Finding


def _line(f: Finding) -> str:
    where = f"{f.exchange} {f.symbol}".strip()
    return f"[{f.severity.value}] {f.kind.value} {where}: {f.detail}\n    -> {f.action}"


async def run(ctx: Context) -> int:
    names = (
        [ctx.exchange_name(ctx.args.exchange)] if ctx.args.exchange else list(ctx.config.exchanges)
    )
    async with open_db(ctx, create=False) as db:
        findings, errors = await run_audit(ctx.config, db, names, ctx.args.since_days)
    bad = failing(findings)
    info = [f for f in findings if not f.needs_action]
    ok = not bad and not errors
    if ctx.args.json:
        print_json(
            {
                "ok": ok,
                "database": ctx.database,
                "findings": [f.as_json() for f in findings],
                "errors": errors,
            }
        )
        return exit_codes.OK if ok else exit_codes.REFUSED
    print(f"audit of {ctx.database}, last {ctx.args.since_days:g} day(s)")
    if bad:
        print("needs action:")
        for f in bad:
            print(_line(f))
    if info:
        print("history and evidence (informational, nothing to do):")
        for f in info:
            print(_line(f))
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if ok:
        print(f"audit: clean ({len(info)} informational)" if info else "audit: clean")
    else:
        print(
            f"audit: {len(bad)} finding(s) need action, {len(info)} informational, "
            f"{len(errors)} error(s)"
        )
    return exit_codes.OK if ok else exit_codes.REFUSED
