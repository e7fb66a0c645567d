"""The audit (`warden audit`): every finding kind produced for real on the paper exchange.

Warden acts through the real executor, journal and lease; "someone else" (a second bot's entry,
a stop canceled by hand) acts straight on the paper exchange, as another client of the account.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bot.audit_run import failing, lease_findings
from bot.summary import audit_alerts
from storage.db import Database
from storage.lease import HOST, Acquired, Busy, LeaseStore, new_owner
from tests.conftest import child_env, warden_cmd
from tests.rig_executor import BTC, BTC_STOP, BUY, ETH, LONG, SCOPE, SELL, SHORT, Rig, build_rig
from trading.audit import (
    Finding,
    Kind,
    Level,
    _stop_findings,
    audit_exchange,
    expected_sizes,
    repaired_at,
)
from trading.journal import IntentKind, IntentStatus, Severity
from trading.models import Market, Position, StopOrder, StopState

BTC_SIZE = 0.00095  # the post-mortem's intended size
ETH_SIZE = 0.3
ETH_STOP = 1983.41


@pytest.fixture
def rig(db: Database) -> Rig:
    return build_rig(db)


async def audit(rig: Rig, since: float = 0.0) -> list[Finding]:
    return await audit_exchange("paper", rig.exchange, rig.journal, SCOPE, since)


def kinds(findings: list[Finding]) -> list[str]:
    return sorted(f.kind.value for f in findings)


async def close(rig: Rig, symbol: str) -> None:
    async with rig.lease("cli close") as lease:
        [res] = await rig.executor.close(lease, symbol, "manual", "cli close")
    assert res.outcome.value == "closed", res.detail


async def test_a_clean_account_reports_nothing(rig: Rig, db: Database) -> None:
    assert (await rig.open(BTC, LONG, BTC_SIZE, BTC_STOP)).outcome.value == "protected"
    await close(rig, BTC)
    assert (await rig.open(BTC, LONG, BTC_SIZE, BTC_STOP)).outcome.value == "protected"
    assert (await rig.open(ETH, SHORT, ETH_SIZE, ETH_STOP)).outcome.value == "protected"

    assert await audit(rig) == []
    assert await lease_findings(db, 0.0) == []
    assert audit_alerts([]) == [(Severity.INFO, "audit: clean", "audit:clean")]


async def test_size_mismatch_from_an_entry_outside_warden(rig: Rig) -> None:
    """The post-mortem's double-open: 0.0019 on the exchange, 0.00095 in Warden's books."""
    await rig.open(BTC, LONG, BTC_SIZE, BTC_STOP)
    await rig.paper.place_market_order(BTC, BUY, BTC_SIZE, "manualrun1")

    found = await audit(rig)

    assert kinds(found) == ["size_mismatch", "stop_size_mismatch"]
    by_kind = {f.kind: f for f in found}
    mismatch = by_kind[Kind.SIZE_MISMATCH]
    assert (mismatch.severity, mismatch.exchange, mismatch.symbol) == (Level.CRITICAL, "paper", BTC)
    assert "exchange long 0.0019" in mismatch.detail
    assert "add up to 0.00095 (extra 0.00095)" in mismatch.detail
    assert "covers 0.00095, position is 0.0019" in by_kind[Kind.STOP_SIZE_MISMATCH].detail


async def test_unprotected_position_when_its_stop_is_canceled_outside_warden(rig: Rig) -> None:
    await rig.open(BTC, LONG, BTC_SIZE, BTC_STOP)
    [stop] = await rig.paper.open_stops(BTC)
    await rig.paper.cancel_stop(BTC, stop.id)

    [finding] = await audit(rig)

    assert (finding.kind, finding.severity, finding.symbol) == (
        Kind.UNPROTECTED_POSITION,
        Level.CRITICAL,
        BTC,
    )
    assert "has no live stop" in finding.detail


async def test_stop_wrong_side_placed_on_the_exchange(rig: Rig) -> None:
    """A buy stop above the market is a valid order on its own, and useless to a long."""
    await rig.open(BTC, LONG, BTC_SIZE, BTC_STOP)
    await rig.paper.place_stop(BTC, BUY, BTC_SIZE, 70_000.0, "wdx1s97")

    [finding] = await audit(rig)
    assert (finding.kind, finding.severity) == (Kind.STOP_WRONG_SIDE, Level.CRITICAL)
    assert "buy stop" in finding.detail and "cannot close a long" in finding.detail

    # the right one canceled too: wrong side AND unprotected
    [right] = [s for s in await rig.paper.open_stops(BTC) if s.side is SELL]
    await rig.paper.cancel_stop(BTC, right.id)
    assert kinds(await audit(rig)) == ["stop_wrong_side", "unprotected_position"]


async def test_orphan_stop_without_a_position(rig: Rig) -> None:
    await rig.paper.place_stop(ETH, SELL, 0.01, 1900.0, "wdx1s110")

    [finding] = await audit(rig)

    assert (finding.kind, finding.severity, finding.symbol) == (
        Kind.ORPHAN_STOP,
        Level.WARNING,
        ETH,
    )
    assert "no position" in finding.detail


async def test_every_historical_failed_stop_placement_is_listed(rig: Rig) -> None:
    """The post-mortem's 4 of 4: four trades, each first stop acknowledged then failed, and
    each caught and re-placed live: listed as repaired history, none needs action."""
    for _ in range(4):
        await rig.paper.set_faults(stop_silent_fail=1)
        res = await rig.open(ETH, SHORT, ETH_SIZE, ETH_STOP)
        assert (res.outcome.value, res.stop_attempts) == ("protected", 2)
        await close(rig, ETH)
    after = time.time()

    found = await audit(rig)

    assert kinds(found) == ["failed_stop_placement"] * 4
    assert all(f.severity is Level.INFO and f.symbol == ETH for f in found)
    assert failing(found) == []
    assert all("Warden's stop" in f.detail and "failCode 1000" in f.detail for f in found)
    for f in found:
        assert f.repair is not None and f.repair.repaired_at is not None
        assert f.repair.unprotected_seconds is not None
        assert f.repair.repaired_at >= f.repair.failed_at
        assert "repaired at" in f.detail and "s unprotected" in f.detail
    failed = {s.client_id for s in await rig.paper.stop_history(ETH) if s.state.value == "failed"}
    assert len(failed) == 4
    assert all(any(cid in f.detail for f in found) for cid in failed if cid)
    assert await audit(rig, since=after) == []  # the period filter of --since-days


async def test_unknown_position_opened_outside_warden(rig: Rig) -> None:
    await rig.paper.place_market_order(ETH, SELL, 0.1, "otherbot1")

    found = await audit(rig)

    assert kinds(found) == ["unknown_position", "unprotected_position"]
    [unknown] = [f for f in found if f.kind is Kind.UNKNOWN_POSITION]
    assert unknown.severity is Level.WARNING and "not opened by Warden" in unknown.detail


async def test_unresolved_orders_left_pending_or_unknown(rig: Rig) -> None:
    async with rig.lease("cycle crashed") as lease:
        pending = await rig.journal.create_intent(
            lease, IntentKind.ENTRY, BTC, BUY, 0.001, BTC_STOP, "cycle btc_momentum"
        )
        unknown = await rig.journal.create_intent(
            lease, IntentKind.CLOSE, ETH, BUY, 0.1, None, "cli close"
        )
    await rig.journal.finish_intent(unknown.id, IntentStatus.UNKNOWN, error="timeout")

    found = await audit(rig)

    assert kinds(found) == ["unresolved_order"] * 2
    assert all(f.severity is Level.CRITICAL for f in found)
    details = " ".join(f.detail for f in found)
    assert pending.client_id in details and unknown.client_id in details


@pytest.mark.slow
async def test_stale_leases_and_refusals(db: Database) -> None:
    store = LeaseStore(db)
    await store.try_acquire("paper:main", new_owner(), "cycle that crashed", ttl=0.01)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    await store.try_acquire("okx:main", f"{HOST}:{child.pid}:deadbeef", "watchdog", ttl=300)
    await store.try_acquire("hl:main", new_owner(), "scheduled cycle", ttl=300)
    busy = await store.try_acquire("hl:main", new_owner(), "manual run", ttl=300)
    assert isinstance(busy, Busy)
    await asyncio.sleep(0.05)

    found = await lease_findings(db, since=0.0)

    assert kinds(found) == ["lease_refusal", "stale_lease", "stale_lease"]
    stale = {f.exchange: f for f in found if f.kind is Kind.STALE_LEASE}
    assert "expired" in stale["paper"].detail and "cycle that crashed" in stale["paper"].detail
    assert "holder process is dead" in stale["okx"].detail
    [refusal] = [f for f in found if f.kind is Kind.LEASE_REFUSAL]
    assert refusal.severity is Level.INFO and refusal.exchange == "hl"
    assert "'manual run'" in refusal.detail and "'scheduled cycle'" in refusal.detail
    # neither needs the owner: the next acquisition takes a stale lease over, and a refusal
    # is the lease doing its job
    assert all(f.severity is Level.INFO for f in found) and failing(found) == []
    # the scheduled audit: one line for the informational ones
    alerts = audit_alerts(found)
    assert [(sev, key) for sev, _, key in alerts] == [(Severity.INFO, "audit:info")]
    assert "1 lease_refusal" in alerts[-1][1] and "2 stale_lease" in alerts[-1][1]


async def test_lease_refusals_are_one_summary_line_per_account_with_a_count(
    db: Database,
) -> None:
    store = LeaseStore(db)
    held = await store.try_acquire("paper:main", new_owner(), "scheduled cycle", ttl=300)
    assert isinstance(held, Acquired)
    for n in range(5):
        assert isinstance(await store.try_acquire("paper:main", new_owner(), f"run {n}", 300), Busy)

    [summary] = await lease_findings(db, since=0.0)

    assert (summary.kind, summary.severity, summary.exchange) == (
        Kind.LEASE_REFUSAL,
        Level.INFO,
        "paper",
    )
    assert summary.detail.startswith("5 refusal(s) on paper:main; the last: 'run 4'")


async def test_stops_that_closed_a_position_warden_did_not_open_leave_no_false_mismatch(
    rig: Rig,
) -> None:
    """Warden guards a position opened elsewhere; its stop fires. Warden's books must not
    count that stop's fill against Warden's next position."""
    await rig.paper.place_market_order(BTC, BUY, 0.001, "otherbot2")
    report = await rig.reconcile()
    assert any("placed verified stop" in a for a in report.actions), report
    [stop] = await rig.paper.open_stops(BTC)
    [fired] = await rig.paper.set_price(BTC, stop.trigger_price - 50)
    assert fired.stop.state is StopState.TRIGGERED and await rig.paper.positions() == []

    assert (await rig.open(BTC, LONG, BTC_SIZE, 60_000.0)).outcome.value == "protected"

    assert await audit(rig) == []


def test_expected_sizes_never_let_a_reducing_order_open_a_position() -> None:
    fired = StopOrder(BTC, "9", "wdxs1", SELL, 0.001, 60_000.0, StopState.TRIGGERED, True)
    assert expected_sizes([], [fired]) == {BTC: 0.0}


def test_wrong_side_and_unprotected_from_the_pure_rules() -> None:
    market = Market(BTC, "BTC", "USDT", 1.0, 0.0001, 0.00001, 0.1)
    pos = Position(BTC, LONG, 0.001, 69_000.0)
    wrong = StopOrder(BTC, "7", "wd1s1", BUY, 0.001, 70_000.0, StopState.LIVE, True)
    short = StopOrder(BTC, "8", "wd1s2", SELL, 0.0005, 65_000.0, StopState.LIVE, True)
    assert kinds(_stop_findings("paper", pos, [wrong], market)) == [
        "stop_wrong_side",
        "unprotected_position",
    ]
    assert kinds(_stop_findings("paper", pos, [short], market)) == ["stop_size_mismatch"]


# --- the real CLI -----------------------------------------------------------------------------


def write_config(folder: Path, db_path: Path) -> Path:
    path = folder / "warden.toml"
    path.write_text(f'[storage]\npath = "{db_path}"\n[logging]\nlevel = "ERROR"\n')
    return path


def warden_audit(config: Path) -> tuple[int, dict[str, object]]:
    out = subprocess.run(
        warden_cmd("--config", str(config), "audit", "--json"),
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=config.parent,
        timeout=60,
    )
    return out.returncode, json.loads(out.stdout)


@pytest.mark.slow
async def test_warden_audit_json_reports_the_findings_and_exits_1(
    rig: Rig, db: Database, db_path: Path, tmp_path: Path
) -> None:
    await rig.open(BTC, LONG, BTC_SIZE, BTC_STOP)
    await rig.paper.place_market_order(BTC, BUY, BTC_SIZE, "manualrun1")
    await rig.paper.place_stop(ETH, SELL, 0.01, 1900.0, "wdx1s110")
    async with rig.lease("cycle crashed") as lease:
        await rig.journal.create_intent(lease, IntentKind.ENTRY, ETH, SELL, 0.1, 2000.0, "x")
    store = LeaseStore(db)
    held = await store.try_acquire("paper:main", "h:1:a", "scheduled cycle", ttl=300)
    assert isinstance(held, Acquired)
    await store.try_acquire("paper:main", new_owner(), "manual run", ttl=300)  # refused
    await store.release("paper:main", "h:1:a", held.holder.token)
    await store.try_acquire("paper:main", new_owner(), "cycle that crashed", ttl=0.01)
    await asyncio.sleep(0.05)

    code, report = warden_audit(write_config(tmp_path, db_path))

    assert code == 1 and report["ok"] is False and report["errors"] == []
    findings = report["findings"]
    assert isinstance(findings, list)
    assert all(
        set(f) == {"kind", "severity", "exchange", "symbol", "detail", "action", "needs_action"}
        for f in findings
    )
    assert report["database"] == str(db_path)
    assert sorted(f["kind"] for f in findings) == [
        "lease_refusal",
        "orphan_stop",
        "size_mismatch",
        "stale_lease",
        "stop_size_mismatch",
        "unresolved_order",
    ]
    assert {f["exchange"] for f in findings} == {"paper"}
    severities = {f["kind"]: f["severity"] for f in findings}
    assert severities["size_mismatch"] == "critical" and severities["lease_refusal"] == "info"
    needs = {f["kind"]: f["needs_action"] for f in findings}
    assert needs["size_mismatch"] is True and needs["lease_refusal"] is False
    assert needs["stale_lease"] is False


@pytest.mark.slow
async def test_warden_audit_json_on_a_clean_account_exits_0(
    rig: Rig, db_path: Path, tmp_path: Path
) -> None:
    await rig.open(BTC, LONG, BTC_SIZE, BTC_STOP)

    code, report = warden_audit(write_config(tmp_path, db_path))

    assert (code, report) == (
        0,
        {"ok": True, "database": str(db_path), "findings": [], "errors": []},
    )


# --- repaired history versus what needs the owner (real CLI processes) ----------------------

DEMO_LIKE = """
[storage]
path = "warden.db"
[logging]
level = "ERROR"
[guardian]
verify_delay_seconds = 0.05
[exchanges.paper]
kind = "paper"
[exchanges.paper.faults]
stop_silent_fail = 2
"""


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        warden_cmd("--config", str(folder / "warden.toml"), *args),
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=folder,
        timeout=60,
    )


@pytest.mark.slow
def test_silent_failures_caught_and_repaired_audit_clean_with_their_history(
    tmp_path: Path,
) -> None:
    """The demo's story: every stop failure was caught by read-back and re-placed live. The
    audit lists that history (when it failed, when it was repaired, how long unprotected) and
    exits 0; a failure nothing repaired exits 1."""
    (tmp_path / "warden.toml").write_text(DEMO_LIKE)
    opened = cli(tmp_path, "open", BTC, "long", "--size", "0.001", "--stop", "65600", "--yes")
    assert opened.returncode == 0, opened.stdout + opened.stderr

    text = cli(tmp_path, "audit")
    as_json = cli(tmp_path, "audit", "--json")

    assert text.returncode == 0, text.stdout + text.stderr
    assert f"audit of {tmp_path / 'warden.db'}" in text.stdout
    assert "needs action" not in text.stdout
    assert "history and evidence (informational, nothing to do):" in text.stdout
    assert text.stdout.count("[info] failed_stop_placement paper BTC/USDT:USDT") == 2
    assert "audit: clean (2 informational)" in text.stdout
    assert as_json.returncode == 0
    report = json.loads(as_json.stdout)
    assert report["ok"] is True and report["database"] == str(tmp_path / "warden.db")
    failed = [f for f in report["findings"] if f["kind"] == "failed_stop_placement"]
    assert len(failed) == 2 and report["findings"] == failed
    for f in failed:
        assert (f["severity"], f["needs_action"]) == ("info", False)
        assert f["failed_at"] <= f["repaired_at"]  # ISO-8601 UTC strings order as times
        assert isinstance(f["unprotected_seconds"], float) and f["unprotected_seconds"] >= 0

    # someone else's stop on ETH, acknowledged then failed, and nothing ever replaced it
    async def unrepaired() -> None:
        db = await Database.open(tmp_path / "warden.db")
        try:
            paper = build_rig(db).paper
            await paper.set_faults(stop_silent_fail=1)
            await paper.place_stop(ETH, SELL, 0.01, 1900.0, "byhand1")
        finally:
            await db.close()

    asyncio.run(unrepaired())
    as_json = cli(tmp_path, "audit", "--json")
    text = cli(tmp_path, "audit")

    assert (as_json.returncode, text.returncode) == (1, 1)
    report = json.loads(as_json.stdout)
    [bad] = [f for f in report["findings"] if f["needs_action"]]
    assert (bad["kind"], bad["severity"], bad["symbol"]) == (
        "failed_stop_placement",
        "warning",
        ETH,
    )
    assert bad["repaired_at"] is None and bad["unprotected_seconds"] is None
    assert "never repaired" in bad["detail"]
    assert text.stdout.index("needs action:") < text.stdout.index("history and evidence")
    assert "audit: 1 finding(s) need action, 2 informational, 0 error(s)" in text.stdout


async def test_a_failed_stop_whose_position_was_closed_is_repaired_by_the_close(rig: Rig) -> None:
    """No live stop after every attempt: the position is closed at market (reduce-only). The
    failures are history; the close is when the position stopped needing a stop."""
    await rig.paper.set_faults(stop_silent_fail=3)
    res = await rig.open(ETH, SHORT, ETH_SIZE, ETH_STOP)
    assert res.outcome.value == "emergency_closed", res.detail

    found = await audit(rig)

    assert kinds(found) == ["failed_stop_placement"] * 3 and failing(found) == []
    [close_intent] = [i for i in await rig.journal.intents(SCOPE) if i.kind.value != "entry"]
    assert {f.repair.repaired_at for f in found if f.repair} == {close_intent.updated_at}


def test_repaired_at_is_when_the_later_stop_went_live_not_its_latest_read_back() -> None:
    """Each guardian pass renews a stop's read-back time; the repair is dated by the moment the
    replacing stop existed on the exchange (it was read back live), so the unprotected time of
    a silent failure caught in seconds does not grow with every later watchdog pass."""
    failed = StopOrder(BTC, "1", "wdxs1", SELL, 0.001, 60_000.0, StopState.FAILED, True)
    failed = replace(failed, created_at=1_000.0, updated_at=1_002.0)
    later = StopOrder(BTC, "2", "wdxs2", SELL, 0.001, 60_000.0, StopState.LIVE, True)
    later = replace(later, created_at=1_002.5, updated_at=1_002.5)
    verified = {"wdxs2": 1_900.0}  # the last watchdog pass that saw it live
    assert repaired_at(failed, [failed, later], verified, []) == 1_002.5
