"""The crash and race rig: a child agent process (a real OS process running Warden) that can be
killed at a named crash point, its config, and the invariant checks run on the database it
leaves; shared by the crash and race suites and the reliability and soak benchmarks."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from storage.lease import parse_owner
from tests.conftest import child_env, warden_cmd
from trading.crashpoints import ENV as CRASH_ENV

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
SIZE = 0.001  # one entry of the crash scenarios and of the BTC strategy (fixed sizing)
ETH_SIZE = 0.05
STOP = 66000.0  # 4.4% under the paper BTC price of 69,060
VERIFY_ATTEMPTS = 2
# one entry's size per symbol: a position is never larger (no double-open)
ENTRY_SIZES = {BTC: SIZE, ETH: ETH_SIZE}
WAIT = 90.0  # generous: a noisy 2-core CI machine


def write_config(
    root: Path,
    name: str = "warden.toml",
    *,
    faults: dict[str, float | int] | None = None,
    replay_seconds: float | None = None,
    strategies: tuple[str, ...] = (),
    watchdog: float = 1.0,
    verify_delay: float = 0.2,
) -> Path:
    """A paper account on ``root/warden.db``. ``strategies``: "btc" (momentum, BTC) and/or
    "eth" (bollinger, ETH), both with fixed sizes (``ENTRY_SIZES``) on a replay."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [
        f'[storage]\npath = "{root / "warden.db"}"',
        '[logging]\nlevel = "INFO"',
        # a crashed holder is taken over because its pid is dead, never because it expired
        "[lease]\nttl_seconds = 120.0\nheartbeat_seconds = 5.0\nwait_seconds = 30.0",
        "[risk]\nmax_open_positions = 4",
        f"[guardian]\nwatchdog_seconds = {watchdog}\nverify_delay_seconds = {verify_delay}\n"
        f"verify_attempts = {VERIFY_ATTEMPTS}",
        "[scheduler]\ndaily_summary_hour = 23\naudit_hour = 23",
        '[exchanges.paper]\nkind = "paper"',
    ]
    if faults:
        lines.append(
            "[exchanges.paper.faults]\n" + "\n".join(f"{k} = {v}" for k, v in faults.items())
        )
    if replay_seconds is not None:
        lines.append(
            f'[exchanges.paper.replay]\ndata = "bundled"\nseconds_per_candle = {replay_seconds}'
        )
    if "btc" in strategies:
        lines.append(
            '[[strategies]]\nname = "btc_momentum"\nkind = "momentum_breakout"\n'
            f'exchange = "paper"\nsymbols = ["{BTC}"]\ntimeframe = "30m"\n'
            f'[strategies.risk]\nsizing = "fixed"\nsize = {SIZE}'
        )
    if "eth" in strategies:
        lines.append(
            '[[strategies]]\nname = "eth_bollinger"\nkind = "bollinger"\n'
            f'exchange = "paper"\nsymbols = ["{ETH}"]\ntimeframe = "30m"\n'
            '[strategies.params]\nmode = "mean_reversion"\n'
            f'[strategies.risk]\nsizing = "fixed"\nsize = {ETH_SIZE}'
        )
    path = root / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cli(
    config: Path, *args: str, env: dict[str, str] | None = None, timeout: float = WAIT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        warden_cmd("--config", str(config), *args),
        cwd=config.parent,
        env=child_env(**(env or {})),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cli_json(config: Path, *args: str) -> Any:
    res = cli(config, *args, "--json")
    assert res.returncode in (0, 1), (args, res.returncode, res.stderr[-2000:])
    return json.loads(res.stdout)


class Agent:
    """A `warden run` child; its stdout and stderr (the log) go to one file that is polled."""

    def __init__(self, config: Path, name: str, env: dict[str, str] | None = None) -> None:
        self.log_path = config.parent / f"{name}.log"
        self._log: IO[bytes] = open(self.log_path, "wb")  # noqa: SIM115 - closed in finish()
        self.proc = subprocess.Popen(
            warden_cmd("--config", str(config), "run"),
            cwd=config.parent,
            env=child_env(**(env or {})),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.proc.pid

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"warden run (pid {self.pid}, rc {self.proc.poll()}) never logged "
                    f"{needle!r}:\n{self.text()[-4000:]}"
                )
            time.sleep(0.05)

    def sigkill(self) -> int:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        return self.finish()

    def terminate(self, timeout: float = WAIT) -> int:
        """SIGTERM: the clean stop (running cycle finishes, leases released)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        return self.finish(timeout)

    def finish(self, timeout: float = WAIT) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            raise AssertionError(
                f"warden run (pid {self.pid}) did not stop within {timeout}s"
            ) from None
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        self._log.close()


@contextlib.contextmanager
def agents() -> Iterator[list[Agent]]:
    started: list[Agent] = []
    try:
        yield started
    finally:
        for a in started:
            a.kill()


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()


@dataclass
class State:
    positions: list[dict[str, Any]]  # `warden status --json`
    leases: list[dict[str, Any]]  # `warden lock --json`
    intents: dict[int, tuple[str, str]]  # id -> (kind, status)
    live_stops: dict[str, int]  # symbol -> live stops on the exchange
    takeovers: list[str]  # lease_event details
    entry_orders: int  # entry orders that reached the exchange


def read_state(config: Path) -> State:
    db = config.parent / "warden.db"
    status = cli_json(config, "status")
    lock = cli_json(config, "lock")
    return State(
        positions=status["positions"],
        leases=lock["leases"],
        intents={i: (k, s) for i, k, s in query(db, "SELECT id, kind, status FROM intent")},
        live_stops=dict(
            query(db, "SELECT symbol, COUNT(*) FROM paper_stop WHERE state = 'live' GROUP BY 1")
        ),
        takeovers=[
            d for (d,) in query(db, "SELECT detail FROM lease_event WHERE kind = 'takeover'")
        ],
        entry_orders=query(db, "SELECT COUNT(*) FROM paper_order WHERE reduce_only = 0")[0][0],
    )


def problems(
    s: State,
    *,
    known_intents: AbstractSet[int] = frozenset(),
    dead_owner: str | None = None,
    dead_pids: AbstractSet[int] = frozenset(),
) -> list[str]:
    """Every broken invariant, in words; [] when all hold."""
    out: list[str] = []
    held = {p["symbol"] for p in s.positions}
    for p in s.positions:
        what = f"{p['side']} {p['size']} {p['symbol']}"
        if p["size"] > ENTRY_SIZES[p["symbol"]] * (1 + 1e-9):
            out.append(f"{what}: larger than one entry ({ENTRY_SIZES[p['symbol']]})")
        stop = p["stop"]
        if stop is None:
            out.append(f"{what}: no live stop")
        elif stop["state"] != "live" or stop["verified_at"] is None:
            out.append(f"{what}: stop {stop} not live and verified")
        if s.live_stops.get(p["symbol"], 0) != 1:
            out.append(f"{what}: {s.live_stops.get(p['symbol'], 0)} live stops, not one")
    out += [f"orphan live stop(s) on {sym}" for sym in s.live_stops if sym not in held]
    out += [
        f"intent {i} ({kind}) is {status}"
        for i, (kind, status) in s.intents.items()
        if status in ("pending", "unknown")
    ]
    out += [f"intent {i} lost" for i in sorted(known_intents - set(s.intents))]
    for lease in s.leases:
        if lease["owner"] == dead_owner or parse_owner(lease["owner"])[1] in dead_pids:
            out.append(f"lease still held by the dead {lease['owner']}")
    if dead_owner is not None and not any(dead_owner in d for d in s.takeovers):
        out.append(f"no takeover of {dead_owner} recorded")
    return out


def wait_for_invariants(config: Path, timeout: float = WAIT, **expect: Any) -> tuple[State, float]:
    """Poll until every invariant holds; returns the state and the seconds it took."""
    t0 = time.monotonic()
    while True:
        state = read_state(config)
        found = problems(state, **expect)
        if not found:
            return state, time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"after {timeout}s still broken: {found}")
        time.sleep(0.2)


@dataclass(frozen=True)
class CrashCase:
    point: str  # WARDEN_CRASH_AT
    close: bool = False  # the crashing command is `warden close` of a protected position
    faults: dict[str, float | int] = field(default_factory=dict)
    position: bool = True  # the intended position exists after the restart
    entry_orders: int = 1  # entry orders that reached the exchange (never resent)
    statuses: tuple[str, ...] = ("filled",)  # the intents' final statuses, in order
    # (kind, attribution) of the incidents on record afterwards
    incidents: tuple[tuple[str, str], ...] = ()
    # reasons of the exits on record afterwards; one ending in "*" is a prefix (the rest names
    # a client id, which differs from run to run)
    exits: tuple[str, ...] = ()


EMERGENCY_EXIT = (
    "emergency(no live stop after attempt 1: acknowledged, exchange shows failed "
    "(failCode 1000); attempt 2: acknowledged, exchange shows failed (failCode 1000))"
)

CASES: dict[str, CrashCase] = {
    # nothing was sent: after the restart the exchange does not know the client id
    "after_intent_stored": CrashCase(
        "after_intent_stored", position=False, entry_orders=0, statuses=("not_found",)
    ),
    # the position had no stop until the restart: Warden's own fault, not "external"
    "after_entry_sent": CrashCase(
        "after_entry_sent", incidents=(("unprotected_position", "execution"),)
    ),
    "after_fill_recorded": CrashCase(
        "after_fill_recorded", incidents=(("unprotected_position", "execution"),)
    ),
    "after_stop_sent": CrashCase("after_stop_sent"),
    "during_verification": CrashCase("during_verification"),
    # every stop fails silently: the entry is emergency-closed, and dies right after the close
    "during_emergency_close": CrashCase(
        "during_emergency_close",
        faults={"stop_silent_fail": VERIFY_ATTEMPTS},
        position=False,
        statuses=("filled", "filled"),
        # recorded at the restart: the operator still hears of the emergency close
        incidents=(("emergency_close", "execution"),),
        exits=(EMERGENCY_EXIT,),
    ),
    # the emergency-close path, every point of it: the alert of the emergency close must reach
    # the outbox exactly once, whatever the moment of the crash (see EMERGENCY_CASES)
    # its order stored, nothing sent: the restart's guardian finds the position unprotected
    # (its stops fail too) and closes it itself
    "emergency_after_intent_stored": CrashCase(
        "after_intent_stored:2",
        faults={"stop_silent_fail": 2 * VERIFY_ATTEMPTS},
        position=False,
        statuses=("filled", "not_found", "filled"),
        incidents=(("unprotected_position", "execution"), ("emergency_close", "execution")),
        exits=("emergency(stop wd*",),
    ),
    # the close filled, its intent not settled: resolved by client id, then recorded at start-up
    "after_emergency_close_sent": CrashCase(
        "after_emergency_close_sent",
        faults={"stop_silent_fail": VERIFY_ATTEMPTS},
        position=False,
        statuses=("filled", "filled"),
        incidents=(("emergency_close", "execution"),),
        exits=(EMERGENCY_EXIT,),
    ),
    # the exit, incident and alert written (one transaction) just before the death: nothing
    # is left for the restart to record, and nothing is recorded twice
    "after_emergency_record": CrashCase(
        "after_emergency_record",
        faults={"stop_silent_fail": VERIFY_ATTEMPTS},
        position=False,
        statuses=("filled", "filled"),
        incidents=(("emergency_close", "execution"),),
        exits=(EMERGENCY_EXIT,),
    ),
    # `warden close`: its stop canceled, the close order stored, nothing sent: the position
    # remains, and the restart gives it a verified stop again
    "close_after_intent_stored": CrashCase(
        "after_intent_stored",
        close=True,
        statuses=("filled", "not_found"),
        incidents=(("unprotected_position", "execution"),),
    ),
    # the close filled, its exit was never recorded: recorded at the restart
    "close_after_close_sent": CrashCase(
        "after_close_sent",
        close=True,
        position=False,
        statuses=("filled", "filled"),
        exits=("manual",),
    ),
}


@dataclass
class CrashResult:
    point: str
    recovered_seconds: float  # daemon start -> every invariant held
    state: State


def crash_and_recover(root: Path, point: str) -> CrashResult:
    """`warden open` (or close) SIGKILLed at the case's crash point, then `warden run`
    (guarding only): the invariants hold after it reconciles; SIGTERM then stops it cleanly.
    Raises AssertionError if not. ``point``: a key of ``CASES``."""
    case = CASES[point]
    config = write_config(root, faults=case.faults)
    open_args = ["open", BTC, "long", "--size", str(SIZE), "--stop", str(STOP), "--yes"]
    crash = {CRASH_ENV: case.point}
    if case.close:
        opened = cli(config, *open_args, "--json")
        assert opened.returncode == 0, opened.stderr[-3000:]
        crashed = cli(config, "close", BTC, "--yes", "--json", env=crash)
    else:
        crashed = cli(config, *open_args, "--json", env=crash)
    assert crashed.returncode == -signal.SIGKILL, (crashed.returncode, crashed.stderr[-3000:])
    before = read_state(config)
    # the dead process still holds the lease: nobody released it
    [dead] = before.leases
    assert dead["purpose"] == (f"cli close {BTC}" if case.close else "cli open"), dead
    known = set(before.intents)
    assert known, "the intent stored before the crash"
    with agents() as started:
        t0 = time.monotonic()
        agent = Agent(config, f"run-{point}")
        started.append(agent)
        agent.wait_for("reconcile.done")
        state, _ = wait_for_invariants(config, known_intents=known, dead_owner=dead["owner"])
        recovered = time.monotonic() - t0
        assert agent.terminate() == 0, agent.text()[-3000:]
    # judged once more with the daemon gone: its stop released the lease, nothing moved
    final = read_state(config)
    assert problems(final, known_intents=known) == []
    assert final.leases == []
    positions = [(p["symbol"], p["side"], p["size"]) for p in final.positions]
    assert positions == ([(BTC, "long", SIZE)] if case.position else []), positions
    if case.position:
        [p] = final.positions
        assert p["stop"]["trigger_price"] == STOP  # the entry's own stop level
    assert final.entry_orders == case.entry_orders  # never sent again
    statuses = tuple(status for _, (_, status) in sorted(final.intents.items()))
    assert statuses == case.statuses, final.intents
    db = root / "warden.db"
    incidents = query(db, "SELECT kind, attribution FROM incident ORDER BY id")
    assert tuple(incidents) == case.incidents, incidents
    exits = [r for (r,) in query(db, "SELECT reason FROM exit ORDER BY id")]
    assert len(exits) == len(case.exits), exits
    for got, want in zip(exits, case.exits, strict=True):
        assert got.startswith(want[:-1]) if want.endswith("*") else got == want, exits
    # every incident's critical alert was delivered (the outbox is empty)
    [(undelivered,)] = query(db, "SELECT COUNT(*) FROM alert_outbox WHERE delivered_at IS NULL")
    assert undelivered == 0
    return CrashResult(point, recovered, state)


class Sampler:
    """Reads the paper exchange's positions every few milliseconds in a thread: the largest
    size ever seen per symbol (a double-open shows up, however briefly it lasted)."""

    def __init__(self, db: Path, interval: float = 0.02) -> None:
        self.db = db
        self.interval = interval
        self.max_size: dict[str, float] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(sqlite3.Error):
                for sym, size in query(self.db, "SELECT symbol, size FROM paper_position"):
                    self.max_size[sym] = max(self.max_size.get(sym, 0.0), size)
                self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def too_large(self) -> dict[str, float]:
        return {s: v for s, v in self.max_size.items() if v > ENTRY_SIZES[s] * (1 + 1e-9)}


@dataclass
class KillReport:
    kills: int = 0
    survived: int = 0  # restarts after which every invariant held
    takeovers: int = 0  # kills while the daemon held the lease, taken over at the restart
    samples: int = 0
    entries: int = 0  # entry orders over the whole run


def replay_config(root: Path, seed: int) -> Path:
    return write_config(
        root,
        # every exchange call takes 15 ms, as over a network: a cycle then holds the lease for
        # most of the run, so kills land mid-cycle (between fills, stops, read-backs) often
        faults={"seed": seed, "stop_silent_fail_rate": 0.3, "latency_ms": 15},
        replay_seconds=0.15,
        strategies=("btc", "eth"),
        verify_delay=0.1,
    )


def pause(config: Path, on: bool) -> None:
    res = cli(config, "pause" if on else "resume")
    assert res.returncode == 0, res.stderr[-2000:]


def random_kills(root: Path, kills: int, seed: int, report: KillReport | None = None) -> KillReport:
    """`warden run` on a fast replay, SIGKILLed ``kills`` times at seeded random moments and
    restarted each time, then stopped cleanly. After every restart (entries paused while it is
    judged) the invariants must hold; raises AssertionError when one does not (``report``, if
    given, holds the counts up to then)."""
    config = replay_config(root, seed)
    db = root / "warden.db"
    rng = random.Random(seed)
    report = report if report is not None else KillReport()
    dead_owner: str | None = None
    dead_pids: set[int] = set()
    with agents() as started, Sampler(db) as sampler:
        for run in range(kills + 1):
            agent = Agent(config, f"run-{run}")
            started.append(agent)
            agent.wait_for("reconcile.done")
            # judged with entries paused (exits and stops go on): an entry in flight finishes
            pause(config, True)
            _, _ = wait_for_invariants(config, dead_owner=dead_owner, dead_pids=dead_pids)
            pause(config, False)
            if run:
                report.survived += 1
            time.sleep(rng.uniform(0.3, 3.0))  # trading: entries, exits, silent stops
            if run == kills:
                assert agent.terminate() == 0, agent.text()[-3000:]
                break
            assert agent.sigkill() == -signal.SIGKILL
            report.kills += 1
            dead_pids.add(agent.pid)
            holders = cli_json(config, "lock")["leases"]
            mine = [h for h in holders if parse_owner(h["owner"])[1] == agent.pid]
            dead_owner = mine[0]["owner"] if mine else None
            report.takeovers += bool(mine)
        final = read_state(config)
        report.samples = sampler.samples
        too_large = sampler.too_large()
    assert problems(final, dead_pids=dead_pids) == []
    assert final.leases == []
    assert too_large == {}, f"a position larger than one entry: {too_large}"
    report.entries = final.entry_orders
    return report
