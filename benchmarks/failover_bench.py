"""Failover time of an active/standby pair on PostgreSQL: SIGKILL of the active to the standby's
takeover, and to the position's stop read back live by the new active.

    .venv/bin/python benchmarks/failover_bench.py [--takeovers 10] [--ttl 2] [--no-doc]

A throwaway PostgreSQL cluster (``bot/drills/pg_cluster.py``), a paper position with its stop,
and a chain of `warden run --standby` agents, each claiming a host of its own
(``WARDEN_AGENT_HOST``: the standby never judges another host's pid, it waits for the lease to
expire by the database's clock, as across machines). Each round kills the active agent at a
random moment of its heartbeat period, waits for the standby's takeover, then starts the next
standby. Times are measured on one machine, so the kill (this process's clock) and the takeover
(the database's ``lease_event`` row, the server's clock) share one clock. Prints the figures and
rewrites its own section of ``docs/benchmarks.md`` (``<!-- failover-bench -->``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bot.config.schema import Config, GuardianConfig, LeaseConfig
from bot.drills.failover import (
    BTC,
    SIZE,
    STOP,
    Agent,
    pair_config,
    stop_verified_after,
    warden_json,
)
from bot.drills.pg_cluster import running_cluster
from storage.agent_lease import AGENT_SCOPE
from storage.db import Database

WATCHDOG = 1.0


async def takeover_at(url: str, after: float, timeout: float) -> float | None:
    """The database's time of the first agent-lease takeover recorded after ``after``."""
    deadline = time.monotonic() + timeout
    db = await Database.open(url, migrate=False, create=False)
    try:
        while time.monotonic() < deadline:
            async with db.read() as conn:
                cur = await conn.execute(
                    "SELECT MIN(at) FROM lease_event WHERE scope = ? AND kind = 'takeover' "
                    "AND at > ?",
                    (AGENT_SCOPE, after),
                )
                row = await cur.fetchone()
            if row is not None and row[0] is not None:
                return float(row[0])
            await asyncio.sleep(0.02)
    finally:
        await db.close()
    return None


async def bench(takeovers: int, ttl: float) -> dict[str, Any]:
    base = Config(
        lease=LeaseConfig(ttl_seconds=ttl, heartbeat_seconds=ttl / 3),
        guardian=GuardianConfig(watchdog_seconds=WATCHDOG, verify_delay_seconds=0.1),
    )
    rows: list[dict[str, float]] = []
    with running_cluster() as cluster, tempfile.TemporaryDirectory(prefix="failover-") as tmp:
        root = Path(tmp)
        url = cluster.psql_create_db("warden_bench")
        config = pair_config(base, url, root / "pair.toml")
        code, _out, err = await warden_json(
            root, config, "open", BTC, "long", "--size", str(SIZE), "--stop", str(STOP), "--yes"
        )
        if code != 0:
            raise SystemExit(f"warden open failed ({code}): {err[-500:]}")
        agents: list[Agent] = []
        try:
            active = Agent(root, config, "bench-host-0")
            agents.append(active)
            if not await active.wait_for("Ctrl-C stops", 120):
                raise SystemExit(active.output()[-2000:])
            for i in range(takeovers):
                standby = Agent(root, config, f"bench-host-{i + 1}")
                agents.append(standby)
                if not await standby.wait_for("warden: standby: the active agent is", 120):
                    raise SystemExit(standby.output()[-2000:])
                # a random moment of the active's heartbeat period
                await asyncio.sleep(random.uniform(0, ttl / 3))
                killed = time.time()
                active.proc.send_signal(signal.SIGKILL)
                active.proc.wait()
                at = await takeover_at(url, killed, 4 * ttl + 60)
                verified = await stop_verified_after(url, killed, 4 * ttl + 60)
                if at is None or verified is None or not await standby.wait_for("Ctrl-C", 60):
                    raise SystemExit(f"round {i}: no takeover\n{standby.output()[-2000:]}")
                rows.append({"takeover": at - killed, "protected": verified - killed})
                print(
                    f"round {i + 1}: kill -> takeover {at - killed:.2f}s, -> stop verified "
                    f"{verified - killed:.2f}s",
                    flush=True,
                )
                active.close()
                active = standby
            active.proc.send_signal(signal.SIGINT)
            active.proc.wait(timeout=60)
        finally:
            for a in agents:
                a.close()
    takeover = sorted(r["takeover"] for r in rows)
    protected = sorted(r["protected"] for r in rows)
    return {
        "takeovers": len(rows),
        "ttl": ttl,
        "heartbeat": ttl / 3,
        "watchdog": WATCHDOG,
        "takeover_p50": statistics.median(takeover),
        "takeover_max": takeover[-1],
        "takeover_min": takeover[0],
        "protected_p50": statistics.median(protected),
        "protected_max": protected[-1],
        "server": cluster.bindir.parent.name,
    }


def section(r: dict[str, Any]) -> str:
    from benchmarks.docsection import machine_line

    budget = r["ttl"] + r["watchdog"]
    verdict = "met" if r["takeover_max"] <= budget else "MISSED"
    return "\n".join(
        [
            "## Failover of an active/standby pair on PostgreSQL (`benchmarks/failover_bench.py`)",
            "",
            machine_line(),
            f"A throwaway PostgreSQL {r['server']} cluster on a Unix socket on the same machine; "
            f"`lease.ttl_seconds = {r['ttl']:g}`, heartbeat {r['heartbeat']:.2f} s, "
            f"watchdog {r['watchdog']:g} s; a paper position with its stop; each agent claims "
            "a host of its own, so the standby waits for the lease to expire (it never judges "
            "another host's pid). Each round SIGKILLs the active at a random moment of its "
            "heartbeat period. 'Takeover' is the kill to the standby's takeover recorded in the "
            "database; 'stop verified' is the kill to the new active reading the stop back live "
            "(its reconciliation).",
            "",
            "| takeovers | kill -> takeover p50 (s) | max (s) | min (s) | "
            "kill -> stop verified p50 (s) | max (s) |",
            "|---|---|---|---|---|---|",
            f"| {r['takeovers']} | {r['takeover_p50']:.2f} | {r['takeover_max']:.2f} | "
            f"{r['takeover_min']:.2f} | {r['protected_p50']:.2f} | {r['protected_max']:.2f} |",
            "",
            f"Budget: TTL + one watchdog period = {budget:g} s: {verdict} (max "
            f"{r['takeover_max']:.2f} s). The takeover waits for the last heartbeat's expiry "
            "(TTL minus the time since that heartbeat) plus the standby's poll (at most 1 s), "
            "so it lies between TTL - heartbeat and TTL + 1 s after the death: with the "
            "defaults (TTL 30 s, heartbeat 5 s), 25-31 s.",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--takeovers", type=int, default=10)
    parser.add_argument("--ttl", type=float, default=2.0)
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args()
    result = asyncio.run(bench(args.takeovers, args.ttl))
    body = section(result)
    print(body)
    if not args.no_doc:
        from benchmarks.docsection import write_section

        write_section("failover-bench", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
