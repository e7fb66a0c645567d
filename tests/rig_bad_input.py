"""The bad-input suites' shared rig (issue 8): hypothesis settings (derandomized: the same
examples on every run), the example counter, and the generators of junk (numbers that are not,
mutated records, any JSON) and the sanity check on what an adapter hands on.

``WARDEN_FUZZ_SCALE`` multiplies every ``max_examples`` (benchmarks/reliability_outage.py and
benchmarks/soak.py run the tests/test_bad_input_*.py modules with a larger one);
``WARDEN_FUZZ_REPORT`` names a JSON file that receives the number of examples each property ran.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import ccxt.async_support  # noqa: F401  imported once for the session, as the adapters do
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from trading.errors import ExchangeError
from trading.models import Balance, Candle, Fill, Market, Order, Position, StopOrder, Ticker

SCALE = max(1, int(os.environ.get("WARDEN_FUZZ_SCALE", "1") or 1))
TRIED: Counter[str] = Counter()


def fuzz(examples: int) -> Callable[[Any], Any]:
    """Hypothesis settings for the bad-input suites: derandomized (the same examples on every
    run, for a reproducible CI), no example database, no deadline (a noisy 2-core runner)."""
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.fixture(scope="module", autouse=True)
def _report_examples() -> Iterator[None]:
    yield
    path = os.environ.get("WARDEN_FUZZ_REPORT")
    if path:
        Path(path).write_text(json.dumps(dict(TRIED), indent=1), encoding="utf-8")


def finite(x: float | None, *, positive: bool = False, allow_none: bool = False) -> bool:
    if x is None:
        return allow_none
    return isinstance(x, float | int) and math.isfinite(x) and (x > 0 if positive else True)


def sane(value: object) -> bool:
    """A model an adapter may hand on: no NaN, no infinity, no negative or zero size/price."""
    if isinstance(value, Position):
        return (
            finite(value.size, positive=True)
            and finite(value.entry_price, positive=True)
            and finite(value.unrealized_pnl)
            and finite(value.leverage, allow_none=True)
        )
    if isinstance(value, Order):
        return (
            finite(value.size, positive=True)
            and finite(value.filled)
            and value.filled >= 0
            and (value.average_price is None or finite(value.average_price, positive=True))
            and finite(value.fee)
            and finite(value.ts)
        )
    if isinstance(value, StopOrder):
        return (
            finite(value.size, positive=True)
            and finite(value.trigger_price, positive=True)
            and finite(value.created_at)
            and finite(value.updated_at)
        )
    if isinstance(value, Fill):
        return (
            finite(value.size, positive=True)
            and finite(value.price, positive=True)
            and finite(value.fee)
            and finite(value.ts)
        )
    if isinstance(value, Candle):
        prices = (value.open, value.high, value.low, value.close)
        return all(finite(p, positive=True) for p in prices) and finite(value.volume)
    if isinstance(value, Ticker):
        return finite(value.last, positive=True) and finite(value.ts)
    if isinstance(value, Balance):
        return finite(value.total) and finite(value.free) and finite(value.used)
    if isinstance(value, Market):
        steps = (value.contract_size, value.min_size, value.size_step, value.price_step)
        return all(finite(x, positive=True) for x in steps)
    if isinstance(value, list | tuple):
        return all(sane(v) for v in value)
    if isinstance(value, dict):
        return all(sane(v) for v in value.values())
    return True


# --- generators -----------------------------------------------------------------------------------

NUMBERISH = [
    "",
    "0",
    "-0",
    "-1",
    "-0.01",
    "1e-400",
    "1e999",
    "-1e999",
    "nan",
    "NaN",
    "-nan",
    "sNaN",
    "inf",
    "-inf",
    "Infinity",
    "0x10",
    "1_000",
    " 5 ",
    "12abc",
    "٣",
    "1e308",
    "99999999999999999999999999999999",
]
junk_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.floats().map(repr),
    st.sampled_from(NUMBERISH),
    st.text(max_size=6),
)
junk_json = st.recursive(
    junk_scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def mutated(
    draw: st.DrawFn, valid: Mapping[str, Any], junk: st.SearchStrategy[Any] = junk_scalar
) -> dict[str, Any]:
    """A valid record with some fields removed or replaced by junk, and junk fields added."""
    record = dict(valid)
    for key in draw(st.lists(st.sampled_from(sorted(valid)), max_size=len(valid), unique=True)):
        if draw(st.booleans()):
            del record[key]
        else:
            record[key] = draw(junk)
    record.update(draw(st.dictionaries(st.text(max_size=5), junk, max_size=2)))
    return record


def record(valid: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Mostly a mutated valid record (deep paths), sometimes any JSON at all (wrong shape)."""
    return st.one_of(mutated(valid), mutated(valid), mutated(valid), junk_json)


async def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.02)


scalar = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(max_size=10),
    st.sampled_from(["paper", "okx", "BTC/USDT:USDT", "30m", "fixed", "risk", ""]),
)
value = st.recursive(
    scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def parses_or_bad_payload(fn: Callable[[], object], *errors: type[Exception]) -> object:
    """The value, or None when it raised one of ``errors`` (the module's parse error)."""
    try:
        value = fn()
    except errors:
        return None
    assert sane(value), value
    return value


def returning(value: Any) -> Callable[..., Awaitable[Any]]:
    async def call(*_: Any, **__: Any) -> Any:
        return value

    return call


async def only_port_errors(call: Callable[[], Awaitable[object]]) -> None:
    try:
        value = await call()
    except ExchangeError:
        return
    assert sane(value), value
