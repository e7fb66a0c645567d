"""The configuration model. Every key a user can write lives here, with its range.

Models are strict (a string is never silently turned into a number) and forbid unknown keys,
so a typo in a risk setting stops start-up instead of being ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.config.strategy import StrategyConfig

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")]


class StrictModel(BaseModel):
    # allow_inf_nan=False: `inf` and `nan` are valid TOML floats, but never a valid setting
    # (a bound like gt=0 alone lets `starting_balance = inf` through)
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class StorageConfig(StrictModel):
    path: str = Field("./warden.db", min_length=1)


class LoggingConfig(StrictModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class LeaseConfig(StrictModel):
    ttl_seconds: float = Field(30.0, ge=2, le=3600)
    heartbeat_seconds: float = Field(5.0, gt=0, le=1200)
    wait_seconds: float = Field(30.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _heartbeat_within_ttl(self) -> LeaseConfig:
        if self.heartbeat_seconds * 2 > self.ttl_seconds:
            raise ValueError(
                "heartbeat_seconds must be at most half of ttl_seconds "
                f"(got heartbeat_seconds={self.heartbeat_seconds}, ttl_seconds={self.ttl_seconds})"
            )
        return self


class RiskConfig(StrictModel):
    risk_per_trade: float = Field(0.01, gt=0, le=1)
    max_leverage: float = Field(5.0, gt=0, le=125)
    max_stop_percent: float = Field(10.0, gt=0, lt=100)
    max_open_positions: int = Field(2, ge=1, le=1000)
    max_notional: float | None = Field(None, gt=0)


class GuardianConfig(StrictModel):
    watchdog_seconds: float = Field(30.0, ge=1, le=3600)
    verify_delay_seconds: float = Field(2.0, ge=0, le=60)
    verify_attempts: int = Field(3, ge=1, le=10)


class FaultsConfig(StrictModel):
    """Fault injection for the paper exchange: reproduces real exchange failures on demand."""

    seed: int = 0
    stop_silent_fail: int = Field(0, ge=0)
    stop_silent_fail_rate: float = Field(0.0, ge=0, le=1)
    entry_timeout_after_fill: int = Field(0, ge=0)
    reject_rate: float = Field(0.0, ge=0, le=1)
    latency_ms: int = Field(0, ge=0, le=60_000)


class PaperMarketConfig(StrictModel):
    symbol: str = Field(pattern=r"^[A-Z0-9]+/[A-Z0-9]+:[A-Z0-9]+$")
    price: float = Field(gt=0)
    contract_size: float = Field(1.0, gt=0)
    min_size: float = Field(gt=0)
    size_step: float = Field(gt=0)
    price_step: float = Field(gt=0)


def _default_paper_markets() -> list[PaperMarketConfig]:
    return [
        PaperMarketConfig(
            symbol="BTC/USDT:USDT",
            price=69060.0,
            min_size=0.0001,
            size_step=0.00001,
            price_step=0.1,
        ),
        PaperMarketConfig(
            symbol="ETH/USDT:USDT", price=1950.0, min_size=0.001, size_step=0.001, price_step=0.01
        ),
    ]


class ReplayConfig(StrictModel):
    """Prices from recorded candles, one candle per tick (the embedded demo, paper drills)."""

    data: str = Field("bundled", min_length=1)  # "bundled" or a folder of SYMBOL_TF.csv files
    seconds_per_candle: float = Field(1.5, gt=0, le=86_400)
    warmup_candles: int = Field(120, ge=0, le=100_000)


class PaperExchangeConfig(StrictModel):
    kind: Literal["paper"] = "paper"
    account: Name = "main"
    starting_balance: float = Field(10_000.0, gt=0)
    taker_fee: float = Field(0.0005, ge=0, lt=0.1)
    slippage_bps: float = Field(5.0, ge=0, le=1000)
    leverage: float = Field(5.0, gt=0, le=125)
    markets: list[PaperMarketConfig] = Field(default_factory=_default_paper_markets, min_length=1)
    faults: FaultsConfig = Field(default_factory=FaultsConfig)
    replay: ReplayConfig | None = None

    @model_validator(mode="after")
    def _unique_symbols(self) -> PaperExchangeConfig:
        symbols = [m.symbol for m in self.markets]
        twice = sorted({s for s in symbols if symbols.count(s) > 1})
        if twice:
            raise ValueError(f"markets: symbol listed more than once: {', '.join(twice)}")
        return self


class OkxExchangeConfig(StrictModel):
    kind: Literal["okx"]
    account: Name = "main"
    sandbox: bool = False
    api_url: str | None = None
    margin_mode: Literal["cross", "isolated"] = "cross"


class HyperliquidExchangeConfig(StrictModel):
    kind: Literal["hyperliquid"]
    account: Name = "main"
    sandbox: bool = False
    api_url: str | None = None
    slippage_percent: float = Field(5.0, gt=0, le=50)


ExchangeConfig = Annotated[
    PaperExchangeConfig | OkxExchangeConfig | HyperliquidExchangeConfig,
    Field(discriminator="kind"),
]


def _default_exchanges() -> dict[str, ExchangeConfig]:
    return {"paper": PaperExchangeConfig()}


class SchedulerConfig(StrictModel):
    cycle_timeout_seconds: float = Field(120.0, gt=0, le=3600)
    misfire_grace_seconds: float = Field(60.0, ge=1, le=3600)
    cycle_delay_seconds: float = Field(3.0, ge=0, le=600)  # after candle close, for the exchange
    outbox_seconds: float = Field(1.0, gt=0, le=60)
    daily_summary_hour: int | None = Field(20, ge=0, le=23)  # UTC; unset = no daily summary
    audit_hour: int | None = Field(6, ge=0, le=23)  # UTC; unset = no scheduled audit


class TelegramConfig(StrictModel):
    """Telegram control. The bot token and allowed user ids are secrets (environment / .env)."""

    api_base_url: str = Field("https://api.telegram.org/bot", min_length=1)
    api_base_file_url: str | None = None
    confirm_timeout_seconds: float = Field(60.0, ge=5, le=3600)
    lease_wait_seconds: float = Field(30.0, ge=0, le=600)
    realert_seconds: float = Field(300.0, ge=30, le=86_400)
    allowed_chat_ids: list[int] = Field(default_factory=list)
    poll_timeout: float = Field(10.0, ge=0, le=60)
    retry_base_seconds: float = Field(1.0, gt=0, le=600)
    retry_max_seconds: float = Field(60.0, gt=0, le=3600)
    stale_command_seconds: float = Field(120.0, ge=10, le=86_400)
    rate_limit: bool = False


class AccountingConfig(StrictModel):
    slippage_bound_bps: float = Field(10.0, ge=0, le=10_000)


class Config(StrictModel):
    storage: StorageConfig = Field(default_factory=StorageConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    lease: LeaseConfig = Field(default_factory=LeaseConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    guardian: GuardianConfig = Field(default_factory=GuardianConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    accounting: AccountingConfig = Field(default_factory=AccountingConfig)
    telegram: TelegramConfig = Field(default_factory=TelegramConfig)
    exchanges: dict[Name, ExchangeConfig] = Field(default_factory=_default_exchanges, min_length=1)
    strategies: list[StrategyConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _strategies_refer_to_exchanges(self) -> Config:
        names = [s.name for s in self.strategies]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"strategies: name used more than once: {', '.join(twice)}")
        for i, sc in enumerate(self.strategies):
            ex = self.exchanges.get(sc.exchange)
            if ex is None:
                raise ValueError(
                    f"strategies[{i}].exchange: {sc.exchange!r} is not a configured exchange "
                    f"(configured: {', '.join(self.exchanges)})"
                )
            if isinstance(ex, PaperExchangeConfig):
                known = {m.symbol for m in ex.markets}
                unknown = [sym for sym in sc.symbols if sym not in known]
                if unknown:
                    raise ValueError(
                        f"strategies[{i}].symbols: {', '.join(unknown)} not listed by paper "
                        f"exchange {sc.exchange!r} (markets: {', '.join(sorted(known))})"
                    )
        return self

    def lease_scope(self, exchange_name: str) -> str:
        """The account scope one lease guards: every path that writes to this account shares it."""
        ex = self.exchanges[exchange_name]
        return f"{exchange_name}:{ex.account}"
