"""The configuration model. Every key a user can write lives here, with its range.

Models are strict (a string is never silently turned into a number) and forbid unknown keys,
so a typo in a risk setting stops start-up instead of being ignored.

Every field carries a ``description`` (and optional keys an ``examples`` value): the
configuration reference (``python -m bot.config.reference``) and the file ``warden init`` writes
are generated from them, and a test fails on a key without one.
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


DEFAULT_DB_PATH = "./warden.db"


class StorageConfig(StrictModel):
    """Where Warden keeps its state: one SQLite file shared by every Warden process (the
    default), or a PostgreSQL database shared by agents on several hosts (`url`)."""

    path: str = Field(
        DEFAULT_DB_PATH,
        min_length=1,
        description="the SQLite database (journal, leases, alerts, paper exchange); a relative "
        "path is read from the config file's folder; overridden by $WARDEN_DB",
    )
    url: str | None = Field(
        None,
        min_length=1,
        description="a PostgreSQL database instead of the SQLite file (postgresql://user@host/db;"
        " everything the file holds lives there); cannot be combined with `path`; a password "
        "belongs in $WARDEN_DATABASE_URL (a secret, which overrides this key), not here",
        examples=["postgresql://warden@db.internal:5432/warden"],
    )

    @model_validator(mode="after")
    def _one_store(self) -> StorageConfig:
        # the value is never echoed: it may carry a password
        if self.url is None:
            return self
        if not self.url.startswith(("postgresql://", "postgres://")):
            raise ValueError("[storage] url must be a postgresql:// URL")
        if self.path != DEFAULT_DB_PATH:
            raise ValueError(
                "[storage] url and path are mutually exclusive: the store is either the SQLite "
                "file (path) or the PostgreSQL database (url); remove one of them"
            )
        return self


class LoggingConfig(StrictModel):
    """Log lines go to stderr (the journal, `docker logs`) and, with `file`, to rotated files.
    Every line passes the secret redaction filter, in files as on stderr."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="lowest level logged (--log-level overrides it)"
    )
    format: Literal["text", "json"] = Field(
        "text", description="text: one key=value line per event; json: JSON lines (--log-json)"
    )
    file: str | None = Field(
        None,
        min_length=1,
        description="also write the log to this file (its folder must exist), rotated at "
        "max_bytes; unset: stderr only",
        examples=["./logs/warden.log"],
    )
    max_bytes: int = Field(
        10_000_000,
        ge=1024,
        le=1_000_000_000,
        description="with file: rotate when the file would grow past this many bytes",
    )
    backups: int = Field(
        5, ge=1, le=100, description="with file: rotated files kept (FILE.1 is the newest)"
    )


class LeaseConfig(StrictModel):
    """The execution lease: one writer per exchange account (invariant I1)."""

    ttl_seconds: float = Field(
        30.0,
        ge=2,
        le=3600,
        description="a holder that stops heart-beating loses the lease after this",
    )
    heartbeat_seconds: float = Field(
        5.0,
        gt=0,
        le=1200,
        description="how often a holder renews its lease (at most half of ttl_seconds); also "
        "the agent's health heartbeat",
    )
    wait_seconds: float = Field(
        30.0, ge=0, le=3600, description="how long interactive commands wait for a busy lease"
    )

    @model_validator(mode="after")
    def _heartbeat_within_ttl(self) -> LeaseConfig:
        if self.heartbeat_seconds * 2 > self.ttl_seconds:
            raise ValueError(
                "heartbeat_seconds must be at most half of ttl_seconds "
                f"(got heartbeat_seconds={self.heartbeat_seconds}, ttl_seconds={self.ttl_seconds})"
            )
        return self


class RiskConfig(StrictModel):
    """Global risk limits; each [[strategies]] entry may tighten them in [strategies.risk]."""

    risk_per_trade: float = Field(
        0.01, gt=0, le=1, description="fraction of equity lost if the stop is hit"
    )
    max_leverage: float = Field(
        5.0, gt=0, le=125, description="position notional / equity, per position"
    )
    max_stop_percent: float = Field(
        10.0, gt=0, lt=100, description="largest stop distance from the entry price, in percent"
    )
    max_open_positions: int = Field(
        2, ge=1, le=1000, description="positions open at once, per exchange account"
    )
    max_notional: float | None = Field(
        None,
        gt=0,
        description="largest position notional, in quote currency; unset: no limit",
        examples=[5000.0],
    )


class GuardianConfig(StrictModel):
    """The stop-loss guardian (invariants I4, I5)."""

    watchdog_seconds: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="how often every position's stop is read back from the exchange",
    )
    verify_delay_seconds: float = Field(
        2.0, ge=0, le=60, description="wait after placing a stop before reading it back"
    )
    verify_attempts: int = Field(
        3,
        ge=1,
        le=10,
        description="read-backs (re-placing in between) before an emergency close",
    )


class FaultsConfig(StrictModel):
    """Fault injection for the paper exchange: reproduces real exchange failures on demand.
    Seeded into the database the first time the exchange is used."""

    seed: int = Field(0, description="randomness is reproducible from the seed")
    stop_silent_fail: int = Field(
        0,
        ge=0,
        description="the next N stops are acknowledged, then fail on the exchange side "
        "(failCode 1000)",
    )
    stop_silent_fail_rate: float = Field(
        0.0, ge=0, le=1, description="... or each stop fails so with this probability"
    )
    entry_timeout_after_fill: int = Field(
        0, ge=0, description="the next N entries fill, but the caller sees a timeout"
    )
    reject_rate: float = Field(
        0.0, ge=0, le=1, description="each order, stop or cancel is refused with this probability"
    )
    latency_ms: int = Field(0, ge=0, le=60_000, description="added to every call, in milliseconds")


class PaperMarketConfig(StrictModel):
    """One market of the paper exchange (sizes in base units)."""

    symbol: str = Field(
        pattern=r"^[A-Z0-9]+/[A-Z0-9]+:[A-Z0-9]+$",
        description="unified swap symbol, e.g. BTC/USDT:USDT",
    )
    price: float = Field(gt=0, description="initial last price")
    contract_size: float = Field(1.0, gt=0, description="base units per contract")
    min_size: float = Field(gt=0, description="smallest order size, in base units")
    size_step: float = Field(gt=0, description="order sizes are multiples of this")
    price_step: float = Field(gt=0, description="prices are multiples of this (tick size)")


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

    data: str = Field(
        "bundled",
        min_length=1,
        description='"bundled" (synthetic) or a folder of SYMBOL_TF.csv files',
    )
    seconds_per_candle: float = Field(
        1.5, gt=0, le=86_400, description="one candle per tick, this often"
    )
    warmup_candles: int = Field(
        120, ge=0, le=100_000, description="candles already closed when the replay starts"
    )


class PaperExchangeConfig(StrictModel):
    """The paper exchange: a simulator in the database, shared by every Warden process on that
    file. starting_balance, market prices and faults only SEED it, the first time it is used."""

    kind: Literal["paper"] = Field("paper", description="exchange kind")
    account: Name = Field(
        "main", description='account label: the lease scope is "<name>:<account>"'
    )
    starting_balance: float = Field(10_000.0, gt=0, description="USDT cash at creation")
    taker_fee: float = Field(0.0005, ge=0, lt=0.1, description="fraction of notional per fill")
    slippage_bps: float = Field(
        5.0, ge=0, le=1000, description="market and stop fills move this far against you"
    )
    leverage: float = Field(5.0, gt=0, le=125, description="margin = notional / leverage")
    markets: list[PaperMarketConfig] = Field(
        default_factory=_default_paper_markets,
        min_length=1,
        description="the markets traded (default: BTC/USDT:USDT and ETH/USDT:USDT)",
    )
    faults: FaultsConfig = Field(default_factory=FaultsConfig, description="all off by default")
    replay: ReplayConfig | None = Field(
        None, description="replay recorded candles instead of fixed prices; unset: fixed prices"
    )

    @model_validator(mode="after")
    def _unique_symbols(self) -> PaperExchangeConfig:
        symbols = [m.symbol for m in self.markets]
        twice = sorted({s for s in symbols if symbols.count(s) > 1})
        if twice:
            raise ValueError(f"markets: symbol listed more than once: {', '.join(twice)}")
        return self


class OkxExchangeConfig(StrictModel):
    """An OKX account (keys in .env: OKX_API_KEY, OKX_API_SECRET, OKX_API_PASSPHRASE)."""

    kind: Literal["okx"] = Field(description="exchange kind")
    account: Name = Field(
        "main", description='account label: the lease scope is "<name>:<account>"'
    )
    sandbox: bool = Field(False, description="true: OKX demo trading")
    api_url: str | None = Field(
        None, description="another base URL for the API (proxy, tests)", examples=["https://..."]
    )
    margin_mode: Literal["cross", "isolated"] = Field("cross", description="margin mode")
    leverage: int = Field(
        3,
        ge=1,
        le=125,
        description="set on each traded symbol (with margin_mode) before its first entry",
    )


class HyperliquidExchangeConfig(StrictModel):
    """A Hyperliquid account (in .env: HYPERLIQUID_WALLET_ADDRESS, HYPERLIQUID_PRIVATE_KEY)."""

    kind: Literal["hyperliquid"] = Field(description="exchange kind")
    account: Name = Field(
        "main", description='account label: the lease scope is "<name>:<account>"'
    )
    sandbox: bool = Field(False, description="true: Hyperliquid testnet")
    api_url: str | None = Field(
        None, description="another base URL for the API (proxy, tests)", examples=["https://..."]
    )
    slippage_percent: float = Field(
        5.0, gt=0, le=50, description="bound on the price sent with market orders"
    )
    stop_slippage_percent: float = Field(
        10.0,
        gt=0,
        le=50,
        description="limit of a triggered stop, from its trigger (the venue's own stops use 10)",
    )
    margin_mode: Literal["cross", "isolated"] = Field(
        "cross", description="margin mode, set with the leverage (updateLeverage isCross)"
    )
    leverage: int = Field(
        3,
        ge=1,
        le=50,
        description="set on each traded coin (with margin_mode) before its first entry",
    )


ExchangeConfig = Annotated[
    PaperExchangeConfig | OkxExchangeConfig | HyperliquidExchangeConfig,
    Field(discriminator="kind"),
]


def _default_exchanges() -> dict[str, ExchangeConfig]:
    return {"paper": PaperExchangeConfig()}


class SchedulerConfig(StrictModel):
    """The agent's jobs: strategy cycles, alert delivery, the daily summary, the audit."""

    cycle_timeout_seconds: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="a strategy cycle running longer is aborted (and alerted)",
    )
    misfire_grace_seconds: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="a cycle that starts later than this after its time is skipped",
    )
    cycle_delay_seconds: float = Field(
        3.0,
        ge=0,
        le=600,
        description="run this long after a candle closes, so the exchange has it",
    )
    outbox_seconds: float = Field(
        1.0, gt=0, le=60, description="how often queued alerts are delivered"
    )
    daily_summary_hour: int | None = Field(
        20, ge=0, le=23, description="UTC hour of the daily P&L summary alert; unset: none"
    )
    audit_hour: int | None = Field(
        6,
        ge=0,
        le=23,
        description="UTC hour of the scheduled audit (findings become alerts); unset: none",
    )


class TelegramConfig(StrictModel):
    """Telegram control. The bot token and allowed user ids are secrets (environment / .env)."""

    api_base_url: str = Field(
        "https://api.telegram.org/bot",
        min_length=1,
        description="Bot API base URL, or a self-hosted Bot API server",
    )
    api_base_file_url: str | None = Field(
        None,
        description="Bot API file URL; unset: derived from api_base_url",
        examples=["https://api.telegram.org/file/bot"],
    )
    confirm_timeout_seconds: float = Field(
        60.0,
        ge=5,
        le=3600,
        description="/close and /open confirmation buttons expire after this",
    )
    lease_wait_seconds: float = Field(
        30.0, ge=0, le=600, description="a confirmed /close waits this long for a busy account"
    )
    realert_seconds: float = Field(
        300.0,
        ge=30,
        le=86_400,
        description="an unacknowledged critical alert is repeated this often",
    )
    allowed_chat_ids: list[int] = Field(
        default_factory=list,
        description="only these chats (alerts go there too); empty: the allowed users' own chats",
    )
    poll_timeout: float = Field(10.0, ge=0, le=60, description="getUpdates long-poll, seconds")
    retry_base_seconds: float = Field(
        1.0,
        gt=0,
        le=600,
        description="alert delivery backoff after a failure (a 429 waits its retry_after)",
    )
    retry_max_seconds: float = Field(
        60.0, gt=0, le=3600, description="longest backoff between delivery attempts"
    )
    stale_command_seconds: float = Field(
        120.0,
        ge=10,
        le=86_400,
        description="a command sent while Warden was offline longer ago than this is not run",
    )
    rate_limit: bool = Field(False, description="throttle to Telegram's published limits")


class AccountingConfig(StrictModel):
    """Realised P&L and loss attribution."""

    slippage_bound_bps: float = Field(
        10.0,
        ge=0,
        le=10_000,
        description="slippage beyond this (stop fills vs trigger) is an execution cost",
    )


class Config(StrictModel):
    storage: StorageConfig = Field(default_factory=StorageConfig, description="storage")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="logging")
    lease: LeaseConfig = Field(default_factory=LeaseConfig, description="execution lease")
    risk: RiskConfig = Field(default_factory=RiskConfig, description="risk limits")
    guardian: GuardianConfig = Field(
        default_factory=GuardianConfig, description="stop-loss guardian"
    )
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig, description="jobs")
    accounting: AccountingConfig = Field(default_factory=AccountingConfig, description="P&L")
    telegram: TelegramConfig = Field(default_factory=TelegramConfig, description="Telegram")
    exchanges: dict[Name, ExchangeConfig] = Field(
        default_factory=_default_exchanges,
        min_length=1,
        description="one table per exchange account, keyed by a name of your choice",
    )
    strategies: list[StrategyConfig] = Field(
        default_factory=list, description="strategies; none: the agent only guards positions"
    )

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
