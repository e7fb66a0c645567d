"""Building the exchange adapter for one configured account.

Each config table's ``kind`` names its descriptor in ``trading.adapters.kinds.KINDS`` (secrets,
capabilities, adapter factory); this module only turns a config table into the factory's
keyword arguments. Adapters are imported on use (ccxt only by the real ones), so short commands
pay for nothing they do not run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from bot.config import Config, ConfigError, Secrets
from bot.config.schema import ExchangeConfig, PaperExchangeConfig, ReplayConfig
from bot.config.secrets import process_secrets
from storage.db import Database
from trading.adapters.kinds import KINDS, ExchangeKind
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


def kind_of(cfg: ExchangeConfig) -> ExchangeKind:
    """The descriptor of a config table (its ``kind`` key names it)."""
    found = KINDS.get(cfg.kind)
    if found is None:
        raise ConfigError(f"exchange kind {cfg.kind}: not known ({', '.join(KINDS)})")
    return found


def _paper_options(cfg: Any, db: Database) -> dict[str, Any]:
    from storage.paper_store import PaperStore

    return {"settings": paper_settings(cfg), "store": PaperStore(db)}


def _table_options(cfg: Any, db: Database) -> dict[str, Any]:
    """Every key of the table but ``kind``, as the factory's keyword arguments (build_okx and
    build_hyperliquid take exactly their tables' keys)."""
    return {k: v for k, v in cfg.model_dump().items() if k != "kind"}


# how a kind's table becomes its factory's arguments; a kind not listed passes its table's keys
OPTIONS: dict[str, Callable[[Any, Database], dict[str, Any]]] = {"paper": _paper_options}


def build_paper_exchange(config: Config, name: str, db: Database) -> PaperExchange:
    """The paper exchange NAME on ``db``; ConfigError when NAME is not a paper exchange."""
    cfg = _configured(config, name)
    if cfg.kind != "paper":
        raise ConfigError(f"exchange {name}: kind {cfg.kind} is not a paper exchange")
    return cast("PaperExchange", build_exchange(config, name, db))


def build_exchange(
    config: Config, name: str, db: Database, secrets: Secrets | None = None
) -> ExchangePort:
    """The adapter for NAME. Kinds with credentials read them from ``secrets`` (default: the
    environment and .env); a missing one is a ConfigError naming the variable, never a value."""
    cfg = _configured(config, name)
    kind = kind_of(cfg)
    keys = (secrets if secrets is not None else process_secrets()) if kind.credentials else None
    getter = keys.get if keys is not None else _no_secret
    missing = kind.missing(getter)
    if missing:
        raise ConfigError(f"exchange {name}: {', '.join(missing)} not set")
    options = OPTIONS.get(kind.name, _table_options)(cfg, db)
    return kind.build(name, getter, options)


def _no_secret(variable: str) -> None:
    return None


def _configured(config: Config, name: str) -> ExchangeConfig:
    try:
        return config.exchanges[name]
    except KeyError:
        names = ", ".join(config.exchanges)
        raise ConfigError(f"exchange {name}: not configured (configured: {names})") from None


def paper_config(cfg: ExchangeConfig) -> PaperExchangeConfig | None:
    """The table as a paper exchange's (markets, faults, replay), None for any other kind: the
    one place the paper-only commands and the backtest narrow a table to the paper model."""
    return cfg if isinstance(cfg, PaperExchangeConfig) else None


def replay_of(cfg: ExchangeConfig) -> ReplayConfig | None:
    """The recorded candles a paper exchange replays, None for live prices or another kind."""
    paper = paper_config(cfg)
    return paper.replay if paper is not None else None
