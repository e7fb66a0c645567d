"""The execution lease (invariant I1) across REAL OS processes sharing one SQLite file.

Each child runs ``tests/lease_worker.py`` (or the ``warden`` CLI) and opens its own Database.
Children are always killed and reaped in ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from storage.db import Database
from storage.held_lease import LeaseManager
from storage.lease import Acquired, Busy, LeaseStore, new_owner, parse_owner
from tests.conftest import ROOT, child_env, warden_cmd

SCOPE = "paper:main"
T = TypeVar("T")


def with_store(db_path: Path, fn: Callable[[LeaseStore], Awaitable[T]]) -> T:
    """Run ``fn`` against a fresh connection of this (test) process, then close it."""

    async def go() -> T:
        db = await Database.open(db_path)
        try:
            return await fn(LeaseStore(db))
        finally:
            await db.close()

    return asyncio.run(go())


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def write_lock_free(db_path: Path) -> bool:
    conn = sqlite3.connect(db_path, timeout=0.2, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def pause_outside_transaction(pid: int, db_path: Path) -> None:
    """SIGSTOP ``pid``, retrying until it is not stopped inside a write transaction.

    A process frozen while its heartbeat holds SQLite's write lock would block every other
    process (that is SQLite, not the lease); the scenario under test is a holder frozen
    between writes.
    """
    for _ in range(50):
        os.kill(pid, signal.SIGSTOP)
        while proc_state(pid) != "T":
            time.sleep(0.01)
        if write_lock_free(db_path):
            return
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} always stopped inside a write transaction")


class Child:
    """A child process whose stdout lines are read by a thread, so waits can time out."""

    def __init__(self, argv: list[str], log: Path, *, cwd: Path = ROOT, stdin: bool = False):
        self.log = log
        self._err = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=child_env(),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
        )
        self.pid = self.proc.pid
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, prefix: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.01, left))
            except queue.Empty:
                line = ""
                if left <= 0:
                    raise AssertionError(
                        f"pid {self.pid}: no line starting {prefix!r} within {timeout}s; "
                        f"seen {self.seen}; stderr: {self.stderr()}"
                    ) from None
                continue
            if line is None:
                raise AssertionError(
                    f"pid {self.pid} closed stdout before {prefix!r} (rc {self.proc.poll()}); "
                    f"seen {self.seen}; stderr: {self.stderr()}"
                )
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stderr(self) -> str:
        self._err.flush()
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGCONT)  # a stopped child must be able to die
                self.proc.kill()
            except ProcessLookupError:
                pass  # already gone
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._err.close()


def worker(mode: str, db_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tests.lease_worker", mode, "--db", str(db_path), *args]


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in started:
            child.stop()


@pytest.fixture
def fresh_db(db_path: Path) -> Path:
    """Migrate the shared file once, before any child opens it."""

    async def create() -> None:
        db = await Database.open(db_path)
        await db.close()

    asyncio.run(create())
    return db_path


# --- a. many processes contending ----------------------------------------------------------

WORKERS = 8
CYCLES = 50


def run_contenders(
    tmp_path: Path, db_path: Path, children: list[Child], n: int, cycles: int
) -> list[dict[str, Any]]:
    marker = tmp_path / "holding.marker"
    go = tmp_path / "go"
    outs = [tmp_path / f"contend-{i}.json" for i in range(n)]
    for i in range(n):
        argv = worker(
            "contend",
            db_path,
            f"--cycles={cycles}",
            "--wait=60",
            "--ttl=30",
            "--heartbeat=5",
            "--hold-ms=2",
            "--pause-ms=10",
            f"--marker={marker}",
            f"--go={go}",
            f"--out={outs[i]}",
        )
        children.append(Child(argv, tmp_path / f"contend-{i}.err"))
    for child in children:
        child.expect("READY", timeout=60)
    go.touch()  # all of them start contending at once
    for child in children:
        try:
            rc = child.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"contender {child.pid} did not finish") from None
        assert rc in (0, 1), f"contender {child.pid} crashed (rc {rc}): {child.stderr()}"
    return [json.loads(out.read_text()) for out in outs]


@pytest.mark.slow
def test_contending_processes_never_overlap(
    tmp_path: Path, fresh_db: Path, children: list[Child]
) -> None:
    reports = run_contenders(tmp_path, fresh_db, children, WORKERS, CYCLES)

    overlaps = [o for r in reports for o in r["overlaps"]]
    busy = [b for r in reports for b in r["busy"]]
    errors = [e for r in reports for e in r["errors"]]
    assert overlaps == [], f"two holders at once: {overlaps[:5]}"
    assert busy == [], f"gave up waiting: {busy[:5]}"
    assert errors == [], errors[:5]
    assert len({r["pid"] for r in reports}) == WORKERS

    holds = sorted((h for r in reports for h in r["holds"]), key=lambda h: h[1])
    total = WORKERS * CYCLES
    assert len(holds) == total
    tokens = [h[0] for h in holds]
    # a fresh scope: every acquisition took the next token, none was skipped or repeated
    assert sorted(tokens) == list(range(1, total + 1))
    # in the order the holds happened, tokens strictly increase and holds are disjoint in time
    for prev, nxt in itertools.pairwise(holds):
        assert nxt[0] > prev[0], f"token went back: {prev} then {nxt}"
        assert nxt[1] > prev[2], f"holds overlap in time: {prev} and {nxt}"
    assert not (tmp_path / "holding.marker").exists()

    async def check(store: LeaseStore) -> None:
        assert await store.holders() == []  # everyone released
        # waits never ran out, so no refusal was recorded; nobody died, so no takeover
        assert await store.refusals() == []
        assert [e for e in await store.events() if e["kind"] == "takeover"] == []
        acquired = await store.try_acquire(SCOPE, new_owner(), "after", 5)
        assert isinstance(acquired, Acquired)
        assert acquired.holder.token == total + 1

    with_store(fresh_db, check)


@pytest.mark.slow
def test_overlap_detector_reports_a_foreign_marker(
    tmp_path: Path, fresh_db: Path, children: list[Child]
) -> None:
    """The detector itself can fail: a marker left by "another holder" is reported."""
    (tmp_path / "holding.marker").write_text("planted by the test")
    reports = run_contenders(tmp_path, fresh_db, children, 1, 1)
    assert children[0].proc.returncode == 1
    [report] = reports
    assert len(report["overlaps"]) == 1
    assert "planted by the test" in report["overlaps"][0]
    # the worker must not remove a marker that is not its own
    assert (tmp_path / "holding.marker").read_text() == "planted by the test"


# --- b. SIGKILL of a holder, then takeover ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("reap", [True, False], ids=["reaped", "zombie"])
def test_sigkilled_holder_is_taken_over_at_once(
    tmp_path: Path, fresh_db: Path, children: list[Child], reap: bool
) -> None:
    child = Child(
        worker("hold", fresh_db, "--ttl=300", "--heartbeat=100", "--purpose=doomed holder"),
        tmp_path / "hold.err",
    )
    children.append(child)
    _, token, owner = child.expect("ACQUIRED").split()
    assert parse_owner(owner)[1] == child.pid

    async def busy_while_alive(store: LeaseStore) -> None:
        result = await store.try_acquire(SCOPE, new_owner(), "too early", 300)
        assert isinstance(result, Busy)
        assert result.holder.owner == owner

    with_store(fresh_db, busy_while_alive)

    os.kill(child.pid, signal.SIGKILL)
    if reap:
        child.proc.wait(timeout=30)
    else:
        # wait for the exit without reaping: the child stays a zombie that still answers kill(0)
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        assert proc_state(child.pid) == "Z"

    async def take_over(store: LeaseStore) -> None:
        manager = LeaseManager(store, ttl=300, heartbeat=100)
        t0 = time.monotonic()
        held = await manager.acquire(SCOPE, "successor", wait=0)  # one attempt only
        took = time.monotonic() - t0
        try:
            assert held.token == int(token) + 1
            [holder] = await store.holders()
            assert holder.owner == held.owner
            # the dead holder's lease was nowhere near its expiry
            assert holder.acquired_at < holder.expires_at - 250
            events = await store.events()
            assert [e["kind"] for e in events] == ["takeover"]
            assert events[0]["token"] == held.token
            assert owner in events[0]["detail"]
            assert "holder process dead" in events[0]["detail"]
            assert "doomed holder" in events[0]["detail"]
            await held.ensure()
        finally:
            await held.release()
        assert took < 60  # sanity only: the 300 s TTL was not waited for

    with_store(fresh_db, take_over)


# --- b2. fair waiting: first come, first served ---------------------------------------------


def wait_for_line(db_path: Path, n: int, timeout: float = 60.0) -> list[tuple[int, str, str]]:
    """The waiting line of SCOPE once it has ``n`` rows (tickets, owners, purposes)."""
    deadline = time.monotonic() + timeout
    while True:
        line = with_store(db_path, lambda store: store.waiters(SCOPE))
        if len(line) == n or time.monotonic() > deadline:
            return line
        time.sleep(0.05)


@pytest.mark.slow
def test_waiters_get_the_lease_in_order_and_a_dead_one_is_skipped(
    tmp_path: Path, fresh_db: Path, children: list[Child]
) -> None:
    """Lease fairness (issue 14): the lease goes to the longest waiting live process. A
    newcomer (here one that does not wait) is refused while anyone is in line, even in the
    moment the lease is free; a waiter SIGKILLed in line is skipped and its row removed."""
    first = Child(worker("hold", fresh_db, "--purpose=first"), tmp_path / "first.err")
    children.append(first)
    _, token, _ = first.expect("ACQUIRED").split()
    line_up = []
    for name in ("second", "doomed", "third"):
        child = Child(
            worker("hold", fresh_db, "--wait=120", f"--purpose={name}"), tmp_path / f"{name}.err"
        )
        children.append(child)
        line_up.append(child)
        # each one takes its place before the next starts: the order of arrival is known
        line = wait_for_line(fresh_db, len(line_up))
        assert [parse_owner(o)[1] for _t, o, _p in line] == [c.pid for c in line_up]
    second, doomed, third = line_up
    assert [p for _t, _o, p in line] == ["second", "doomed", "third"]
    tickets = [t for t, _o, _p in line]
    assert tickets == sorted(tickets)

    os.kill(doomed.pid, signal.SIGKILL)
    doomed.proc.wait(timeout=30)
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(timeout=30) == 0, first.stderr()

    async def newcomer(store: LeaseStore) -> Busy | Acquired:
        return await store.try_acquire(SCOPE, new_owner(), "newcomer", 30)

    # the lease is free or already second's: either way the newcomer does not jump the line
    result = with_store(fresh_db, newcomer)
    assert isinstance(result, Busy)
    assert parse_owner(result.holder.owner)[1] == second.pid
    assert result.holder.purpose in ("second", "waiting: second")

    _, second_token, _ = second.expect("ACQUIRED").split()
    assert int(second_token) == int(token) + 1
    assert third.proc.poll() is None and not third.seen  # still in line behind second
    # a holder that dies frees the lease at once; the next live waiter, not a newcomer, has it
    os.kill(second.pid, signal.SIGKILL)
    second.proc.wait(timeout=30)
    _, third_token, _ = third.expect("ACQUIRED").split()
    assert int(third_token) == int(second_token) + 1
    # the SIGKILLed waiter never held it, and nobody is left in line
    assert wait_for_line(fresh_db, 0) == []
    refusals = with_store(fresh_db, lambda store: store.refusals())
    assert [r.purpose for r in refusals] == ["newcomer"]


def test_a_free_lease_with_someone_in_line_refuses_a_newcomer_naming_the_first_waiter(
    fresh_db: Path,
) -> None:
    """The moment between a release and the first waiter taking the lease: a command that does
    not wait is refused (LeaseBusy, exit 75 in the CLI) naming the first in line, and the
    refusal is on record; the waiter (this live process) then takes it with its ticket."""
    from trading.lease import LeaseBusy

    async def scenario(store: LeaseStore) -> None:
        holder = await store.try_acquire(SCOPE, new_owner(), "holder", 30)
        assert isinstance(holder, Acquired)
        waiter = new_owner()
        queued = await store.try_acquire(
            SCOPE, waiter, "waiter", 30, queue=True, record_refusal=False
        )
        assert isinstance(queued, Busy) and queued.ticket is not None and not queued.queued
        assert await store.release(SCOPE, holder.holder.owner, holder.holder.token)
        assert await store.holders() == []  # free, yet not free for everyone
        try:
            await LeaseManager(store).acquire(SCOPE, "cli open")
            raise AssertionError("a newcomer took the lease ahead of a live waiter")
        except LeaseBusy as exc:
            assert "nobody, but 1 waiting process(es) come first" in str(exc)
            assert waiter in str(exc) and "waiting: waiter" in str(exc)
        [refusal] = await store.refusals()
        assert (refusal.purpose, refusal.holder_owner) == ("cli open", waiter)
        assert refusal.holder_purpose == "waiting: waiter"
        peeked = await store.peek(SCOPE, waiter, queued.ticket)
        assert peeked is None  # nobody live ahead: a write try would succeed
        mine = await store.try_acquire(SCOPE, waiter, "waiter", 30, ticket=queued.ticket)
        assert isinstance(mine, Acquired)
        assert mine.holder.token == holder.holder.token + 1
        assert await store.waiters(SCOPE) == []

    with_store(fresh_db, scenario)


# --- c. fencing: a paused holder loses the lease ---------------------------------------------


@pytest.mark.slow
def test_paused_holder_is_fenced_out_after_takeover(
    tmp_path: Path, fresh_db: Path, children: list[Child]
) -> None:
    writes = tmp_path / "writes.txt"
    old = Child(
        worker(
            "fenced",
            fresh_db,
            "--ttl=2",
            "--heartbeat=0.5",
            "--purpose=paused holder",
            f"--writes={writes}",
        ),
        tmp_path / "old.err",
        stdin=True,
    )
    children.append(old)
    _, old_token, old_owner = old.expect("ACQUIRED").split()
    old.send("write")
    assert old.expect("WROTE") == f"WROTE {old_token}"

    pause_outside_transaction(old.pid, fresh_db)
    # the successor finds a live pid, so it has to wait for the paused holder's lease to expire
    new = Child(
        worker("hold", fresh_db, "--ttl=30", "--heartbeat=5", "--wait=30", "--purpose=successor"),
        tmp_path / "new.err",
    )
    children.append(new)
    _, new_token, new_owner = new.expect("ACQUIRED", timeout=40).split()
    assert int(new_token) == int(old_token) + 1

    assert proc_state(old.pid) == "T"  # still frozen: it never saw its lease go
    os.kill(old.pid, signal.SIGCONT)
    # the resumed holder's heartbeat (0.5 s) runs and must find the lease gone, not renew it
    deadline = time.monotonic() + 30
    while True:
        old.send("status")
        status = old.expect("STATUS")
        if status != "STATUS ok" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "taken over" in status or "no longer current" in status, status
    time.sleep(1.5)  # a few more heartbeat intervals in which a renew could steal it back
    old.send("write")
    refused = old.expect("REFUSED")
    assert "lost" in refused
    old.send("quit")
    assert old.proc.wait(timeout=30) == 3, old.stderr()

    # exactly one write happened, before the pause, under the old token
    assert writes.read_text().splitlines() == [f"{old.pid} {old_token}"]

    async def check(store: LeaseStore) -> None:
        [holder] = await store.holders()
        assert holder.owner == new_owner
        assert holder.token == int(new_token)
        assert holder.purpose == "successor"
        # no heartbeat or release of the old holder touched the row: still the successor's TTL
        assert holder.expires_at - holder.acquired_at == pytest.approx(30, abs=1e-6)
        events = await store.events()
        assert events[0]["kind"] == "takeover"
        assert old_owner in events[0]["detail"]
        assert "expired" in events[0]["detail"]

    with_store(fresh_db, check)
    new.proc.send_signal(signal.SIGTERM)
    assert new.proc.wait(timeout=30) == 0, new.stderr()


# --- d. the CLI ------------------------------------------------------------------------------


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        warden_cmd(*args),
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_cli_lock_hold_busy_and_release(tmp_path: Path, children: list[Child]) -> None:
    holder = Child(
        warden_cmd("lock", "--hold", "30", "--exchange", "paper"),
        tmp_path / "cli-hold.err",
        cwd=tmp_path,
    )
    children.append(holder)
    assert holder.expect("holding", timeout=60).startswith("holding paper:main token 1 ")

    listed = run_cli(tmp_path, "lock", "--json")
    assert listed.returncode == 0, listed.stderr
    [lease] = json.loads(listed.stdout)["leases"]
    assert lease["scope"] == "paper:main"
    assert parse_owner(lease["owner"])[1] == holder.pid
    assert lease["purpose"] == "manual hold (warden lock --hold)"
    assert lease["token"] == 1
    assert lease["expired"] is False

    second = run_cli(tmp_path, "lock", "--hold", "1", "--purpose", "second hand")
    assert second.returncode == 75, (second.stdout, second.stderr)
    assert lease["owner"] in second.stderr
    assert "manual hold (warden lock --hold)" in second.stderr
    assert "holding" not in second.stdout

    listed = run_cli(tmp_path, "lock", "--json")
    assert listed.returncode == 0, listed.stderr
    shown = json.loads(listed.stdout)
    assert [x["owner"] for x in shown["leases"]] == [lease["owner"]]
    [refusal] = shown["refusals"]
    assert refusal["scope"] == "paper:main"
    assert refusal["refused_purpose"] == "second hand"
    assert refusal["holder_owner"] == lease["owner"]
    assert refusal["holder_purpose"] == "manual hold (warden lock --hold)"
    assert refusal["holder_token"] == 1

    holder.proc.send_signal(signal.SIGTERM)
    assert holder.proc.wait(timeout=30) == 0, holder.stderr()
    assert holder.expect("released") == "released paper:main token 1"

    listed = run_cli(tmp_path, "lock", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["leases"] == []
    # free for the next one, which gets the next token
    again = run_cli(tmp_path, "lock", "--hold", "0.1")
    assert again.returncode == 0, again.stderr
    assert "token 2" in again.stdout
