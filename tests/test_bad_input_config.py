"""Bad input (issue 8), config files: ``[[strategies]]`` params and risk, ``[telegram]``,
``[scheduler]``, ``[accounting]`` (tests/test_config.py covers the other tables): ConfigError or a
Config that every consumer accepts. Property-based (hypothesis, derandomized; shared settings and
generators in tests/rig_bad_input.py).
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import ccxt.async_support  # noqa: F401  imported once for the session, as the adapters do
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import Config, ConfigError, load_config
from bot.config.schema import AccountingConfig, SchedulerConfig, TelegramConfig
from bot.config.strategy import StrategyRiskConfig
from bot.cycles import build_runs
from bot.telegram.settings import settings_from_config
from tests import rig_bad_input
from tests.rig_bad_input import TRIED, fuzz, mutated, scalar, value
from tests.rig_config import to_toml, write
from trading.strategies.registry import REGISTRY

pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
_report_examples = rig_bad_input._report_examples  # the fixture, from tests/rig_bad_input.py

PARAM_NAMES = sorted(
    {f.name for kind in REGISTRY.values() for f in dataclasses.fields(kind.params_type)}
)
CHOICES = ["atr", "percent", "band", "mean_reversion", "breakout", "middle", "opposite_band"]
param_value = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.sampled_from([*CHOICES, "none", "", "ATR"]),
    st.text(max_size=8),
)


def table(model: type[Any], extra: st.SearchStrategy[Any] = value) -> st.SearchStrategy[Any]:
    """A table of ``model``'s keys (and unknown ones) with any values."""
    keys = st.sampled_from(sorted(model.model_fields)) | st.text(max_size=8)
    return st.dictionaries(keys, extra, max_size=5)


def _plausible(annotation: Any) -> st.SearchStrategy[Any]:
    """Values of the right type for a config field, in or around its range."""
    kinds = set(typing.get_args(annotation)) or {annotation}
    if kinds & {float}:
        return st.floats(-1.0, 100_000.0) | st.sampled_from([0.0, 0.5, 1.0, 30.0, 3600.0])
    if kinds & {int}:
        return st.integers(-2, 100_000) | st.sampled_from([0, 1, 6, 23, 24])
    if kinds & {bool}:
        return st.booleans()
    if any(typing.get_origin(k) is list for k in kinds):
        return st.lists(st.integers(-(10**12), 10**12), max_size=3)
    return st.sampled_from(["https://api.telegram.org/bot", "http://127.0.0.1:8081/bot", ""])


def plausible_table(model: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Most keys of ``model`` with values of the right type; one may be anything."""
    fields = {name: _plausible(f.annotation) | scalar for name, f in model.model_fields.items()}
    return st.fixed_dictionaries({}, optional=fields)


def _param(spec: Any) -> st.SearchStrategy[Any]:
    if spec.choices:
        good: st.SearchStrategy[Any] = st.sampled_from(spec.choices)
    elif spec.type is bool:
        good = st.booleans()
    elif spec.type is int:
        good = st.integers(int(spec.min or 0) - 1, int(spec.max or 1000) + 1)
    elif spec.type is float:
        good = st.floats((spec.min or 0) - 1, (spec.max or 1000) + 1)
    else:
        good = st.text(max_size=5)
    return good | good | good | param_value


def kind_params(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """A ``[strategies.params]`` table for ``kind``: its own keys, mostly in range."""
    own = st.fixed_dictionaries({}, optional={s.name: _param(s) for s in REGISTRY[kind].params})
    unknown = st.dictionaries(st.sampled_from(PARAM_NAMES) | st.text(max_size=6), param_value)
    return own | own | own | unknown


strategy_risk = st.fixed_dictionaries(
    {},
    optional={
        "sizing": st.sampled_from(["risk", "fixed", "kelly"]),
        "size": st.floats(-1, 10),
        "risk_per_trade": st.floats(-0.1, 1.1),
        "max_leverage": st.floats(-1, 130),
        "max_notional": st.floats(-1, 1e6),
        "max_open_positions": st.integers(-1, 1001),
    },
) | table(StrategyRiskConfig, scalar)


def _entry(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "name": st.sampled_from(["a", "b", "btc_momentum"]),
            "kind": st.just(kind),
            "exchange": st.sampled_from(["paper", "okx"]),
            "symbols": st.sampled_from(
                [["BTC/USDT:USDT"], ["ETH/USDT:USDT"], ["BTC/USDT:USDT", "ETH/USDT:USDT"]]
            ),
        },
        optional={
            "timeframe": st.sampled_from(["30m", "1m", "1h", "4h", "1d", "2h"]),
            "params": kind_params(kind),
            "risk": strategy_risk,
        },
    )


# an entry that is close to valid (each field plausible, the params checked by the kind), the
# same with fields removed or replaced, or anything at all
near_valid_entry = st.sampled_from(sorted(REGISTRY)).flatmap(_entry)
strategy_entry = st.one_of(
    near_valid_entry,
    near_valid_entry,
    near_valid_entry.flatmap(lambda entry: mutated(entry, value)),
    st.dictionaries(
        st.sampled_from(["name", "kind", "exchange", "symbols", "timeframe", "params", "risk"]),
        value,
        max_size=7,
    ),
)
documents = st.fixed_dictionaries(
    {"exchanges": st.just({"paper": {"kind": "paper"}, "okx": {"kind": "okx", "sandbox": True}})},
    optional={
        "strategies": st.lists(strategy_entry, max_size=3) | value,
        "telegram": plausible_table(TelegramConfig) | table(TelegramConfig),
        "scheduler": plausible_table(SchedulerConfig) | table(SchedulerConfig),
        "accounting": plausible_table(AccountingConfig) | table(AccountingConfig),
    },
)


@fuzz(200)
@given(doc=documents)
def test_strategies_telegram_and_scheduler_tables_load_or_raise_config_error(
    tmp_path: Path, doc: dict[str, Any]
) -> None:
    TRIED["config documents"] += 1
    path = write(tmp_path / "fuzz.toml", to_toml(doc))
    try:
        config = load_config(path, environ={})
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(f"config file {path}:"), message
        assert "Traceback" not in message
        return
    # valid: everything that consumes these tables accepts them
    assert isinstance(config, Config)
    runs = build_runs(config)
    assert [r.name for r in runs] == [s.name for s in config.strategies]
    for run in runs:
        assert run.strategy.lookback >= 1
    settings_from_config(config.telegram)
