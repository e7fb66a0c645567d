"""Stops the exchange refuses without the level being passed, and stops the trader set.

Through the real paper exchange, database, journal, lease, executor and guardian. Hyperliquid's
"Invalid TP/SL price" also answers a limit on the wrong side of the trigger and has answered
every trigger order of a coin during a venue incident (issue 12, item 5): such a refusal closes
nothing at market unless a fresh price shows the level passed. Stops the trader set in the
venue's UI follow the policy in trading/protection.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from storage.db import Database
from tests.conftest import child_env, warden_cmd
from tests.rig_executor import BTC, BTC_STOP, LONG, SCOPE, SELL, build_rig
from trading.audit import _stop_findings
from trading.errors import UnclearStopRefusal
from trading.executor import Outcome
from trading.models import Market, OrderSide, Position, PositionSide, StopOrder, StopState
from trading.paper import PaperExchange
from trading.protection import classify, misfit


class RefusesEveryStop:
    """The paper exchange, refusing every stop as Hyperliquid did during an incident."""

    def __init__(self, inner: PaperExchange) -> None:
        self.inner = inner
        self.refusing = True
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def place_stop(self, *args: Any, **kwargs: Any) -> Any:
        if self.refusing:
            self.refused += 1
            raise UnclearStopRefusal("hyperliquid: Invalid TP/SL price")
        return await self.inner.place_stop(*args, **kwargs)


async def test_an_unclear_refusal_keeps_a_fresh_entry_open_and_raises_an_incident(
    db: Database,
) -> None:
    rig = build_rig(db, wrap=RefusesEveryStop)

    res = await rig.open(BTC, LONG, 0.001, BTC_STOP)

    assert res.outcome is Outcome.UNPROTECTED, res
    assert "not closed at market" in res.detail
    [position] = await rig.paper.positions()
    assert position.size == 0.001
    assert rig.exchange.refused == rig.policy.verify_attempts  # type: ignore[attr-defined]
    incidents = await rig.journal.incidents(SCOPE)
    assert [(i.kind, i.resolved_at) for i in incidents] == [("unprotected_position", None)]
    assert "Invalid TP/SL price" in incidents[0].detail


async def test_the_guardian_retries_an_unclear_refusal_and_closes_only_once_the_level_passed(
    db: Database,
) -> None:
    rig = build_rig(db, wrap=RefusesEveryStop)
    await rig.open(BTC, LONG, 0.001, BTC_STOP)

    report = await rig.reconcile()

    assert report.protected == 0
    assert any("retrying, not closing" in e for e in report.errors), report
    assert len(await rig.paper.positions()) == 1  # never closed on an unconfirmed refusal

    await rig.paper.set_price(BTC, BTC_STOP - 500)  # now the level really is passed
    report = await rig.reconcile()

    assert await rig.paper.positions() == []
    assert any("emergency close (stop level already passed)" in a for a in report.actions)
    kinds = {i.kind for i in await rig.journal.incidents(SCOPE)}
    assert "emergency_close" in kinds


async def test_the_guardian_places_a_stop_once_the_venue_accepts_again(db: Database) -> None:
    rig = build_rig(db, wrap=RefusesEveryStop)
    await rig.open(BTC, LONG, 0.001, BTC_STOP)
    rig.exchange.refusing = False  # type: ignore[attr-defined]

    report = await rig.reconcile()

    assert report.protected == 1
    [stop] = await rig.paper.open_stops()
    assert (stop.trigger_price, stop.size) == (BTC_STOP, 0.001)
    incidents = await rig.journal.incidents(SCOPE)
    assert incidents and all(i.resolved_at is not None for i in incidents)


async def test_a_trader_stop_that_covers_the_position_is_its_protection(db: Database) -> None:
    rig = build_rig(db)
    await rig.open(BTC, LONG, 0.001, BTC_STOP)
    [mine] = await rig.paper.open_stops()
    await rig.paper.place_stop(BTC, SELL, 0.001, 64_000.0, "uiStop1")  # set in the venue's UI

    report = await rig.reconcile()

    assert report.protected == 1
    # Warden keeps its own stop and never cancels the trader's
    assert {s.client_id for s in await rig.paper.open_stops()} == {mine.client_id, "uiStop1"}

    await rig.paper.cancel_stop(BTC, mine.id)  # the trader removes Warden's stop in the UI
    report = await rig.reconcile()

    assert report.protected == 1
    [left] = await rig.paper.open_stops()
    assert left.client_id == "uiStop1"  # no second stop placed beside the trader's


async def test_a_trader_stop_that_does_not_cover_is_left_and_warden_adds_its_own(
    db: Database,
) -> None:
    rig = build_rig(db)
    await rig.open(BTC, LONG, 0.002, BTC_STOP)
    [mine] = await rig.paper.open_stops()
    await rig.paper.cancel_stop(BTC, mine.id)
    await rig.paper.place_stop(BTC, SELL, 0.001, 64_000.0, "uiHalf")  # half the position

    report = await rig.reconcile()

    assert report.protected == 1
    stops = {s.client_id: s for s in await rig.paper.open_stops()}
    assert "uiHalf" in stops and len(stops) == 2
    [warden] = [s for s in stops.values() if s.placed_by_warden]
    assert warden.size == 0.002
    assert any("your own stop" in a and "left in place" in a for a in report.actions)


async def test_a_trader_stop_without_a_position_is_never_canceled(db: Database) -> None:
    rig = build_rig(db)
    await rig.paper.place_stop(BTC, SELL, 0.001, 60_000.0, "uiOrphan")
    await rig.paper.place_stop(BTC, SELL, 0.001, 60_000.0, "wdx9s1")  # Warden's own orphan

    report = await rig.reconcile()

    assert [s.client_id for s in await rig.paper.open_stops()] == ["uiOrphan"]
    assert len([a for a in report.actions if "canceled orphan stop" in a]) == 1


MARKET = Market(BTC, "BTC", "USDT", 1.0, 0.001, 0.001, 0.1)
POSITION = Position(BTC, PositionSide.LONG, 0.002, 70_000.0)


def stop(**kw: Any) -> StopOrder:
    base: dict[str, Any] = {
        "symbol": BTC,
        "id": "1",
        "client_id": "wdabc1s1",
        "side": OrderSide.SELL,
        "size": 0.002,
        "trigger_price": 66_000.0,
        "state": StopState.LIVE,
        "reduce_only": True,
    }
    return StopOrder(**(base | kw))


def test_what_protects_a_position_table() -> None:
    cases = [
        (stop(), None),
        (stop(state=StopState.PAUSED), "it is paused, not in effect"),
        (stop(side=OrderSide.BUY), "a buy stop cannot close a long"),
        (stop(reduce_only=False), "it is not reduce-only"),
        (stop(size=0.001), "it covers 0.001, the position is 0.002"),
        (stop(size=0.0, whole_position=True, client_id=None), None),
        (stop(size=0.0, whole_position=True, reduce_only=False), None),
    ]
    for s, expected in cases:
        assert misfit(s, POSITION, MARKET) == expected, s
    assert misfit(stop(trigger_price=71_000.0), POSITION, MARKET, last=70_500.0) == (
        "its trigger 71000.0 is already passed (last 70500.0)"
    )


def test_classify_sorts_by_who_placed_it() -> None:
    ours, theirs = stop(id="1"), stop(id="2", client_id="uiStop", whole_position=True, size=0.0)
    partial = stop(id="3", client_id=None, size=0.001)
    prot = classify(POSITION, [ours, theirs, partial], MARKET, last=70_000.0)
    assert prot.ours_fit == [ours] and prot.theirs_fit == [theirs]
    assert [s.id for s, _ in prot.theirs_unfit] == ["3"]
    only_theirs = classify(POSITION, [theirs], MARKET)
    assert only_theirs.protected and not only_theirs.ours_fit and only_theirs.theirs_fit
    assert not classify(POSITION, [stop(state=StopState.PAUSED)], MARKET).protected


def test_the_audit_shows_trader_stops_as_info_and_counts_a_covering_one() -> None:
    whole = stop(id="2", client_id="", whole_position=True, size=0.0)
    findings = _stop_findings("okx", POSITION, [whole], MARKET)
    assert [(f.kind.value, f.severity.value) for f in findings] == [("trader_stop", "info")]
    assert "protects the long 0.002" in findings[0].detail
    partial = stop(id="3", client_id="uiHalf", size=0.001)
    findings = _stop_findings("okx", POSITION, [partial], MARKET)
    assert [f.kind.value for f in findings] == ["trader_stop", "unprotected_position"]
    assert "does not protect" in findings[0].detail and "covers 0.001" in findings[0].detail


@pytest.mark.slow
async def test_warden_status_shows_a_trader_stop_as_the_traders_own(
    db: Database, db_path: Path, tmp_path: Path
) -> None:
    rig = build_rig(db)
    await rig.paper.place_market_order(BTC, OrderSide.BUY, 0.001, "byhand1")
    await rig.paper.place_stop(BTC, SELL, 0.001, 64_000.0, "uiStop7")
    config = tmp_path / "warden.toml"
    config.write_text(f'[storage]\npath = "{db_path}"\n[logging]\nlevel = "ERROR"\n')

    def status(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            warden_cmd("--config", str(config), "status", *extra),
            capture_output=True,
            text=True,
            env=child_env(),
            cwd=tmp_path,
            timeout=60,
        )

    out = status("--json")
    assert out.returncode == 0, out.stderr
    [row] = json.loads(out.stdout)["positions"]
    assert row["stop"]["placed_by"] == "trader" and row["stop"]["trigger_price"] == 64_000.0
    assert row["stop"]["whole_position"] is False
    text = status()
    assert "your own stop 64000.0 (0.001) live, set on the venue" in text.stdout


async def test_closing_a_position_leaves_the_traders_own_stop_in_place(db: Database) -> None:
    rig = build_rig(db)
    await rig.open(BTC, LONG, 0.001, BTC_STOP)
    [mine] = await rig.paper.open_stops()
    await rig.paper.place_stop(BTC, SELL, 0.001, 64_000.0, "uiKeep")

    async with rig.lease("manual close") as lease:
        [res] = await rig.executor.close(lease, BTC, "manual", "manual close")

    assert res.outcome is Outcome.CLOSED, res
    assert "your own stop" in res.detail and "left in place" in res.detail
    assert await rig.paper.positions() == []
    assert [s.client_id for s in await rig.paper.open_stops()] == ["uiKeep"]
    ended = {s.client_id: s.state for s in await rig.paper.stop_history()}
    assert ended[mine.client_id] is StopState.CANCELED
