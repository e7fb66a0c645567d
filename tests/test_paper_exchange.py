"""The paper exchange through its port, on a real database file, with real child processes."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.config import ConfigError, Secrets
from bot.config.schema import Config, OkxExchangeConfig, PaperExchangeConfig
from bot.exchanges import build_exchange, build_paper_exchange, paper_settings
from storage.db import Database
from storage.paper_store import PaperStore
from tests.conftest import BACKENDS, backend_target, child_env, warden_cmd
from trading.errors import (
    DuplicateClientId,
    InsufficientFunds,
    Rejected,
    StopWouldTrigger,
    UnknownOutcome,
)
from trading.models import Candle, OrderSide, OrderStatus, PositionSide, StopState
from trading.paper import FaultSettings, PaperExchange

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
SELL, BUY = OrderSide.SELL, OrderSide.BUY
DEFAULTS = paper_settings(PaperExchangeConfig())


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def paper(db: Database, name: str = "paper", **changes: Any) -> PaperExchange:
    settings = replace(DEFAULTS, **changes)
    return PaperExchange(name, settings, PaperStore(db), clock=Clock())


@pytest.fixture(params=BACKENDS)
def db_path(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Every test on both backends: the SQLite file, or a PostgreSQL database (its URL)."""
    return backend_target(request, tmp_path)


@pytest.fixture
def ex(db: Database) -> PaperExchange:
    return paper(db)


async def state_of(ex: PaperExchange, stop_id: str | None) -> StopState | None:
    stop = await ex.get_stop(BTC, stop_id=stop_id)
    return None if stop is None else stop.state


async def long_btc(ex: PaperExchange, cid: str = "e1", size: float = 0.00095) -> None:
    await ex.place_market_order(BTC, BUY, size, cid)


# -- orders ----------------------------------------------------------------------------------


async def test_market_buy_fills_with_slippage_fee_and_margin(ex: PaperExchange) -> None:
    order = await ex.place_market_order(BTC, BUY, 0.00095, "e1")
    assert (order.status, order.filled, order.average_price) == (
        OrderStatus.FILLED,
        0.00095,
        69094.5,
    )
    assert order.fee == pytest.approx(0.0328198875)  # 0.0005 * 0.00095 * 69094.5
    [pos] = await ex.positions(BTC)
    assert (pos.side, pos.size, pos.entry_price, pos.leverage) == (
        PositionSide.LONG,
        0.00095,
        69094.5,
        5.0,
    )
    assert pos.unrealized_pnl == pytest.approx((69060.0 - 69094.5) * 0.00095)
    bal = await ex.balance()
    assert bal.currency == "USDT"
    assert bal.total == pytest.approx(10_000 - 0.0328198875 - 0.032775)
    assert bal.used == pytest.approx(0.00095 * 69060 / 5)
    assert bal.free == pytest.approx(bal.total - bal.used)


async def test_orders_are_found_by_id_or_client_id(ex: PaperExchange) -> None:
    order = await ex.place_market_order(BTC, SELL, 0.001, "s1")
    assert order.average_price == 69025.5
    assert await ex.get_order(BTC, order_id=order.id) == order
    assert await ex.get_order(BTC, client_id="s1") == order
    assert await ex.get_order(BTC, client_id="nope") is None
    assert await ex.get_order(ETH, client_id="s1") is None
    assert await ex.open_orders() == []
    with pytest.raises(Rejected, match="already filled; nothing to cancel"):
        await ex.cancel_order(BTC, order.id)


async def test_reused_client_id_is_51016_and_changes_nothing(ex: PaperExchange) -> None:
    await long_btc(ex, "dup")
    for attempt in (
        ex.place_market_order(BTC, BUY, 0.00095, "dup"),
        ex.place_stop(BTC, SELL, 0.00095, 65586.3, "dup"),
    ):
        with pytest.raises(DuplicateClientId, match="already used by order 1") as exc:
            await attempt
        assert exc.value.code == "51016"
    assert [p.size for p in await ex.positions()] == [0.00095]
    assert await ex.open_stops() == []


async def test_opposite_orders_reduce_then_flip(ex: PaperExchange) -> None:
    await ex.place_market_order(ETH, BUY, 0.2, "a")  # 1950 * 1.0005 = 1950.975 -> 1950.98
    await ex.place_market_order(ETH, SELL, 0.1, "b")  # 1949.025 -> 1949.03: realised -0.195
    [pos] = await ex.positions()
    assert (pos.side, pos.size, pos.entry_price) == (PositionSide.LONG, 0.1, 1950.98)
    await ex.place_market_order(ETH, SELL, 0.3, "c")
    [pos] = await ex.positions()
    assert (pos.side, pos.size, pos.entry_price) == (PositionSide.SHORT, 0.2, 1949.03)
    trades = await ex.trades()
    assert [t.realized_pnl for t in trades] == pytest.approx([0.0, -0.195, -0.195])
    fees = sum(t.fee for t in trades)
    assert await ex.realized_pnl() == pytest.approx(-0.39 - fees)


async def test_reduce_only_is_clipped_or_rejected(ex: PaperExchange) -> None:
    with pytest.raises(Rejected, match="no position to reduce") as exc:
        await ex.place_market_order(BTC, SELL, 0.001, "r0", reduce_only=True)
    assert exc.value.code == "51169"
    await long_btc(ex)
    with pytest.raises(Rejected, match="no position to reduce"):
        await ex.place_market_order(BTC, BUY, 0.001, "r1", reduce_only=True)
    close = await ex.place_market_order(BTC, SELL, 0.01, "r2", reduce_only=True)
    assert (close.size, close.filled, close.reduce_only) == (0.01, 0.00095, True)
    assert await ex.positions() == []


async def test_insufficient_funds_and_bad_requests_change_nothing(db: Database) -> None:
    ex = paper(db, starting_balance=100.0)
    with pytest.raises(InsufficientFunds, match=r"free balance is 100\.00 USDT") as exc:
        await ex.place_market_order(BTC, BUY, 0.01, "big")
    assert exc.value.code == "51008"
    with pytest.raises(Rejected, match=r"not a multiple of the size step 0\.00001"):
        await ex.place_market_order(BTC, BUY, 0.000955, "odd")
    with pytest.raises(Rejected, match="unknown symbol") as exc2:
        await ex.place_market_order("DOGE/USDT:USDT", BUY, 1.0, "doge")
    assert exc2.value.code == "51001"
    assert await ex.positions() == []
    assert (await ex.balance()).total == 100.0
    assert await ex.get_order(BTC, client_id="big") is None


# -- stops -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "trigger", "words"),
    [
        (SELL, 69060.0, "cannot be higher"),
        (SELL, 69500.0, "cannot be higher"),
        (BUY, 69060.0, "cannot be lower"),
        (BUY, 68000.0, "cannot be lower"),
    ],
)
async def test_stop_on_the_wrong_side_is_51278(
    ex: PaperExchange, side: OrderSide, trigger: float, words: str
) -> None:
    with pytest.raises(StopWouldTrigger, match=words) as exc:
        await ex.place_stop(BTC, side, 0.001, trigger, "st")
    assert exc.value.code == "51278"
    assert await ex.get_stop(BTC, client_id="st") is None


async def test_stop_is_live_then_canceled(ex: PaperExchange) -> None:
    ack = await ex.place_stop(BTC, SELL, 0.00095, 65586.33, "st1")
    stop = await ex.get_stop(BTC, stop_id=ack.id)
    assert stop is not None and stop == await ex.get_stop(BTC, client_id="st1")
    assert (stop.state, stop.trigger_price, stop.reduce_only) == (StopState.LIVE, 65586.3, True)
    assert await ex.open_stops(BTC) == [stop]
    await ex.cancel_stop(BTC, ack.id)
    assert await ex.open_stops() == []
    [ended] = await ex.stop_history(BTC)
    assert ended.state is StopState.CANCELED
    assert await ex.stop_history(BTC, since=ended.updated_at + 1) == []
    assert await ex.stop_history(ETH) == []
    with pytest.raises(Rejected, match="is canceled; only a live stop can be canceled"):
        await ex.cancel_stop(BTC, ack.id)
    with pytest.raises(Rejected, match="does not exist"):
        await ex.cancel_stop(BTC, "999")


async def test_set_price_triggers_a_long_stop(ex: PaperExchange) -> None:
    await long_btc(ex)
    ack = await ex.place_stop(BTC, SELL, 0.00095, 65586.3, "sl")
    assert await ex.set_price(BTC, 66000.0) == []
    [fired] = await ex.set_price(BTC, 65000.0)
    assert fired.fill is not None
    assert (fired.stop.id, fired.stop.state) == (ack.id, StopState.TRIGGERED)
    assert (fired.fill.client_id, fired.fill.reduce_only) == (None, True)
    assert fired.fill.average_price == 65553.5  # 65586.3 * 0.9995 = 65553.507
    assert await ex.get_order(BTC, order_id=fired.fill.id) == fired.fill
    stop = await ex.get_stop(BTC, client_id="sl")
    assert stop is not None and stop.state is StopState.TRIGGERED
    assert await ex.positions() == [] and await ex.open_stops() == []
    assert (await ex.ticker(BTC)).last == 65000.0
    [_, stop_trade] = await ex.trades(BTC)
    assert stop_trade.stop_id == ack.id
    assert stop_trade.realized_pnl == pytest.approx((65553.5 - 69094.5) * 0.00095)


async def test_short_stop_is_clipped_and_a_stop_without_position_is_canceled(
    ex: PaperExchange,
) -> None:
    await ex.place_market_order(ETH, SELL, 0.3, "short")  # 1949.025 -> 1949.03
    await ex.place_stop(ETH, BUY, 0.5, 1983.41, "big-stop")
    await ex.place_stop(BTC, SELL, 0.001, 68000.0, "orphan")
    [fired] = await ex.set_price(ETH, 2006.02)
    assert fired.fill is not None
    assert (fired.fill.filled, fired.fill.average_price) == (0.3, 1984.4)  # 1983.41 * 1.0005
    [orphan] = await ex.set_price(BTC, 67000.0)
    assert (orphan.stop.state, orphan.fill) == (StopState.CANCELED, None)
    assert [s.state for s in await ex.stop_history()] == [StopState.TRIGGERED, StopState.CANCELED]


def candle(ts: float, o: float, h: float, low: float, c: float) -> Candle:
    return Candle(ts, o, h, low, c, 1.0)


async def test_candle_replay_moves_the_price_and_triggers_on_the_low(ex: PaperExchange) -> None:
    history = [candle(3600.0 * i, 69000, 69100, 68900, 69060) for i in range(3)]
    ahead = [candle(10800, 69060, 69200, 67900, 68500), candle(14400, 68500, 68600, 68400, 68450)]
    await ex.load_candles(BTC, history + ahead, timeframe="1h", warmup=3)
    assert (await ex.ticker(BTC)).last == 69060
    assert await ex.candles(BTC, "1h") == history
    await long_btc(ex)
    await ex.place_stop(BTC, SELL, 0.00095, 68000.0, "sl")
    step = await ex.advance(BTC)
    assert (step.advanced, step.remaining) == (1, 1)
    [fired] = step.triggered
    assert fired.fill is not None and fired.fill.average_price == 67966.0  # 68000 * 0.9995
    assert (await ex.ticker(BTC)).last == 68500
    assert await ex.candles(BTC, "1h", since=7200.0) == [history[2], ahead[0]]
    assert await ex.candles(BTC, "1h", limit=2) == [history[2], ahead[0]]
    with pytest.raises(Rejected, match="replays 1h candles, not 4h"):
        await ex.candles(BTC, "4h")
    last = await ex.advance(BTC, 5)
    assert (last.advanced, last.remaining, last.triggered) == (1, 0, [])


async def test_a_candle_gapping_through_the_stop_fills_at_its_open(ex: PaperExchange) -> None:
    await ex.place_market_order(ETH, SELL, 0.3, "short")
    await ex.place_stop(ETH, BUY, 0.3, 1983.41, "sl")
    await ex.load_candles(ETH, [candle(0, 2006.0, 2010.0, 2001.0, 2004.0)])
    [fired] = (await ex.advance(ETH)).triggered
    assert fired.fill is not None and fired.fill.average_price == 2007.0  # 2006 * 1.0005
    assert await ex.candles(ETH, "1h") == [candle(0, 2006.0, 2010.0, 2001.0, 2004.0)]


async def test_replay_needs_candles(ex: PaperExchange) -> None:
    assert await ex.candles(BTC, "1h") == []
    with pytest.raises(Rejected, match="no candles loaded"):
        await ex.advance(BTC)
    with pytest.raises(ValueError, match="high/low"):
        await ex.load_candles(BTC, [candle(0, 100, 90, 80, 95)])


# -- faults ----------------------------------------------------------------------------------


async def test_silent_stop_failures_are_acked_then_failed_and_all_kept(db: Database) -> None:
    ex = paper(db, faults=FaultSettings(stop_silent_fail=3))
    await long_btc(ex)
    acks = [await ex.place_stop(BTC, SELL, 0.00095, 65586.3, f"f{i}") for i in range(3)]
    assert all(a.id for a in acks)
    for a in acks:
        stop = await ex.get_stop(BTC, stop_id=a.id)
        assert stop is not None and (stop.state, stop.fail_code) == (StopState.FAILED, "1000")
    assert await ex.open_stops() == []
    history = await ex.stop_history(BTC)
    assert [(s.client_id, s.fail_code) for s in history] == [(f"f{i}", "1000") for i in range(3)]
    assert await ex.set_price(BTC, 65000.0) == []  # failed stops never fire
    assert [p.size for p in await ex.positions()] == [0.00095]
    ok = await ex.place_stop(BTC, SELL, 0.00095, 60000.0, "good")
    assert await state_of(ex, ok.id) is StopState.LIVE
    assert (await ex.faults()).stop_silent_fail == 0


async def test_silent_fail_rate_is_reproducible_from_the_seed(tmp_path: Path) -> None:
    outcomes = []
    for run in range(2):
        db = await Database.open(tmp_path / f"run{run}.db")
        ex = paper(db, faults=FaultSettings(seed=42, stop_silent_fail_rate=0.5))
        for i in range(12):
            await ex.place_stop(BTC, SELL, 0.001, 60000.0, f"s{i}")
        outcomes.append([s.client_id for s in await ex.stop_history()])
        await db.close()
    assert outcomes[0] == outcomes[1]
    assert 0 < len(outcomes[0]) < 12


async def test_entry_timeout_after_fill(db: Database) -> None:
    ex = paper(db, faults=FaultSettings(entry_timeout_after_fill=1))
    with pytest.raises(UnknownOutcome, match="look it up by client id") as exc:
        await long_btc(ex, "e1")
    assert exc.value.client_id == "e1"
    found = await ex.get_order(BTC, client_id="e1")
    assert found is not None and found.status is OrderStatus.FILLED
    assert [p.size for p in await ex.positions()] == [0.00095]
    assert (await ex.faults()).entry_timeout_after_fill == 0
    await long_btc(ex, "e2")  # budget spent: answered normally
    await ex.set_faults(entry_timeout_after_fill=1)
    await ex.place_market_order(BTC, SELL, 0.0019, "x", reduce_only=True)  # exits are not hit
    assert (await ex.faults()).entry_timeout_after_fill == 1


async def test_reject_rate_refuses_every_write_and_nothing_happens(db: Database) -> None:
    ex = paper(db)
    await long_btc(ex)
    ack = await ex.place_stop(BTC, SELL, 0.00095, 65586.3, "sl")
    await ex.set_faults(reject_rate=1.0)
    for write in (
        ex.place_market_order(BTC, BUY, 0.001, "o2"),
        ex.place_stop(BTC, SELL, 0.00095, 60000.0, "sl2"),
        ex.cancel_stop(BTC, ack.id),
    ):
        with pytest.raises(Rejected, match="injected fault") as exc:
            await write
        assert exc.value.code == "paper-reject"
    assert [p.size for p in await ex.positions()] == [0.00095]
    assert [s.id for s in await ex.open_stops()] == [ack.id]
    assert await ex.get_order(BTC, client_id="o2") is None
    assert await ex.get_stop(BTC, client_id="sl2") is None


async def test_latency_is_added_to_every_call(db: Database) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    ex = PaperExchange(
        "paper",
        replace(DEFAULTS, faults=FaultSettings(latency_ms=250)),
        PaperStore(db),
        sleep=sleep,
    )
    await ex.ticker(BTC)
    await long_btc(ex)
    assert slept == [0.25, 0.25]


async def test_set_faults_validates_and_is_shared_by_instances(db: Database, db_path: Path) -> None:
    ex = paper(db)
    with pytest.raises(ValueError, match="reject_rate"):
        await ex.set_faults(reject_rate=2.0)
    await ex.set_faults(stop_silent_fail=2)
    other_db = await Database.open(db_path)
    try:
        assert (await paper(other_db).faults()).stop_silent_fail == 2
    finally:
        await other_db.close()


async def test_changed_config_is_reported_not_applied(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await paper(db, faults=FaultSettings(stop_silent_fail=1)).place_stop(
        BTC, SELL, 0.001, 60000.0, "a"
    )
    with caplog.at_level(logging.WARNING, logger="warden.paper"):
        later = paper(db, faults=FaultSettings(stop_silent_fail=5))
        assert (await later.faults()).stop_silent_fail == 0
    [warning] = [r for r in caplog.records if r.getMessage() == "paper.config_not_applied"]
    assert "stop_silent_fail=5 (exchange created with 1)" in warning.fields["differs"]


async def test_two_exchanges_in_one_database_do_not_mix(db: Database) -> None:
    a, b = paper(db, "a"), paper(db, "b")
    await long_btc(a, "same-id")
    await b.place_market_order(BTC, SELL, 0.00095, "same-id")
    assert [p.side for p in await a.positions()] == [PositionSide.LONG]
    assert [p.side for p in await b.positions()] == [PositionSide.SHORT]


# -- several real processes ------------------------------------------------------------------

CHILD = """
import asyncio, sys
from bot.config.schema import Config
from bot.exchanges import build_paper_exchange
from storage.db import Database
from trading.models import OrderSide

async def main(path, action, cid):
    db = await Database.open(path)
    ex = build_paper_exchange(Config(), "paper", db)
    try:
        if action == "buy":
            order = await ex.place_market_order("BTC/USDT:USDT", OrderSide.BUY, 0.00095, cid)
            print(order.id)
        else:
            print((await ex.place_stop("BTC/USDT:USDT", OrderSide.SELL, 0.00095, 65586.3, cid)).id)
    finally:
        await db.close()

asyncio.run(main(*sys.argv[1:]))
"""


async def run_children(db_path: Path, *calls: tuple[str, str]) -> list[str]:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            str(db_path),
            action,
            cid,
            env=child_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for action, cid in calls
    ]
    outs = await asyncio.gather(*(p.communicate() for p in procs))
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()
    return [out.decode().strip() for out, _ in outs]


@pytest.mark.slow
async def test_duplicate_orders_from_two_processes_both_fill(db: Database, db_path: Path) -> None:
    ex = build_paper_exchange(Config(), "paper", db)
    ids = await run_children(db_path, ("buy", "scheduled-1"), ("buy", "manual-1"))
    assert len(set(ids)) == 2
    [pos] = await ex.positions(BTC)
    assert pos.size == 0.0019  # the post-mortem: 0.00095 twice


@pytest.mark.slow
async def test_fault_budget_is_consumed_across_processes(db: Database, db_path: Path) -> None:
    ex = build_paper_exchange(Config(), "paper", db)
    await ex.set_faults(stop_silent_fail=1)
    [child_stop] = await run_children(db_path, ("stop", "child-sl"))
    seen = await ex.get_stop(BTC, stop_id=child_stop)
    assert seen is not None and (seen.state, seen.fail_code) == (StopState.FAILED, "1000")
    assert (await ex.faults()).stop_silent_fail == 0
    ack = await ex.place_stop(BTC, SELL, 0.00095, 65586.3, "parent-sl")
    assert await state_of(ex, ack.id) is StopState.LIVE


# -- wiring and CLI --------------------------------------------------------------------------


def test_real_exchanges_need_their_keys_and_paper_needs_none(db: Database) -> None:
    config = Config(exchanges={"okx": OkxExchangeConfig(kind="okx")})
    with pytest.raises(ConfigError, match=r"exchange okx: .*OKX_API_KEY"):
        build_exchange(config, "okx", db, Secrets())
    assert isinstance(build_exchange(Config(), "paper", db), PaperExchange)


def test_duplicate_market_symbols_are_a_config_error() -> None:
    market = {"symbol": BTC, "price": 1.0, "min_size": 1.0, "size_step": 1.0, "price_step": 1.0}
    with pytest.raises(ValueError, match="listed more than once: BTC/USDT:USDT"):
        PaperExchangeConfig.model_validate({"markets": [market, market]})


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        warden_cmd("paper", "price", *args),
        cwd=tmp_path,
        env=child_env(WARDEN_DB=str(tmp_path / "warden.db")),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
async def test_cli_paper_price_moves_the_market_and_reports_stops(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "warden.db")
    ex = build_paper_exchange(Config(), "paper", db)
    await long_btc(ex)
    await ex.place_stop(BTC, SELL, 0.00095, 65586.3, "sl")
    await db.close()
    out = cli(tmp_path, BTC, "65000")
    assert out.returncode == 0, out.stderr
    assert "paper BTC/USDT:USDT last price 65000" in out.stdout
    assert "stop 2 triggered: BTC/USDT:USDT sell 0.00095 trigger 65586.3 filled at 65553.5" in (
        out.stdout
    )
    again = cli(tmp_path, BTC, "64000")
    assert again.returncode == 0 and "no stop triggered" in again.stdout


@pytest.mark.slow
def test_cli_paper_price_refuses_unknown_symbols_and_real_exchanges(tmp_path: Path) -> None:
    out = cli(tmp_path, "DOGE/USDT:USDT", "1")
    assert out.returncode == 2
    assert "not a market of paper exchange paper" in out.stderr
    (tmp_path / "okx.toml").write_text('[exchanges.okx]\nkind = "okx"\n', encoding="utf-8")
    out = cli(tmp_path, BTC, "1", "--config", "okx.toml")
    assert out.returncode == 2
    assert "exchange okx is okx, not a paper exchange" in out.stderr
