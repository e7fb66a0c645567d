"""`warden health [--max-age SECONDS] [--json]`: is the agent running AND guarding?

For a container HEALTHCHECK, a systemd timer or a monitoring probe. Exit 0 when a running agent
(its heartbeat row, written by ``bot/beacon.py``) shows, for every exchange account it guards,
activity within ``--max-age``: a completed stop-watchdog run, one of its own strategy cycles, or a
lease it holds still heart-beating. Exit 1 otherwise: no agent, an agent stopped or crashed, or an
account not guarded lately (exchange unreachable, never reconciled). Exit 2: bad configuration.
It only reads: it never creates or migrates the database and never contacts an exchange.

Agents are listed with their role: ``active`` (holds the agent lease, guards the accounts) or
``standby`` (`warden run --standby`: waits to take over, guards nothing). Health needs an active
agent; a standby alone is not healthy, and a standby beside a healthy active one changes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot import exit_codes
from bot.commands.render import iso, print_json
from bot.config import Config
from bot.context import Context, missing_hint
from storage.daemon_beacon import STANDBY, Beacon, BeaconStore, last_agent_cycles
from storage.db import Database
from storage.errors import StorageError
from storage.lease import LeaseHolder, LeaseStore, parse_owner

MIN_DEFAULT_MAX_AGE = 60.0


def default_max_age(config: Config) -> float:
    """Three watchdog periods (a busy or slow tick is not an outage), at least a minute."""
    return max(MIN_DEFAULT_MAX_AGE, 3 * config.guardian.watchdog_seconds)


@dataclass
class AccountHealth:
    scope: str
    ok: bool
    activity: str | None  # watchdog | cycle | lease
    at: float | None
    age: float | None

    def json(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "ok": self.ok,
            "last_activity": self.activity,
            "at": iso(self.at),
            "age_seconds": round(self.age, 3) if self.age is not None else None,
        }

    def line(self) -> str:
        if self.age is None:
            return f"{self.scope}: no watchdog run, agent cycle or lease heartbeat yet"
        return f"{self.scope}: {self.activity} {self.age:.1f}s ago"


@dataclass
class AgentHealth:
    beacon: Beacon
    accounts: list[AccountHealth]
    now: float

    @property
    def standby(self) -> bool:
        return self.beacon.role == STANDBY

    @property
    def ok(self) -> bool:
        """A standby is fine while it beats (it guards nothing); an active agent must guard."""
        if self.standby:
            return True
        return bool(self.accounts) and all(a.ok for a in self.accounts)

    def json(self) -> dict[str, Any]:
        return {
            "owner": self.beacon.owner,
            "role": self.beacon.role,
            "ok": self.ok,
            "started_at": iso(self.beacon.started_at),
            "beat_at": iso(self.beacon.beat_at),
            "beat_age_seconds": round(self.now - self.beacon.beat_at, 3),
            "accounts": [a.json() for a in self.accounts],
        }


@dataclass
class Report:
    ok: bool
    detail: str
    max_age: float
    agents: list[AgentHealth] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "detail": self.detail,
            "max_age_seconds": self.max_age,
            "agents": [a.json() for a in self.agents],
        }


def _lease_beats(holders: list[LeaseHolder], beacon: Beacon, now: float) -> dict[str, float]:
    """Heartbeats of the leases this agent's process holds right now, per scope."""
    mine = parse_owner(beacon.owner)
    return {
        h.scope: h.heartbeat_at
        for h in holders
        if parse_owner(h.owner) == mine and h.expires_at > now
    }


async def _agent(
    db: Database, beacon: Beacon, holders: list[LeaseHolder], now: float, max_age: float
) -> AgentHealth:
    cycles = await last_agent_cycles(db, since=beacon.started_at)
    leases = _lease_beats(holders, beacon, now)
    accounts = []
    for scope in beacon.scopes:
        evidence = {
            kind: at
            for kind, at in (
                ("watchdog", beacon.watchdog_at.get(scope)),
                ("cycle", cycles.get(scope)),
                ("lease", leases.get(scope)),
            )
            if at is not None
        }
        if not evidence:
            accounts.append(AccountHealth(scope, False, None, None, None))
            continue
        kind, at = max(evidence.items(), key=lambda kv: kv[1])
        age = max(0.0, now - at)
        accounts.append(AccountHealth(scope, age <= max_age, kind, at, age))
    return AgentHealth(beacon, accounts, now)


async def evaluate(db: Database, now: float, max_age: float) -> Report:
    try:
        beacons = await BeaconStore(db).all()
    except StorageError:  # a schema older than the meta table
        beacons = []
    running = [b for b in beacons if b.alive(now)]
    if not running:
        if beacons:
            last = beacons[0]
            detail = (
                f"no agent running: the last one ({last.owner}) beat {now - last.beat_at:.0f}s ago"
            )
        else:
            detail = "no agent running (no `warden run` heartbeat in this database)"
        return Report(False, detail, max_age)
    holders = await LeaseStore(db).holders()
    # the active agent(s) first, then the standbys
    running.sort(key=lambda b: b.role == STANDBY)
    agents = [await _agent(db, b, holders, now, max_age) for b in running]
    active = [a for a in agents if not a.standby]
    ok = bool(active) and all(a.ok for a in active)
    lines = []
    for agent in agents:
        up = now - agent.beacon.started_at
        if agent.standby:
            lines.append(f"standby agent {agent.beacon.owner} up {up:.0f}s: waiting to take over")
            continue
        accounts = "; ".join(a.line() for a in agent.accounts)
        lines.append(f"agent {agent.beacon.owner} up {up:.0f}s: {accounts}")
    if not active:
        verdict = "unhealthy (no active agent)"
    else:
        verdict = "healthy" if ok else f"unhealthy (nothing within {max_age:g}s)"
    return Report(ok, f"{verdict}: " + " | ".join(lines), max_age, agents)


async def run(ctx: Context) -> int:
    max_age = ctx.args.max_age or default_max_age(ctx.config)
    path = ctx.config.storage.path
    now = time.time()
    if ctx.database_url is not None:
        try:
            db = await Database.open(ctx.database_url, migrate=False)
        except StorageError as exc:
            report = Report(False, str(exc), max_age)
        else:
            try:
                report = await evaluate(db, now, max_age)
            finally:
                await db.close()
    elif path == ":memory:" or not Path(path).is_file():
        # not healthy (exit 1, what a container HEALTHCHECK expects), and nothing is created
        report = Report(
            False,
            f"database {ctx.database} does not exist (nothing was created); {missing_hint(ctx)}",
            max_age,
        )
    else:
        db = await Database.open(path, migrate=False, create=False)
        try:
            report = await evaluate(db, now, max_age)
        finally:
            await db.close()
    if ctx.args.json:
        print_json({**report.json(), "database": ctx.database})
    else:
        print(f"database: {ctx.database}")
        print(report.detail)
    return exit_codes.OK if report.ok else exit_codes.REFUSED
