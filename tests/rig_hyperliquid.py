"""The Hyperliquid rig: a test wallet, the fake Hyperliquid venue started on a local port (and
the ``venue`` fixture around it), shared by the adapter, stops/leverage, scenario, wiring, chart,
drill and bad-input suites."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.fake_hyperliquid import FakeHyperliquid
from trading.adapters.hyperliquid import HyperliquidExchange
from trading.models import OrderSide

WALLET = "0x5e9ee1089755c3435139848e47e6635505d5a13a"
# a throwaway key that never held anything; the fake does not verify signatures
PRIVATE_KEY = "0x" + "0123456789abcdef" * 4
BTC, ETH = "BTC/USDC:USDC", "ETH/USDC:USDC"
SLIPPAGE = 5.0
GRANTS = ("approveBuilderFee", "setReferrer")


@dataclass
class Venue:
    fake: FakeHyperliquid
    ex: HyperliquidExchange


def assert_nothing_granted(fake: FakeHyperliquid) -> None:
    assert not set(GRANTS) & set(fake.action_types), fake.action_types
    assert all("builder" not in a for a in fake.actions), fake.actions


async def start_venue(fake: FakeHyperliquid, timeout_ms: int = 10_000, **settings: Any) -> Venue:
    url = await fake.start()
    ex = HyperliquidExchange(
        "hyperliquid",
        "main",
        WALLET,
        PRIVATE_KEY,
        api_url=url,
        slippage_percent=SLIPPAGE,
        timeout_ms=timeout_ms,
        enable_rate_limit=False,  # ccxt's client-side throttle only slows the tests down
        **settings,
    )
    ex.client.timeout_on_exit = 0  # ccxt waits 250 ms on close for TLS; the fake is plain HTTP
    return Venue(fake, ex)


async def stop_venue(v: Venue) -> None:
    await v.ex.close()
    await v.fake.stop()
    assert_nothing_granted(v.fake)


BUY, SELL = OrderSide.BUY, OrderSide.SELL


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    v = await start_venue(FakeHyperliquid(WALLET))
    try:
        yield v
    finally:
        await stop_venue(v)


async def long_btc(v: Venue, size: float = 0.001, cid: str = "wd0a1b2ce1") -> None:
    order = await v.ex.place_market_order(BTC, BUY, size, cid)
    assert order.filled == size
