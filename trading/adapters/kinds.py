"""One descriptor per exchange kind: what Warden knows about a venue outside its adapter.

Each kind names the secrets it needs (environment / .env variables), what the venue can do
(capabilities: callers ask these instead of probing an adapter with ``getattr`` or catching
``NotImplementedError``), and where its adapter factory lives. The factory is a
``"module:function"`` path imported on first use, so choosing the paper exchange never imports
ccxt (about 1.3 s and 105 MB) and a new kind is one entry in ``KINDS`` plus its adapter.

A factory is called as ``factory(name, secrets=getter, **options)``: ``options`` are the
keyword arguments the kind's config table provides (the bot maps its config models to them).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from trading.port import ExchangePort

SecretGetter = Callable[[str], str | None]


@dataclass(frozen=True)
class Credential:
    variable: str  # the environment / .env variable
    description: str  # what to paste there (`warden init` asks with it)


@dataclass(frozen=True)
class Capabilities:
    """What the venue offers, as Warden uses it."""

    attached_stops: bool  # a stop can ride on the entry order itself
    position_tpsl: bool  # the venue's UI sets whole-position stops (size 0 / closeFraction)
    leverage_setting: bool  # leverage and margin mode per symbol, readable and settable
    sandbox: bool  # a test environment (`sandbox = true`)
    fills: bool  # the adapter lists executions (`fills()`): the accounting's material
    server_time: bool = False  # `server_time()`: the venue's clock, for the skew check
    account_config: bool = False  # `account_config()`: account mode fit to trade, or problems


@dataclass(frozen=True)
class ExchangeKind:
    name: str  # the config's `kind = "..."`
    title: str  # for people: "OKX", "Hyperliquid"
    credentials: tuple[Credential, ...]
    capabilities: Capabilities
    factory: str  # "module:function", imported on first use
    sandbox_name: str | None = None  # what the venue calls its test environment
    # public candle history (`warden download`): ccxt's client id and the largest page
    history_client: str | None = None
    history_page: int | None = None
    history_options: tuple[tuple[str, Any], ...] = ()  # ccxt client options for that reader
    # where a test or proxy URL goes in the ccxt client's urls['api'] (the keys it reads)
    api_url_keys: tuple[str, ...] = ()

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(c.variable for c in self.credentials)

    def missing(self, secrets: SecretGetter) -> list[str]:
        """The credential variables that are not set (names only, never values)."""
        return [v for v in self.variables if not secrets(v)]

    def build(self, name: str, secrets: SecretGetter, options: Mapping[str, Any]) -> ExchangePort:
        module, _, attr = self.factory.partition(":")
        make = getattr(importlib.import_module(module), attr)
        return cast(ExchangePort, make(name, secrets=secrets, **options))


KINDS: dict[str, ExchangeKind] = {
    "paper": ExchangeKind(
        name="paper",
        title="paper exchange",
        credentials=(),
        capabilities=Capabilities(
            attached_stops=False,
            position_tpsl=False,
            leverage_setting=False,
            sandbox=False,
            fills=True,
        ),
        factory="trading.paper.build:build_paper",
    ),
    # OKX v5 API docs: "Place order" takes attachAlgoOrds (a stop riding on the entry); an algo
    # with closeFraction "1" closes the whole position ("Place algo order"); leverage per
    # instrument ("Set leverage" / "Get leverage"); demo trading is the test environment.
    "okx": ExchangeKind(
        name="okx",
        title="OKX",
        credentials=(
            Credential("OKX_API_KEY", "OKX API key (trade permission; no withdrawal permission)"),
            Credential("OKX_API_SECRET", "OKX API secret"),
            Credential("OKX_API_PASSPHRASE", "OKX API passphrase"),
        ),
        capabilities=Capabilities(
            attached_stops=True,
            position_tpsl=True,
            leverage_setting=True,
            sandbox=True,
            fills=True,
            server_time=True,  # GET public/time
            account_config=True,  # GET account/config: position mode, account level
        ),
        factory="trading.adapters.okx:build_okx",
        sandbox_name="OKX demo trading",
        history_client="okx",
        history_page=300,  # GET market/history-candles: limit at most 300 (OKX v5 docs)
        api_url_keys=("rest",),
    ),
    # Hyperliquid docs, exchange endpoint "Place an order": grouping "normalTpsl" (stops with the
    # entry) and "positionTpsl" (whole-position TP/SL, listed with isPositionTpsl); leverage per
    # coin with "updateLeverage"; the testnet is the test environment.
    "hyperliquid": ExchangeKind(
        name="hyperliquid",
        title="Hyperliquid",
        credentials=(
            Credential("HYPERLIQUID_WALLET_ADDRESS", "Hyperliquid main wallet address"),
            Credential("HYPERLIQUID_PRIVATE_KEY", "Hyperliquid API (agent) wallet private key"),
        ),
        capabilities=Capabilities(
            attached_stops=True,
            position_tpsl=True,
            leverage_setting=True,
            sandbox=True,
            fills=True,
            server_time=True,  # clearinghouseState carries the venue's time
        ),
        factory="trading.adapters.hyperliquid:build_hyperliquid",
        sandbox_name="Hyperliquid testnet",
        history_client="hyperliquid",
        history_page=5000,  # info candleSnapshot answers at most 5000 candles (Hyperliquid docs)
        history_options=(("builderFee", False),),  # never approve a builder fee
        api_url_keys=("public", "private"),
    ),
}


def history_kinds() -> tuple[str, ...]:
    """The kinds whose public candle history `warden download` can read."""
    return tuple(k.name for k in KINDS.values() if k.history_client is not None)


def credential_variables() -> tuple[str, ...]:
    """Every exchange secret any kind reads, in registry order."""
    return tuple(dict.fromkeys(v for k in KINDS.values() for v in k.variables))
