"""`warden drill failover`: an active/standby pair on PostgreSQL loses its active agent.

A throwaway PostgreSQL cluster (``bot/drills/pg_cluster.py``: the installed server binaries, a
Unix socket in a temporary folder, no TCP port), a paper exchange living in it, and a position
opened with its stop. Two `warden run --standby` processes on it, each claiming a host of its own
(``WARDEN_AGENT_HOST``: a pid on another host is never judged dead, so the standby waits for the
lease to expire by the database's clock, as it would across machines). The active one is
SIGKILLed; the standby takes over, reconciles and verifies the stop.

It passes only when nothing was doubled or left unprotected: one position of the opened size,
one live stop covering it, verified by the new active after the kill, and every alert in the
outbox delivered, each exactly once across both agents' output. The timings are printed: kill to
takeover (the budget is the lease TTL plus one watchdog period) and kill to the stop verified.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bot.agent import HOST_ENV
from bot.config.schema import Config
from bot.drills.harness import DrillRun
from bot.drills.pg_cluster import Cluster, ClusterUnavailable, running_cluster
from storage.db import Database

BTC = "BTC/USDT:USDT"
SIZE = 0.001
STOP = 65000.0
HOSTS = ("drill-host-a", "drill-host-b")
ALERT_MARK = "[ALERT "


def repo_env(**extra: str) -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    for key in ("WARDEN_DB", "WARDEN_DATABASE_URL", "TELEGRAM_BOT_TOKEN", HOST_ENV):
        env.pop(key, None)
    env.update(extra)
    return env


def pair_config(base: Config, url: str, path: Path) -> Path:
    """The user's lease and guardian timings on a paper exchange stored in ``url``; no
    strategies (the agents guard the position)."""
    g, lease = base.guardian, base.lease
    path.write_text(
        "[storage]\n"
        f'url = "{url}"\n'
        "[lease]\n"
        f"ttl_seconds = {lease.ttl_seconds}\nheartbeat_seconds = {lease.heartbeat_seconds}\n"
        "[guardian]\n"
        f"watchdog_seconds = {g.watchdog_seconds}\n"
        f"verify_delay_seconds = {g.verify_delay_seconds}\n"
        f"verify_attempts = {g.verify_attempts}\n"
        "[risk]\nmax_stop_percent = 10\n"
        '[exchanges.paper]\nkind = "paper"\n',
        encoding="utf-8",
    )
    return path


class Agent:
    """A `warden run --standby` child claiming ``host``; output in files polled by readers."""

    def __init__(self, root: Path, config: Path, host: str) -> None:
        self.host = host
        self.out_path, self.err_path = root / f"{host}.out", root / f"{host}.err"
        self._out: IO[bytes] = open(self.out_path, "wb")  # noqa: SIM115 - closed in close()
        self._err: IO[bytes] = open(self.err_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(config), "run", "--standby"],
            cwd=root,
            env=repo_env(**{HOST_ENV: host}),
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
        )

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def output(self) -> str:
        return self.stdout() + self.err_path.read_text(errors="replace")

    async def wait_for(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while needle not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        self._out.close()
        self._err.close()


def delivered_texts(*outputs: str) -> Counter[str]:
    """The first line of each alert the terminal notifier printed, across several agents."""
    got: Counter[str] = Counter()
    for text in outputs:
        for line in text.splitlines():
            if line.startswith(ALERT_MARK):
                # "[ALERT CRITICAL] 12:00:00 !!text": the icon is two characters
                _mark, _sev, rest = line.split(" ", 2)
                got[rest.split(" ", 1)[1][2:]] += 1
    return got


async def warden_json(root: Path, config: Path, *args: str) -> tuple[int, Any, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--config",
        str(config),
        "--log-level",
        "ERROR",
        *args,
        "--json",
        cwd=root,
        env=repo_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    try:
        parsed = json.loads(out.decode()) if out.strip() else None
    except json.JSONDecodeError:
        parsed = None
    return proc.returncode or 0, parsed, err.decode()


@dataclass
class Outbox:
    rows: list[tuple[str, float | None]]

    @property
    def undelivered(self) -> list[str]:
        return [t for t, at in self.rows if at is None]

    def expected(self) -> Counter[str]:
        return Counter(t.splitlines()[0] if t else t for t, _at in self.rows)


async def read_outbox(url: str) -> Outbox:
    db = await Database.open(url, migrate=False, create=False)
    try:
        async with db.read() as conn:
            cur = await conn.execute("SELECT text, delivered_at FROM alert_outbox ORDER BY id")
            rows = await cur.fetchall()
    finally:
        await db.close()
    return Outbox([(str(r[0]), None if r[1] is None else float(r[1])) for r in rows])


@contextlib.contextmanager
def _agents() -> Iterator[list[Agent]]:
    agents: list[Agent] = []
    try:
        yield agents
    finally:
        for a in agents:
            a.close()


async def failover(base: Config, run: DrillRun) -> None:
    """The drill (see the module docstring); failures are recorded on ``run``."""
    wait = 4 * base.lease.ttl_seconds + 4 * base.guardian.watchdog_seconds + 60
    # far beyond the budget: only a hung agent reaches it
    try:
        with running_cluster() as cluster:
            await _pair(cluster, base, run, wait)
    except ClusterUnavailable as exc:
        run.check(False, f"a throwaway PostgreSQL cluster could not be started: {exc}")
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or "").strip().splitlines()[-1:] or [str(exc)]
        run.check(False, f"the PostgreSQL cluster failed to start: {detail[0]}")


async def _pair(cluster: Cluster, base: Config, run: DrillRun, wait: float) -> None:
    ttl, watchdog = base.lease.ttl_seconds, base.guardian.watchdog_seconds
    with tempfile.TemporaryDirectory(prefix="warden-failover-") as tmp:
        root = Path(tmp)
        url = cluster.psql_create_db("warden_drill")
        config = pair_config(base, url, root / "pair.toml")
        run.step(
            f"throwaway PostgreSQL {cluster.bindir.parent.name} on a Unix socket; lease TTL "
            f"{ttl:g}s, heartbeat {base.lease.heartbeat_seconds:g}s, watchdog {watchdog:g}s"
        )
        code, _opened, err = await warden_json(
            root, config, "open", BTC, "long", "--size", str(SIZE), "--stop", str(STOP), "--yes"
        )
        if not run.check(code == 0, f"opened long {SIZE} {BTC} with stop {STOP} (exit {code})"):
            run.step(f"  {err.strip()[-500:]}")
            return
        with _agents() as agents:
            active = Agent(root, config, HOSTS[0])
            agents.append(active)
            if not run.check(
                await active.wait_for("Ctrl-C stops", wait),
                f"agent on {HOSTS[0]} (pid {active.proc.pid}) is active",
            ):
                run.step(f"  {active.output()[-800:]}")
                return
            standby = Agent(root, config, HOSTS[1])
            agents.append(standby)
            if not run.check(
                await standby.wait_for("warden: standby: the active agent is", wait),
                f"agent on {HOSTS[1]} (pid {standby.proc.pid}) stands by",
            ):
                run.step(f"  {standby.output()[-800:]}")
                return
            # the active delivers what is queued so far (the standby delivers nothing)
            await active.wait_for(ALERT_MARK, wait)
            killed_at = time.time()
            t0 = time.monotonic()
            active.proc.send_signal(signal.SIGKILL)
            active.proc.wait()
            run.step(f"SIGKILL -> the active agent (pid {active.proc.pid}, {HOSTS[0]})")
            took = await standby.wait_for("took over from", wait)
            takeover = time.monotonic() - t0
            if not run.check(took, "the standby took over (critical alert)"):
                run.step(f"  {standby.output()[-800:]}")
                return
            run.figures["takeover_seconds"] = takeover
            run.step(
                f"  kill -> takeover {takeover:.2f}s (budget: TTL + one watchdog period = "
                f"{ttl + watchdog:g}s)"
            )
            verified = await stop_verified_after(url, killed_at, wait)
            run.figures["protected_seconds"] = (verified or time.time()) - killed_at
            run.check(
                verified is not None,
                f"the new active verified the stop {run.figures['protected_seconds']:.2f}s after "
                "the kill",
            )
            await standby.wait_for(ALERT_MARK, wait)
            standby.proc.send_signal(signal.SIGINT)
            try:
                code = await asyncio.to_thread(standby.proc.wait, 60)
            except subprocess.TimeoutExpired:
                code = -1
            run.check(code == 0, f"the new active stopped cleanly on SIGINT (exit {code})")
            await _judge(root, config, url, run, [active, standby])


async def stop_verified_after(url: str, since: float, wait: float) -> float | None:
    """When the stop was last read back live from the exchange, once that is after ``since``
    (the journal's record; ``warden status`` shows it to the second only)."""
    deadline = time.monotonic() + wait
    db = await Database.open(url, migrate=False, create=False)
    try:
        while time.monotonic() < deadline:
            async with db.read() as conn:
                cur = await conn.execute(
                    "SELECT MAX(verified_at) FROM stop_placement WHERE symbol = ?", (BTC,)
                )
                row = await cur.fetchone()
            if row is not None and row[0] is not None and float(row[0]) > since:
                return float(row[0])
            await asyncio.sleep(0.1)
    finally:
        await db.close()
    return None


async def _judge(root: Path, config: Path, url: str, run: DrillRun, agents: list[Agent]) -> None:
    code, status, err = await warden_json(root, config, "status")
    positions = (status or {}).get("positions", [])
    sizes = [p["size"] for p in positions if p["symbol"] == BTC]
    run.check(code == 0 and sizes == [SIZE], f"one position of {SIZE} (exchange: {sizes})")
    stops = [p.get("stop") or {} for p in positions]
    run.check(
        len(stops) == 1
        and stops[0].get("state") == "live"
        and stops[0].get("size") == SIZE
        and stops[0].get("verified_at") is not None,
        "one live, verified stop covering it",
    )
    outbox = await read_outbox(url)
    run.check(not outbox.undelivered, f"every alert delivered ({len(outbox.rows)} in the outbox)")
    printed = delivered_texts(*(a.output() for a in agents))
    expected = outbox.expected()
    twice = {t: n for t, n in printed.items() if n > expected.get(t, 0)}
    missing = {t: n for t, n in expected.items() if printed.get(t, 0) < n}
    run.check(
        not twice and not missing,
        "each alert delivered exactly once across both agents"
        + (f" (twice: {sorted(twice)})" if twice else "")
        + (f" (never: {sorted(missing)})" if missing else ""),
    )
    takeovers = [t for t in expected if "took over from" in t]
    run.check(len(takeovers) == 1, f"one takeover alert ({len(takeovers)})")
    if err.strip() and code != 0:
        run.step(f"  {err.strip()[-500:]}")
