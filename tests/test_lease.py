"""The execution lease (invariant I1) in one process: LeaseStore, LeaseManager, HeldLease.

Time-dependent rules (expiry, heartbeat) run on an injected clock; only the waits of
``acquire(wait=...)`` and the heartbeat interval use real time, and no test asserts an upper
bound on how long anything took.

Every test runs on both backends: the SQLite file and a PostgreSQL database (``db_path`` is then
its URL), so the lease keeps I1 the same way on each.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from storage.db import Database
from storage.held_lease import LeaseManager
from storage.lease import (
    HOST,
    Acquired,
    Busy,
    LeaseHolder,
    LeaseStore,
    new_owner,
    parse_owner,
    pid_alive,
)
from tests.conftest import BACKENDS, backend_target
from trading.lease import LeaseBusy, LeaseLost

SCOPE = "paper:main"
T0 = 1_000_000.0  # a fake epoch; whole and half seconds stay exact in binary floating point


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def owner_on(host: str, pid: int, tag: str = "cafe0001") -> str:
    return f"{host}:{pid}:{tag}"


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll ``check`` until true; fail only after a generous timeout (a noisy CI box)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def expires_is(db: Database, value: float) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool((await row(db))["expires_at"] == value)

    return check


async def row(db: Database, scope: str = SCOPE) -> dict[str, Any]:
    async with db.read() as conn:
        cur = await conn.execute("SELECT * FROM lease WHERE scope = ?", (scope,))
        found = await cur.fetchone()
    assert found is not None
    return dict(found)


@pytest.fixture(params=BACKENDS)
def db_path(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    return backend_target(request, tmp_path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(db: Database, clock: FakeClock) -> LeaseStore:
    # every pid counts as alive unless a test says otherwise: only expiry frees a lease
    return LeaseStore(db, clock=clock, is_alive=lambda pid: True)


@pytest.fixture
async def second_db(db_path: Path) -> AsyncIterator[Database]:
    """Another connection on the same file, as another process would have."""
    other = await Database.open(db_path)
    try:
        yield other
    finally:
        await other.close()


# --- acquire / busy / release ----------------------------------------------------------------


async def test_acquire_then_busy_then_release(store: LeaseStore, clock: FakeClock) -> None:
    a, b = owner_on(HOST, 101), owner_on(HOST, 102)
    first = await store.try_acquire(SCOPE, a, "cycle", 30)
    assert isinstance(first, Acquired)
    assert first.took_over is None
    assert first.holder == LeaseHolder(SCOPE, a, "cycle", 1, T0, T0, T0 + 30)
    assert await store.holders() == [first.holder]

    clock.advance(5)
    refused = await store.try_acquire(SCOPE, b, "manual close", 30)
    assert isinstance(refused, Busy)
    assert refused.holder == first.holder
    assert refused.age == 5
    assert await store.holders() == [first.holder]  # a refusal changes nothing

    assert await store.release(SCOPE, a, 1) is True
    assert await store.holders() == []
    assert await store.release(SCOPE, a, 1) is False  # nothing left to release

    second = await store.try_acquire(SCOPE, b, "manual close", 30)
    assert isinstance(second, Acquired)
    assert second.took_over is None  # a released lease is simply free
    assert second.holder.owner == b
    assert second.holder.token == 2
    assert await store.events() == []  # plain acquisitions are not takeovers


async def test_release_needs_both_owner_and_token(store: LeaseStore) -> None:
    a = owner_on(HOST, 101)
    got = await store.try_acquire(SCOPE, a, "cycle", 30)
    assert isinstance(got, Acquired)
    assert await store.release(SCOPE, owner_on(HOST, 999), 1) is False
    assert await store.release(SCOPE, a, 2) is False
    assert [h.owner for h in await store.holders()] == [a]
    assert await store.release(SCOPE, a, 1) is True


async def test_scopes_are_independent(store: LeaseStore) -> None:
    a, b = owner_on(HOST, 101), owner_on(HOST, 102)
    assert isinstance(await store.try_acquire("paper:main", a, "cycle", 30), Acquired)
    other = await store.try_acquire("okx:main", b, "cycle", 30)
    assert isinstance(other, Acquired)
    assert other.holder.token == 1  # tokens count per scope
    assert [h.scope for h in await store.holders()] == ["okx:main", "paper:main"]


async def test_token_strictly_increases_and_survives_release_and_reopen(
    db: Database, db_path: Path, clock: FakeClock
) -> None:
    store = LeaseStore(db, clock=clock, is_alive=lambda pid: True)
    tokens = []
    for i in range(5):
        owner = owner_on(HOST, 200 + i)
        got = await store.try_acquire(SCOPE, owner, "cycle", 30)
        assert isinstance(got, Acquired)
        tokens.append(got.holder.token)
        assert await store.release(SCOPE, owner, got.holder.token)
        # the released row keeps its token: the next holder cannot be given an old one
        assert (await row(db))["token"] == got.holder.token
        assert (await row(db))["owner"] is None
    # a takeover increments it too
    expired = await store.try_acquire(SCOPE, owner_on(HOST, 300), "cycle", 30)
    assert isinstance(expired, Acquired)
    tokens.append(expired.holder.token)
    clock.advance(31)
    taken = await store.try_acquire(SCOPE, owner_on(HOST, 301), "cycle", 30)
    assert isinstance(taken, Acquired)
    assert taken.took_over is not None
    tokens.append(taken.holder.token)
    assert tokens == list(range(1, 8))

    # another connection (a restarted process) continues from the stored token
    reopened = await Database.open(db_path)
    try:
        store2 = LeaseStore(reopened, clock=clock, is_alive=lambda pid: True)
        assert await store2.release(SCOPE, owner_on(HOST, 301), 7)
        got = await store2.try_acquire(SCOPE, owner_on(HOST, 302), "cycle", 30)
        assert isinstance(got, Acquired)
        assert got.holder.token == 8
    finally:
        await reopened.close()


# --- refusals --------------------------------------------------------------------------------


async def test_refusal_is_recorded_with_holder_info(store: LeaseStore, clock: FakeClock) -> None:
    a, b = owner_on(HOST, 101), owner_on(HOST, 102)
    assert isinstance(await store.try_acquire(SCOPE, a, "scheduled cycle", 30), Acquired)
    clock.advance(1)
    assert isinstance(await store.try_acquire(SCOPE, b, "telegram /close", 30), Busy)
    [refusal] = await store.refusals()
    assert refusal.scope == SCOPE
    assert refusal.at == T0 + 1
    assert (refusal.owner, refusal.purpose) == (b, "telegram /close")
    assert (refusal.holder_owner, refusal.holder_purpose) == (a, "scheduled cycle")
    assert refusal.holder_token == 1

    # not recorded when asked not to; record_refusal() records one explicitly
    assert isinstance(await store.try_acquire(SCOPE, b, "quiet", 30, record_refusal=False), Busy)
    assert len(await store.refusals()) == 1
    [holder] = await store.holders()
    clock.advance(1)
    await store.record_refusal(SCOPE, b, "explicit", holder)
    latest = await store.refusals()
    assert [r.purpose for r in latest] == ["explicit", "telegram /close"]  # newest first
    assert await store.refusals(since=T0 + 1.5) == latest[:1]


async def test_acquire_with_wait_records_one_refusal_not_one_per_retry(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LeaseStore(db)
    holder = await LeaseManager(store, ttl=30, heartbeat=10).acquire(SCOPE, "long cycle")
    attempts: list[bool] = []
    real_try = store.try_acquire

    async def counting(*args: Any, **kwargs: Any) -> Acquired | Busy:
        attempts.append(kwargs["record_refusal"])
        return await real_try(*args, **kwargs)

    looks: list[int] = []
    real_peek = store.peek

    async def counting_looks(*args: Any, **kwargs: Any) -> Busy | None:
        looks.append(1)
        return await real_peek(*args, **kwargs)

    monkeypatch.setattr(store, "try_acquire", counting)
    monkeypatch.setattr(store, "peek", counting_looks)
    try:
        with pytest.raises(LeaseBusy):
            await LeaseManager(store, ttl=30, heartbeat=10).acquire(SCOPE, "waiter", wait=0.6)
    finally:
        await holder.release()
    # it did retry: a waiter looks read-only (peek) between its write attempts
    assert len(attempts) + len(looks) >= 3 and len(attempts) >= 2
    assert attempts[-1] is True
    assert not any(attempts[:-1])  # only the last attempt may record
    [refusal] = await store.refusals()
    assert refusal.purpose == "waiter"
    assert refusal.holder_owner == holder.owner


async def test_acquire_without_wait_records_the_refusal(db: Database) -> None:
    store = LeaseStore(db)
    manager = LeaseManager(store, ttl=30, heartbeat=10)
    async with manager.hold(SCOPE, "first"):
        with pytest.raises(LeaseBusy):
            await manager.acquire(SCOPE, "second")
    assert [r.purpose for r in await store.refusals()] == ["second"]


# --- acquire with a deadline -----------------------------------------------------------------


async def test_acquire_with_wait_gets_it_when_released_within_the_wait(db: Database) -> None:
    store = LeaseStore(db)
    manager = LeaseManager(store, ttl=30, heartbeat=10)
    first = await manager.acquire(SCOPE, "first")

    async def release_soon() -> None:
        await asyncio.sleep(0.3)
        await first.release()

    releaser = asyncio.create_task(release_soon())
    second = await manager.acquire(SCOPE, "second", wait=20)
    try:
        await releaser
        assert first.lost_reason is None  # it released, it was not taken over
        assert second.token == first.token + 1
        [holder] = await store.holders()
        assert (holder.owner, holder.purpose) == (second.owner, "second")
        assert await store.refusals() == []  # it got it: nothing was refused
        assert await store.events() == []
    finally:
        await second.release()


async def test_acquire_with_wait_raises_busy_naming_the_holder(db: Database) -> None:
    store = LeaseStore(db)
    manager = LeaseManager(store, ttl=30, heartbeat=10)
    async with manager.hold(SCOPE, "scheduled cycle btc-trend") as held:
        t0 = time.monotonic()
        with pytest.raises(LeaseBusy) as info:
            await manager.acquire(SCOPE, "telegram /close", wait=1.0)
        waited = time.monotonic() - t0
        assert held.owner in str(info.value)
        assert "scheduled cycle btc-trend" in str(info.value)
        assert f"token {held.token}" in str(info.value)
        assert info.value.scope == SCOPE
        # it waited (the last attempt comes at most one 0.5 s back-off step before the deadline)
        assert waited >= 0.5
        await held.ensure()  # the waiter did not disturb the holder
    assert await store.holders() == []


# --- takeover --------------------------------------------------------------------------------


async def test_expired_lease_is_taken_over(store: LeaseStore, clock: FakeClock) -> None:
    a, b = owner_on(HOST, 101), owner_on(HOST, 102)
    assert isinstance(await store.try_acquire(SCOPE, a, "crashed cycle", 10), Acquired)
    clock.advance(9.5)
    assert isinstance(await store.try_acquire(SCOPE, b, "next cycle", 10), Busy)
    clock.advance(0.5)  # exactly at expires_at: expired
    got = await store.try_acquire(SCOPE, b, "next cycle", 10)
    assert isinstance(got, Acquired)
    assert got.takeover_reason == "expired"
    assert got.took_over is not None
    assert (got.took_over.owner, got.took_over.token) == (a, 1)
    assert got.holder == LeaseHolder(SCOPE, b, "next cycle", 2, T0 + 10, T0 + 10, T0 + 20)
    [ev] = await store.events()
    assert ev["kind"] == "takeover"
    assert (ev["owner"], ev["purpose"], ev["token"], ev["at"]) == (b, "next cycle", 2, T0 + 10)
    assert a in ev["detail"] and "crashed cycle" in ev["detail"] and "expired" in ev["detail"]
    # the old holder can neither release nor renew what it no longer holds
    assert await store.release(SCOPE, a, 1) is False
    assert await store.renew(SCOPE, a, 1, 10) is None
    assert [h.owner for h in await store.holders()] == [b]


async def test_dead_pid_on_this_host_is_taken_over_at_once(db: Database, clock: FakeClock) -> None:
    asked: list[int] = []

    def is_alive(pid: int) -> bool:
        asked.append(pid)
        return pid != 4242

    store = LeaseStore(db, clock=clock, host=HOST, is_alive=is_alive)
    dead, alive = owner_on(HOST, 4242), owner_on(HOST, 4343)
    assert isinstance(await store.try_acquire(SCOPE, dead, "crashed", 300), Acquired)
    clock.advance(1)  # far from expiry
    got = await store.try_acquire(SCOPE, alive, "successor", 300)
    assert isinstance(got, Acquired)
    assert got.takeover_reason == "holder process dead"
    assert got.holder.token == 2
    assert asked == [4242]
    [ev] = await store.events()
    assert "holder process dead" in ev["detail"] and dead in ev["detail"]

    # a live pid on this host is not taken over before expiry
    assert isinstance(await store.try_acquire(SCOPE, dead, "again", 300), Busy)
    assert asked == [4242, 4343]


async def test_dead_pid_on_another_host_waits_for_expiry(db: Database, clock: FakeClock) -> None:
    asked: list[int] = []

    def is_alive(pid: int) -> bool:
        asked.append(pid)
        return False  # every pid is dead here; it must not matter for another host

    store = LeaseStore(db, clock=clock, host="this-host", is_alive=is_alive)
    remote = owner_on("other-host", 4242)
    assert isinstance(await store.try_acquire(SCOPE, remote, "remote cycle", 30), Acquired)
    clock.advance(29.5)
    busy = await store.try_acquire(SCOPE, owner_on("this-host", 1), "local", 30)
    assert isinstance(busy, Busy)
    assert busy.holder.owner == remote
    assert asked == []  # a pid of another machine means nothing here
    clock.advance(0.5)
    got = await store.try_acquire(SCOPE, owner_on("this-host", 1), "local", 30)
    assert isinstance(got, Acquired)
    assert got.takeover_reason == "expired"


async def test_unparsable_owner_waits_for_expiry(db: Database, clock: FakeClock) -> None:
    store = LeaseStore(db, clock=clock, is_alive=lambda pid: False)
    weird = f"{HOST}:not-a-pid:x"
    assert isinstance(await store.try_acquire(SCOPE, weird, "odd", 30), Acquired)
    assert isinstance(await store.try_acquire(SCOPE, owner_on(HOST, 1), "next", 30), Busy)


def test_owner_format_round_trips() -> None:
    owner = new_owner()
    assert parse_owner(owner) == (HOST, os.getpid())
    assert new_owner() != owner  # the random part tells two holders of one pid apart
    assert parse_owner("fe80::1:4242:abcd") == ("fe80::1", 4242)  # colons in the host
    assert parse_owner("host:x:abcd") == ("host", None)


# --- heartbeat, renew, fencing ---------------------------------------------------------------


async def test_renew_extends_expiry(store: LeaseStore, clock: FakeClock, db: Database) -> None:
    a = owner_on(HOST, 101)
    assert isinstance(await store.try_acquire(SCOPE, a, "cycle", 10), Acquired)
    clock.advance(7)
    assert await store.renew(SCOPE, a, 1, 10) == T0 + 17
    r = await row(db)
    assert (r["acquired_at"], r["heartbeat_at"], r["expires_at"]) == (T0, T0 + 7, T0 + 17)
    clock.advance(5)  # past the original expiry (T0 + 10), within the renewed one
    assert isinstance(await store.try_acquire(SCOPE, owner_on(HOST, 102), "x", 10), Busy)
    assert await store.is_current(SCOPE, a, 1)


async def test_renew_of_an_expired_lease_fails_even_if_nobody_took_it(
    store: LeaseStore, clock: FakeClock
) -> None:
    a = owner_on(HOST, 101)
    assert isinstance(await store.try_acquire(SCOPE, a, "cycle", 10), Acquired)
    clock.advance(10)
    assert await store.renew(SCOPE, a, 1, 10) is None
    assert not await store.is_current(SCOPE, a, 1)


async def test_heartbeat_extends_expires_at(db: Database, clock: FakeClock) -> None:
    store = LeaseStore(db, clock=clock, is_alive=lambda pid: True)
    held = await LeaseManager(store, ttl=10, heartbeat=0.02).acquire(SCOPE, "cycle")
    try:
        assert held.expires_at == T0 + 10
        clock.advance(6)
        await eventually(expires_is(db, T0 + 16))
        r = await row(db)
        assert r["heartbeat_at"] == T0 + 6
        assert r["acquired_at"] == T0
        assert r["token"] == held.token
        assert held.expires_at == T0 + 16
        clock.advance(6)  # past the first expiry: still held thanks to the heartbeat
        await eventually(expires_is(db, T0 + 22))
        await held.ensure()
        assert held.lost_reason is None
    finally:
        await held.release()
    assert await store.holders() == []


async def test_renew_after_takeover_returns_none_and_ensure_raises(
    db: Database, clock: FakeClock
) -> None:
    store = LeaseStore(db, clock=clock, is_alive=lambda pid: True)
    # a heartbeat too slow to run during the test: the fencing check alone must notice
    held = await LeaseManager(store, ttl=10, heartbeat=3600).acquire(SCOPE, "paused cycle")
    await held.ensure()
    clock.advance(10)
    other = owner_on(HOST, 777)
    taken = await store.try_acquire(SCOPE, other, "successor", 10)
    assert isinstance(taken, Acquired)
    assert taken.holder.token == held.token + 1

    assert await store.renew(SCOPE, held.owner, held.token, 10) is None
    assert not await store.is_current(SCOPE, held.owner, held.token)
    with pytest.raises(LeaseLost, match="no longer current"):
        await held.ensure()
    with pytest.raises(LeaseLost):  # and it stays lost
        await held.ensure()
    await held.release()  # must not release the successor's lease
    [holder] = await store.holders()
    assert (holder.owner, holder.token, holder.expires_at) == (other, held.token + 1, T0 + 20)


async def test_heartbeat_notices_takeover_and_does_not_steal_back(
    db: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LeaseStore(db, clock=clock, is_alive=lambda pid: True)
    held = await LeaseManager(store, ttl=10, heartbeat=0.02).acquire(SCOPE, "paused cycle")
    renews: list[float | None] = []
    real_renew = store.renew

    async def spy(*args: Any) -> float | None:
        result = await real_renew(*args)
        renews.append(result)
        return result

    monkeypatch.setattr(store, "renew", spy)  # the heartbeat's renews go through it
    try:
        clock.advance(10)
        other = owner_on(HOST, 777)
        assert isinstance(await store.try_acquire(SCOPE, other, "successor", 10), Acquired)

        async def lost() -> bool:
            return held.lost_reason is not None

        await eventually(lost)
        assert held.lost_reason == "heartbeat found the lease expired or taken over"
        assert renews and renews[-1] is None
        count = len(renews)
        await asyncio.sleep(0.2)  # ten heartbeat intervals: the heartbeat has stopped
        assert len(renews) == count
        with pytest.raises(LeaseLost, match="taken over"):
            await held.ensure()
        [holder] = await store.holders()
        assert (holder.owner, holder.expires_at) == (other, T0 + 20)
    finally:
        await held.release()
    assert [h.owner for h in await store.holders()] == [other]


async def test_ensure_after_release_raises(db: Database) -> None:
    manager = LeaseManager(LeaseStore(db), ttl=30, heartbeat=10)
    held = await manager.acquire(SCOPE, "cycle")
    await held.ensure()
    await held.release()
    await held.release()  # idempotent
    with pytest.raises(LeaseLost, match="released"):
        await held.ensure()


async def test_hold_releases_on_error(db: Database) -> None:
    store = LeaseStore(db)
    manager = LeaseManager(store, ttl=30, heartbeat=10)
    with pytest.raises(RuntimeError):
        async with manager.hold(SCOPE, "failing cycle"):
            assert len(await store.holders()) == 1
            raise RuntimeError("boom")
    assert await store.holders() == []


async def test_fencing_check_inside_another_write_transaction(
    db: Database, clock: FakeClock
) -> None:
    store = LeaseStore(db, clock=clock, is_alive=lambda pid: True)
    a = owner_on(HOST, 101)
    assert isinstance(await store.try_acquire(SCOPE, a, "cycle", 10), Acquired)
    async with db.write() as conn:
        assert await LeaseStore.is_current_in(conn, SCOPE, 1, clock())
        assert not await LeaseStore.is_current_in(conn, SCOPE, 2, clock())
        assert not await LeaseStore.is_current_in(conn, SCOPE, 1, clock() + 10)
    await store.release(SCOPE, a, 1)
    async with db.write() as conn:
        assert not await LeaseStore.is_current_in(conn, SCOPE, 1, clock())


# --- cancellation while SQLite's write lock is contended -------------------------------------


async def hold_write_lock(other: Database) -> tuple[asyncio.Event, asyncio.Task[None]]:
    """Take SQLite's write lock on another connection until the returned event is set."""
    locked, done = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with other.write():
            locked.set()
            await done.wait()

    task = asyncio.create_task(holder())
    await locked.wait()
    return done, task


async def test_release_while_the_heartbeat_waits_for_the_write_lock(
    db: Database, second_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: release() used to cancel a heartbeat blocked in BEGIN IMMEDIATE; the
    statement still ran on aiosqlite's thread, left the connection inside a transaction, and
    the release then failed ("cannot start a transaction within a transaction") while this
    process kept SQLite's write lock for good."""
    store = LeaseStore(db)
    held = await LeaseManager(store, ttl=30, heartbeat=0.02).acquire(SCOPE, "cycle")
    renewing = asyncio.Event()
    real_renew = store.renew

    async def spy(*args: Any) -> float | None:
        renewing.set()
        return await real_renew(*args)

    monkeypatch.setattr(store, "renew", spy)
    done, locker = await hold_write_lock(second_db)
    try:
        await asyncio.wait_for(renewing.wait(), 10)
        await asyncio.sleep(0.05)  # the renew now waits in BEGIN IMMEDIATE
        releasing = asyncio.create_task(held.release())
        await asyncio.sleep(0.1)
    finally:
        done.set()
        await locker
    await asyncio.wait_for(releasing, 15)
    assert await store.holders() == []
    # both connections can write again
    other = await LeaseStore(second_db).try_acquire(SCOPE, new_owner(), "next", 30)
    assert isinstance(other, Acquired)
    assert other.holder.token == held.token + 1


async def test_cancelled_acquire_leaves_the_connection_usable(
    db: Database, second_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LeaseStore(db)
    trying = asyncio.Event()
    real_try = store.try_acquire

    async def spy(*args: Any, **kwargs: Any) -> Acquired | Busy:
        trying.set()
        return await real_try(*args, **kwargs)

    monkeypatch.setattr(store, "try_acquire", spy)
    done, locker = await hold_write_lock(second_db)
    try:
        acquiring = asyncio.create_task(LeaseManager(store).acquire(SCOPE, "cycle", wait=5))
        await asyncio.wait_for(trying.wait(), 10)
        await asyncio.sleep(0.05)  # BEGIN IMMEDIATE is waiting for second_db's lock
        acquiring.cancel()  # e.g. a cycle's hard timeout
        await asyncio.sleep(0.05)
        # the cancelled BEGIN still completes on aiosqlite's thread once the lock is free;
        # Database must roll it back instead of leaving the connection inside a transaction
        done.set()
        await locker
        with pytest.raises(asyncio.CancelledError):
            await acquiring
    finally:
        done.set()
        if not locker.done():
            await locker
    got = await real_try(SCOPE, new_owner(), "next", 30)
    assert isinstance(got, Acquired)
    await store.release(SCOPE, got.holder.owner, got.holder.token)


# --- pid_alive -------------------------------------------------------------------------------


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def test_pid_alive_own_pid() -> None:
    assert pid_alive(os.getpid()) is True


@pytest.mark.slow
def test_pid_alive_running_and_stopped_child() -> None:
    child = sleeper()
    try:
        assert pid_alive(child.pid) is True
        os.kill(child.pid, signal.SIGSTOP)  # paused is not dead: it may still write later
        os.waitid(os.P_PID, child.pid, os.WSTOPPED | os.WNOWAIT)
        assert pid_alive(child.pid) is True
    finally:
        child.kill()
        child.wait()


@pytest.mark.slow
def test_pid_alive_zombie_child() -> None:
    child = sleeper()
    try:
        child.kill()
        # wait for the exit but do not reap: the child is a zombie that still answers kill(0)
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        os.kill(child.pid, 0)  # (proves it is still there)
        assert pid_alive(child.pid) is False
    finally:
        child.wait()


@pytest.mark.slow
def test_pid_alive_reaped_child() -> None:
    child = sleeper()
    child.kill()
    child.wait()
    assert pid_alive(child.pid) is False
