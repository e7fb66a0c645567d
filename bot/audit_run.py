"""Running the audit over configured exchanges plus the lease table (for the CLI, /audit and
the scheduled daily audit)."""

from __future__ import annotations

import time

from bot.config import Config
from bot.services import build_account
from storage.db import Database
from storage.lease import HOST, LeaseStore, parse_owner, pid_alive
from trading.audit import Finding, Kind, Level, audit_exchange
from trading.errors import ExchangeError


async def lease_findings(db: Database, since: float) -> list[Finding]:
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
                    Level.WARNING,
                    h.scope.split(":")[0],
                    "",
                    f"lease {h.scope} held by {h.owner} ({h.purpose}): {why}",
                    "the next acquisition takes it over; nothing to do unless it repeats",
                )
            )
    for r in await store.refusals(since=since, limit=200):
        out.append(
            Finding(
                Kind.LEASE_REFUSAL,
                Level.INFO,
                r.scope.split(":")[0],
                "",
                f"{r.purpose!r} ({r.owner}) kept out while {r.holder_purpose!r} "
                f"({r.holder_owner}) held {r.scope}",
                "none: the lease did its job",
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
    return [f for f in findings if f.severity is not Level.INFO]
