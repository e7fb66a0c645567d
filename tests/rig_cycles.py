"""The cycle runner's rig, shared by the cycle, daemon, owner, outage and bad-input tests: a
scripted candle path (enter on bar 10, exit on bar 14) replayed by the real paper exchange, and
the config that trades it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config import Config
from bot.config.schema import PaperExchangeConfig
from bot.cycles import CycleRunner, build_runs
from bot.services import Account, build_account
from storage.cycle_store import CycleStore
from storage.db import Database
from storage.held_lease import LeaseManager
from storage.journal_store import JournalStore
from storage.lease import LeaseStore
from trading.marketdata import data_filename, write_candles
from trading.models import Candle, StopOrder
from trading.paper import PaperExchange

ETH = "ETH/USDT:USDT"
SCOPE = "paper:main"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
STEP = 1800.0  # 30m
WARMUP = 10  # flat candles before the breakout: the cursor starts here

# (open, high, low, close)
BARS: list[tuple[float, float, float, float]] = [(2000.0, 2005.0, 1995.0, 2000.0)] * WARMUP + [
    (2000.0, 2052.0, 1999.0, 2050.0),  # 10: close above the 5-bar high 2005 -> enter long
    (2050.0, 2065.0, 2045.0, 2060.0),  # 11: hold
    (2060.0, 2070.0, 2055.0, 2065.0),  # 12: hold
    (2065.0, 2066.0, 2030.0, 2035.0),  # 13: hold (3-bar low is 1999)
    (2035.0, 2036.0, 2020.0, 2025.0),  # 14: close under the 3-bar low 2030 -> exit
    *[(2025.0, 2028.0, 2022.0, 2025.0)] * 5,
]
PATH = [Candle(T0 + i * STEP, o, h, lo, c, 10.0) for i, (o, h, lo, c) in enumerate(BARS)]
ENTRY_BAR, EXIT_BAR = 10, 14

MOMO_PARAMS: dict[str, Any] = {
    "channel": 5,
    "exit_channel": 3,
    "stop": "percent",
    "stop_percent": 2.0,
}


def strategy(name: str, **risk: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "momentum_breakout",
        "exchange": "paper",
        "symbols": [ETH],
        "timeframe": "30m",
        "params": dict(MOMO_PARAMS),
        "risk": risk,
    }


def make_config(
    db_path: Path,
    strategies: Sequence[dict[str, Any]],
    *,
    faults: dict[str, Any] | None = None,
    replay: dict[str, Any] | None = None,
    **sections: Any,
) -> Config:
    paper: dict[str, Any] = {"kind": "paper", "faults": faults or {}}
    if replay is not None:
        paper["replay"] = replay
    raw: dict[str, Any] = {
        "storage": {"path": str(db_path)},
        "guardian": {"verify_delay_seconds": 0.05, "watchdog_seconds": 30.0},
        "exchanges": {"paper": paper},
        "strategies": list(strategies),
    }
    raw.update(sections)
    return Config.model_validate(raw)


def write_path_csv(folder: Path, symbol: str = ETH, bars: Sequence[Candle] = PATH) -> Path:
    """The scripted path as a replay file, for configs with ``replay.data = folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / data_filename(symbol, "30m")
    write_candles(path, bars)
    return path


@dataclass
class Rig:
    config: Config
    db: Database
    acct: Account
    exchange: PaperExchange
    journal: JournalStore
    leases: LeaseManager
    cycles: CycleStore

    def runner(self, name: str, timeout: float = 30.0) -> CycleRunner:
        run = next(r for r in build_runs(self.config) if r.name == name)
        return CycleRunner(run, self.acct, self.leases, self.cycles, timeout, live_clock=False)

    async def advance_to(self, bar: int) -> None:
        """Replay candles until ``bar`` is the last closed one."""
        state = await self.exchange.candles(ETH, "30m", limit=1)
        last = round((state[-1].ts - T0) / STEP)
        if bar > last:
            await self.exchange.advance(ETH, bar - last)

    async def live_stops(self) -> list[StopOrder]:
        return await self.exchange.open_stops(ETH)


async def build_rig(config: Config, db: Database) -> Rig:
    acct = build_account(config, "paper", db)
    exchange = acct.exchange
    assert isinstance(exchange, PaperExchange)
    await exchange.load_candles(ETH, PATH, timeframe="30m", warmup=WARMUP)
    journal = acct.journal
    leases = LeaseManager(LeaseStore(db), ttl=config.lease.ttl_seconds, heartbeat=1.0)
    return Rig(config, db, acct, exchange, journal, leases, CycleStore(db))


def _paper(config: Config, name: str) -> PaperExchangeConfig:
    cfg = config.exchanges[name]
    assert isinstance(cfg, PaperExchangeConfig)
    return cfg
