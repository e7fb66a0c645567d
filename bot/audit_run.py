"""Running the audit over configured exchanges plus the lease table (for the CLI, /audit and
the scheduled daily audit)."""

from __future__ import annotations

import time

from bot.config import Config
from bot.services import build_account
from storage.db import Database
from storage.lease import HOST, LeaseStore, Refusal, parse_owner, pid_alive
from trading.audit import Finding, Kind, Level, audit_exchange
from trading.errors import ExchangeError

REFUSALS_COUNTED = 1_000_000  # every refusal in the period counts; rows are small


async def lease_findings(db: Database, since: float) -> list[Finding]:
    """Stale leases and refusals: evidence, not problems. A stale lease is taken over by the
    next acquisition (at once when its holder is dead); a refusal is the lease doing its job.
    Refusals are one summary finding per account with their count, not one line each."""
    store = LeaseStore(db)
    now = time.time()
    out: list[Finding] = []
    for h in await store.holders():
        host, pid = parse_owner(h.owner)
        dead = host == HOST and pid is not None and not pid_alive(pid)
        if h.expires_at <= now or dead:
            why = "its holder process is dead" if dead else f"expired {now - h.expires_at:.0f}s ago"
            out.append(
                Finding(
                    Kind.STALE_LEASE,
                    Level.INFO,
                    h.scope.split(":")[0],
                    "",
                    f"lease {h.scope} held by {h.owner} ({h.purpose}): {why}",
                    "none: the next acquisition takes it over (`warden health` tells whether "
                    "the agent runs)",
                )
            )
    by_scope: dict[str, list[Refusal]] = {}
    for r in await store.refusals(since=since, limit=REFUSALS_COUNTED):
        by_scope.setdefault(r.scope, []).append(r)
    for scope, refused in sorted(by_scope.items()):
        last = refused[0]  # newest first
        out.append(
            Finding(
                Kind.LEASE_REFUSAL,
                Level.INFO,
                scope.split(":")[0],
                "",
                f"{len(refused)} refusal(s) on {scope}; the last: {last.purpose!r} "
                f"({last.owner}) kept out while {last.holder_purpose!r} ({last.holder_owner}) "
                "held it",
                "none: the lease did its job (`warden lock` lists them)",
            )
        )
    return out


async def run_audit(
    config: Config, db: Database, names: list[str], since_days: float
) -> tuple[list[Finding], list[str]]:
    since = time.time() - since_days * 86_400
    findings: list[Finding] = []
    errors: list[str] = []
    for name in names:
        acct = build_account(config, name, db)
        try:
            findings.extend(
                await audit_exchange(name, acct.exchange, acct.journal, acct.scope, since)
            )
        except ExchangeError as exc:
            errors.append(f"{name}: cannot read the exchange: {exc}")
        finally:
            await acct.exchange.close()
    findings.extend(await lease_findings(db, since))
    return findings, errors


def failing(findings: list[Finding]) -> list[Finding]:
    """The findings that need the owner now (they make the audit exit 1)."""
    return [f for f in findings if f.needs_action]
