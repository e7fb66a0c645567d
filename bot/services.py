"""Wiring: the domain objects for one exchange account, built from config and a database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.config import Config
from bot.exchanges import build_exchange
from bot.logs import redactor
from storage.db import Database
from storage.journal_store import JournalStore
from trading.executor import Executor
from trading.guardian import Guardian
from trading.orders import OrderSender
from trading.port import ExchangePort
from trading.settings import RiskLimits, StopPolicy
from trading.stops import StopKeeper


@dataclass
class Account:
    name: str
    scope: str
    exchange: ExchangePort
    journal: JournalStore
    keeper: StopKeeper
    guardian: Guardian
    executor: Executor


def stop_policy(config: Config) -> StopPolicy:
    return StopPolicy(
        verify_delay=config.guardian.verify_delay_seconds,
        verify_attempts=config.guardian.verify_attempts,
        default_stop_percent=config.risk.max_stop_percent,
    )


def risk_limits(config: Config) -> RiskLimits:
    r = config.risk
    return RiskLimits(
        max_stop_percent=r.max_stop_percent,
        max_leverage=r.max_leverage,
        max_open_positions=r.max_open_positions,
        max_notional=r.max_notional,
    )


def build_account(
    config: Config,
    name: str,
    db: Database,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Account:
    scope = config.lease_scope(name)
    exchange = build_exchange(config, name, db)
    journal = JournalStore(db, redact=redactor())
    sender = OrderSender(exchange, journal, sleep=sleep)
    policy = stop_policy(config)
    keeper = StopKeeper(exchange, journal, sender, policy, sleep=sleep)
    guardian = Guardian(exchange, journal, keeper, scope, policy)
    executor = Executor(exchange, journal, sender, keeper, guardian, scope, risk_limits(config))
    return Account(name, scope, exchange, journal, keeper, guardian, executor)
