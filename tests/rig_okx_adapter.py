"""The OKX adapter pointed at the fake OKX server (the ``fake`` and ``okx`` fixtures), shared by
the OKX adapter suites."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fake_okx import API_KEY, PASSPHRASE, SECRET, FakeOkx
from trading.adapters.okx import OkxExchange
from trading.models import OrderSide

BTC_SYM, ETH_SYM = "BTC/USDT:USDT", "ETH/USDT:USDT"
BUY, SELL = OrderSide.BUY, OrderSide.SELL


def adapter(fake: FakeOkx, **kw: Any) -> OkxExchange:
    """The adapter as bot/exchanges.py builds it, pointed at the fake through api_url."""
    kw.setdefault("rate_limit_ms", 1)
    ex = OkxExchange(
        "okx", "main", API_KEY, SECRET, PASSPHRASE, api_url=fake.url, sandbox=True, **kw
    )
    quick_close(ex)
    return ex


def quick_close(ex: OkxExchange) -> None:
    """ccxt waits 250 ms on close (for TLS shutdown); plain local HTTP needs none."""
    ex._ex.timeout_on_exit = 0


@pytest.fixture
async def fake() -> AsyncIterator[FakeOkx]:
    server = await FakeOkx(demo=True).start()
    try:
        yield server
    finally:
        await server.stop()
    assert server.unknown == [], (
        f"the adapter called endpoints the fake does not know: {server.unknown}"
    )


@pytest.fixture
async def okx(fake: FakeOkx) -> AsyncIterator[OkxExchange]:
    ex = adapter(fake)
    try:
        yield ex
    finally:
        await ex.close()


def no_payload(exc: BaseException) -> None:
    """Error texts carry no raw OKX answer (I8 and 'payloads stay in the adapter')."""
    assert "{" not in str(exc) and "sCode" not in str(exc) and "<html" not in str(exc)
