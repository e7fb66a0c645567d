"""Building the exchange adapter for one configured account.

The paper exchange is imported on use (and ccxt only by the real adapters), so short commands
pay for nothing they do not run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.config import Config, ConfigError
from bot.config.schema import ExchangeConfig, PaperExchangeConfig
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


def build_exchange(config: Config, name: str, db: Database) -> ExchangePort:
    cfg = _configured(config, name)
    if isinstance(cfg, PaperExchangeConfig):
        return build_paper_exchange(config, name, db)
    raise ConfigError(f"exchange {name}: kind {cfg.kind} is not supported in this version yet")


def _configured(config: Config, name: str) -> ExchangeConfig:
    try:
        return config.exchanges[name]
    except KeyError:
        names = ", ".join(config.exchanges)
        raise ConfigError(f"exchange {name}: not configured (configured: {names})") from None
