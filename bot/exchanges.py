"""Building the exchange adapter for one configured account.

The paper exchange is imported on use (and ccxt only by the real adapters), so short commands
pay for nothing they do not run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.config import Config, ConfigError, Secrets
from bot.config.schema import (
    ExchangeConfig,
    HyperliquidExchangeConfig,
    OkxExchangeConfig,
    PaperExchangeConfig,
)
from bot.config.secrets import process_secrets
from storage.db import Database
from trading.port import ExchangePort

if TYPE_CHECKING:
    from trading.paper import PaperExchange, PaperSettings


def paper_settings(cfg: PaperExchangeConfig) -> PaperSettings:
    from trading.paper import FaultSettings, PaperMarketSettings, PaperSettings

    f = cfg.faults
    return PaperSettings(
        starting_balance=cfg.starting_balance,
        taker_fee=cfg.taker_fee,
        slippage_bps=cfg.slippage_bps,
        leverage=cfg.leverage,
        markets=tuple(
            PaperMarketSettings(
                symbol=m.symbol,
                price=m.price,
                min_size=m.min_size,
                size_step=m.size_step,
                price_step=m.price_step,
                contract_size=m.contract_size,
            )
            for m in cfg.markets
        ),
        faults=FaultSettings(
            seed=f.seed,
            stop_silent_fail=f.stop_silent_fail,
            stop_silent_fail_rate=f.stop_silent_fail_rate,
            entry_timeout_after_fill=f.entry_timeout_after_fill,
            reject_rate=f.reject_rate,
            latency_ms=f.latency_ms,
        ),
    )


def build_paper_exchange(config: Config, name: str, db: Database) -> PaperExchange:
    """The paper exchange NAME on ``db``; ConfigError when NAME is not a paper exchange."""
    from storage.paper_store import PaperStore
    from trading.paper import PaperExchange

    cfg = _configured(config, name)
    if not isinstance(cfg, PaperExchangeConfig):
        raise ConfigError(f"exchange {name}: kind {cfg.kind} is not a paper exchange")
    return PaperExchange(name, paper_settings(cfg), PaperStore(db))


def build_exchange(
    config: Config, name: str, db: Database, secrets: Secrets | None = None
) -> ExchangePort:
    """The adapter for NAME. Real exchanges read their keys from ``secrets`` (default: the
    environment and .env); a missing key is a ConfigError naming the variable, never a value."""
    cfg = _configured(config, name)
    if isinstance(cfg, PaperExchangeConfig):
        return build_paper_exchange(config, name, db)
    keys = secrets if secrets is not None else process_secrets()
    if isinstance(cfg, OkxExchangeConfig):
        from trading.adapters.okx import MissingCredentials, build_okx

        try:
            return build_okx(
                name,
                account=cfg.account,
                sandbox=cfg.sandbox,
                api_url=cfg.api_url,
                margin_mode=cfg.margin_mode,
                leverage=cfg.leverage,
                secrets=keys.get,
            )
        except MissingCredentials as exc:
            raise ConfigError(f"exchange {name}: {exc}") from None
    if isinstance(cfg, HyperliquidExchangeConfig):
        from trading.adapters.hyperliquid import MissingCredentials as HlMissing
        from trading.adapters.hyperliquid import build_hyperliquid

        try:
            return build_hyperliquid(
                name,
                account=cfg.account,
                sandbox=cfg.sandbox,
                api_url=cfg.api_url,
                slippage_percent=cfg.slippage_percent,
                stop_slippage_percent=cfg.stop_slippage_percent,
                margin_mode=cfg.margin_mode,
                leverage=cfg.leverage,
                secrets=keys.get,
            )
        except HlMissing as exc:
            raise ConfigError(f"exchange {name}: {exc}") from None
    raise ConfigError(f"exchange {name}: kind {cfg.kind} is not supported")


def _configured(config: Config, name: str) -> ExchangeConfig:
    try:
        return config.exchanges[name]
    except KeyError:
        names = ", ".join(config.exchanges)
        raise ConfigError(f"exchange {name}: not configured (configured: {names})") from None
