"""What every drill shares: a throwaway database and config, a step printer, checks."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bot.config.schema import Config, GuardianConfig, PaperExchangeConfig, StorageConfig
from bot.services import Account, build_account
from storage.db import Database
from storage.held_lease import LeaseManager
from storage.lease import LeaseStore

EXCHANGE = "paper"


@dataclass
class DrillRun:
    name: str
    out: TextIO = sys.stdout
    started: float = field(default_factory=time.monotonic)
    failures: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)

    def step(self, text: str) -> None:
        self.out.write(f"[{time.monotonic() - self.started:7.2f}s] {text}\n")
        self.out.flush()

    def check(self, ok: bool, text: str) -> bool:
        self.step(("PASS " if ok else "FAIL ") + text)
        if not ok:
            self.failures.append(text)
        return ok

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class DrillEnv:
    root: Path
    config: Config
    config_path: Path
    db: Database
    account: Account
    leases: LeaseManager

    @property
    def paper(self) -> Any:
        return self.account.exchange


def drill_config(base: Config, root: Path, faults: dict[str, Any] | None = None) -> Config:
    """The user's guardian timings on a fresh paper exchange in a throwaway database."""
    paper = PaperExchangeConfig.model_validate({"kind": "paper", "faults": faults or {}})
    return Config(
        storage=StorageConfig(path=str(root / "drill.db")),
        lease=base.lease,
        risk=base.risk.model_copy(update={"max_stop_percent": max(base.risk.max_stop_percent, 6)}),
        guardian=base.guardian,
        exchanges={EXCHANGE: paper},
    )


def write_toml(config: Config, path: Path) -> None:
    """Enough of the drill config for child `warden` processes to use the same exchange."""
    g: GuardianConfig = config.guardian
    lines = [
        "[storage]",
        f"path = {str(config.storage.path)!r}".replace("'", '"'),
        "[guardian]",
        f"watchdog_seconds = {g.watchdog_seconds}",
        f"verify_delay_seconds = {g.verify_delay_seconds}",
        f"verify_attempts = {g.verify_attempts}",
        "[risk]",
        f"max_stop_percent = {config.risk.max_stop_percent}",
        f"[exchanges.{EXCHANGE}]",
        'kind = "paper"',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@asynccontextmanager
async def drill_env(
    base: Config,
    faults: dict[str, Any] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncIterator[DrillEnv]:
    with tempfile.TemporaryDirectory(prefix="warden-drill-") as tmp:
        root = Path(tmp)
        config = drill_config(base, root, faults)
        config_path = root / "drill.toml"
        write_toml(config, config_path)
        db = await Database.open(config.storage.path)
        account = build_account(config, EXCHANGE, db, sleep=sleep)
        leases = LeaseManager(
            LeaseStore(db), ttl=config.lease.ttl_seconds, heartbeat=config.lease.heartbeat_seconds
        )
        try:
            yield DrillEnv(root, config, config_path, db, account, leases)
        finally:
            await account.exchange.close()
            await db.close()
