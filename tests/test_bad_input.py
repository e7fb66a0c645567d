"""Bad input (issue 8): whatever arrives, never a crash, always a clear error, never an order.

Property-based (hypothesis, derandomized: the same examples on every run) over
- Telegram command text and arguments, through the argument parsers and through the real
  python-telegram-bot Application against the fake Bot API (the reply is one clear line, or the
  problem plus the usage; the paper exchange never sees an order);
- config files: ``[[strategies]]`` params and risk, ``[telegram]``, ``[scheduler]``,
  ``[accounting]`` (tests/test_config.py covers the other tables): ConfigError or a Config
  that every consumer accepts;
- CLI arguments: ``build_parser().parse_args`` and ``main()`` in this process: exit codes 0, 1,
  2 or 75 only, no exception, no order;
- exchange payloads: the OKX and Hyperliquid parse functions and the OKX and Hyperliquid
  adapters fed missing fields, wrong types, NaN/huge/negative numbers and wrong JSON: the
  parse error (``BadPayload``/``Malformed``) or the port's taxonomy (``ExchangeError``), never
  a position, order, stop or fill with a NaN, infinite or negative size or price.

Plus a stranger flooding the bot, and a secrets scan of everything a full run leaves behind.

``WARDEN_FUZZ_SCALE`` multiplies every ``max_examples`` (benchmarks/reliability_outage.py runs
this file with a larger one); ``WARDEN_FUZZ_REPORT`` names a JSON file that receives the number
of examples each property ran.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import io
import json
import logging
import math
import os
import re
import sqlite3
import sys
import time
import typing
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt.async_support  # noqa: F401  imported once for the session, as the adapters do
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bot.config.secrets
from bot import cli
from bot.config import Config, ConfigError, load_config
from bot.config.schema import AccountingConfig, SchedulerConfig, TelegramConfig
from bot.config.secrets import load_secrets, set_process_secrets
from bot.config.strategy import StrategyRiskConfig
from bot.cycles import build_runs
from bot.daemon import Daemon
from bot.logs import JsonFormatter, KeyValueFormatter, redactor, setup_logging
from bot.telegram import args as A
from bot.telegram import start_telegram
from bot.telegram.settings import settings_from_config
from storage.db import Database
from tests.conftest import child_env, warden_cmd
from tests.fake_hyperliquid import FakeHyperliquid
from tests.fake_okx import API_KEY as FAKE_OKX_KEY
from tests.fake_okx import PASSPHRASE as FAKE_OKX_PASSPHRASE
from tests.fake_okx import FakeOkx
from tests.fake_telegram import BOT_USER, FakeTelegram
from tests.rig_config import to_toml, write
from tests.rig_cycles import ETH as ETH_PAPER
from tests.rig_cycles import PATH, WARMUP
from tests.rig_outages import fast_reads, outbox
from tests.rig_secrets import forms
from tests.telegram_rig import OWNER, Rig, running_bot
from trading.adapters import hyperliquid_parse as hp
from trading.adapters import okx_parse as op
from trading.adapters.hyperliquid import HyperliquidExchange
from trading.adapters.okx import OkxExchange
from trading.errors import ExchangeError
from trading.marketdata import data_filename, write_candles
from trading.models import (
    Balance,
    Candle,
    Fill,
    Market,
    Order,
    Position,
    PositionSide,
    StopOrder,
    Ticker,
)
from trading.strategies.registry import REGISTRY

pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")

SCALE = max(1, int(os.environ.get("WARDEN_FUZZ_SCALE", "1") or 1))
TRIED: Counter[str] = Counter()


def fuzz(examples: int) -> Callable[[Any], Any]:
    """Hypothesis settings for this file: derandomized (the same examples on every run, for a
    reproducible CI), no example database, no deadline (a noisy 2-core runner)."""
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


# --- generators -------------------------------------------------------------------------------

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


# --- Telegram: the argument parsers -----------------------------------------------------------

SYMBOLS = ["BTC/USDT:USDT", "ETH/USDT:USDT", "ETH/USDC:USDC"]
ARG_WORDS = [
    "btc",
    "BTC",
    "btcusdt",
    "BTC/USDT:USDT",
    "eth",
    "ETHUSDT",
    "doge",
    "all",
    "ALL",
    "long",
    "short",
    "LONG",
    "sideways",
    "@paper",
    "@nosuch",
    "@",
    "@@paper",
    "0.01",
    "0.00001",
    "65600",
    "3650",
    "3651",
    "btc_momentum",
    "momo",
    *NUMBERISH,
]
word = st.sampled_from([w for w in ARG_WORDS if w.strip() and " " not in w]) | st.text(
    alphabet=st.characters(blacklist_categories=["Cc", "Cs", "Zs", "Zl", "Zp"]),
    min_size=1,
    max_size=10,
)
words = st.lists(word, max_size=5)


@fuzz(300)
@given(command=st.sampled_from(sorted(A.USAGE)), args=words, known=st.sampled_from([SYMBOLS, []]))
def test_argument_parsers_return_a_valid_value_or_a_usage_error(
    command: str, args: list[str], known: list[str]
) -> None:
    TRIED["telegram args"] += 1
    checks: list[Callable[[], object]] = [
        lambda: A.take_exchange(command, args, ["paper", "okx"]),
        lambda: A.days(command, args),
        lambda: A.no_args(command, args),
    ]
    for text in args[:2]:
        checks += [
            functools.partial(A.resolve_symbol, command, text, known),
            functools.partial(A.positive_number, command, text, "SIZE"),
            functools.partial(A.side, command, text),
        ]
    for check in checks:
        try:
            value = check()
        except A.UsageError as exc:
            assert exc.problem and "\n" not in exc.problem
            assert exc.usage == A.USAGE[command]
            continue
        if isinstance(value, PositionSide):
            assert value in (PositionSide.LONG, PositionSide.SHORT)
        elif isinstance(value, float):
            assert math.isfinite(value) and value > 0
        elif isinstance(value, int):
            assert 1 <= value <= A.MAX_DAYS
        elif isinstance(value, str):
            assert value in known
        elif isinstance(value, tuple):
            rest, chosen = value
            assert chosen in (None, "paper", "okx") and all(not a.startswith("@") for a in rest)


# --- Telegram: the real bot -------------------------------------------------------------------

COMMANDS = [*sorted(A.USAGE), "start", "nosuch", "STATUS", "open@warden_test_bot", "status@other"]
T_SYMBOL = st.sampled_from(["btc", "BTC/USDT:USDT", "eth", "ETHUSDT", "doge", "all", "usdt"]) | word
T_SIDE = st.sampled_from(["long", "short", "LONG", "sideways"]) | word
T_NUMBER = st.sampled_from([*NUMBERISH, "0.01", "0.001", "65600", "72000", "1", "30"]) | word
T_EXCHANGE = st.sampled_from(["@paper", "@nosuch", "@", "paper"]) | word


def _cmd(name: str, *parts: object) -> str:
    flat: list[str] = []
    for p in parts:
        flat.extend(p if isinstance(p, list) else [str(p)])
    return " ".join([f"/{name}", *[w for w in flat if w]])


optional = st.lists(T_NUMBER | T_EXCHANGE | T_SIDE, max_size=2)
command_text = st.one_of(
    # any command with any words
    st.builds(lambda name, args: _cmd(name, args), st.sampled_from(COMMANDS), words),
    # the shapes the commands expect, with bad values in them
    st.builds(lambda *a: _cmd("open", *a), T_SYMBOL, T_SIDE, T_NUMBER, optional),
    st.builds(lambda *a: _cmd("close", *a), T_SYMBOL, st.lists(T_EXCHANGE, max_size=2)),
    st.builds(
        lambda *a: _cmd(*a), st.sampled_from(["audit", "pnl"]), st.lists(T_NUMBER, max_size=2)
    ),
    st.builds(lambda *a: _cmd(*a), st.sampled_from(["pause", "resume", "cycle"]), optional),
)


@pytest.fixture
async def bot_rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with running_bot(tmp_path) as rig:
        yield rig


def internal_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    bad = ("telegram.command_failed", "telegram.handler_error", "telegram.callback_failed")
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(bad)]


@fuzz(80)
@given(text=command_text)
async def test_any_command_text_gets_one_clear_answer_and_never_an_order(
    bot_rig: Rig, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    TRIED["telegram commands"] += 1
    n = len(bot_rig.fake.calls)
    bot_rig.fake.command(OWNER, text)
    # the answer: a message, or a photo with the text as caption (/pnl, /chart)
    reply = await bot_rig.fake.wait_for(
        lambda calls: next((c for c in calls[n:] if c in bot_rig.fake.delivered(OWNER)), None),
        timeout=20,
    )
    body = str(reply.params.get("text") or reply.params.get("caption"))
    assert "(details in the log)" not in body, (text, body)  # a bug, not a clear error
    if "usage:" in body:  # a usage error: the problem, then the usage, nothing else
        problem, usage = body.split("\n")
        assert problem.strip() and usage.startswith("usage: <code>/"), body
    assert internal_errors(caplog) == []
    ex = bot_rig.acct.exchange
    assert await ex.trades() == [] and await ex.positions() == []  # never an order


# --- Telegram: a stranger flooding the bot ----------------------------------------------------

STRANGERS = (6666, 7777, 8888)
FLOOD = ["/status", "/close all", "/open btc long 0.01", "/pause", "/cycle", "hello", "/start"]


def forged_press(fake: Any, user: int, data: str) -> None:
    """A button press on a message the stranger made up (the bot never sent it)."""
    message = {
        "message_id": 1,
        "date": int(time.time()),
        "chat": {"id": user, "type": "private", "first_name": "x"},
        "from": BOT_USER,
        "text": "Close at market?",
    }
    fake.push(
        {
            "callback_query": {
                "id": f"forged{user}{time.monotonic_ns()}",
                "from": {"id": user, "is_bot": False, "first_name": "x"},
                "chat_instance": "ci",
                "message": message,
                "data": data,
            }
        }
    )


async def test_a_stranger_flood_has_no_effect_no_answer_and_the_owner_is_still_served(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path) as rig:
        fake = rig.fake
        served = 0
        for i in range(300):
            user = STRANGERS[i % len(STRANGERS)]
            if i % 10 == 9:
                forged_press(fake, user, "cf:" + "a" * 16)
            else:
                fake.command(user, FLOOD[i % len(FLOOD)])
            if i % 60 == 30:  # the owner, in the middle of it
                assert "Warden status" in await rig.reply_text("/status")
                served += 1
        await wait_until(lambda: rig.handle.gate.refused >= 300, "the gate saw every update")
        assert "Warden status" in await rig.reply_text("/status")
        await rig.deliver_all()
        journal = rig.acct.journal
        assert not await journal.is_paused(rig.acct.scope)
        assert await rig.acct.exchange.trades() == []
        assert await journal.intents() == []
        alerts = await rig.daemon.outbox.due()  # nothing left: all delivered
        assert alerts == []
        async with rig.db.read() as conn:
            cur = await conn.execute("SELECT key, text FROM alert_outbox ORDER BY id")
            rows = [(r[0], r[1]) for r in await cur.fetchall()]
    assert served == 5
    assert rig.handle.gate.refused == 300
    # one alert to the owner per stranger, however many times they tried
    assert sorted(k for k, _ in rows) == [f"stranger:{u}" for u in STRANGERS]
    assert all("no answer" in t for _, t in rows)
    # and not a single call toward a stranger's chat
    toward = [
        c
        for c in fake.calls
        if int(c.params.get("chat_id", 0) or 0) in STRANGERS
        or c.method in ("answerCallbackQuery", "editMessageText", "editMessageReplyMarkup")
    ]
    assert toward == []


async def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.02)


# --- config files ---------------------------------------------------------------------------

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


# --- the command line -------------------------------------------------------------------------


def _cli_spec() -> dict[str, tuple[list[tuple[str, bool]], int]]:
    """Each command of the real parser: its options (and whether each takes a value) and how
    many positional arguments it has."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    spec = {}
    for name, p in sub.choices.items():
        if name == "paper":  # one nested subcommand: `paper price SYMBOL PRICE`
            sub2 = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
            p = sub2.choices["price"]
        opts = [(a.option_strings[-1], a.nargs != 0) for a in p._actions if a.option_strings]
        spec[name] = (opts, sum(1 for a in p._actions if not a.option_strings))
    return spec


CLI_SPEC = _cli_spec()
SUBCOMMANDS = sorted(CLI_SPEC)
CLI_WORDS = [
    "paper",
    "price",
    "BTC/USDT:USDT",
    "ETH/USDT:USDT",
    "btc",
    "all",
    "long",
    "short",
    "DEBUG",
    "INFO",
    "0.001",
    "0.01",
    "66000",
    "60000",
    "2026-01-01",
    "yesterday",
    "silent-stop",
    "nosuch",
    "momo",
    *[w for w in NUMBERISH if w],
]
cli_value = st.sampled_from(CLI_WORDS) | st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=8
)
ALL_FLAGS = sorted({flag for opts, _ in CLI_SPEC.values() for flag, _ in opts} | {"--", "-"})
cli_token = st.sampled_from(ALL_FLAGS) | cli_value


@st.composite
def shaped_argv(draw: st.DrawFn, commands: list[str], leave_out: frozenset[str]) -> list[str]:
    """A command with its own options (values good or bad) and positionals, shuffled."""
    name = draw(st.sampled_from(commands))
    opts, positionals = CLI_SPEC[name]
    opts = [o for o in opts if o[0] not in leave_out]
    parts: list[list[str]] = [[draw(cli_value)] for _ in range(draw(st.integers(0, positionals)))]
    for flag, takes_value in draw(st.lists(st.sampled_from(opts), max_size=4)) if opts else []:
        parts.append([flag, draw(cli_value)] if takes_value else [flag])
    order = draw(st.permutations(range(len(parts))))
    head = [name, "price"] if name == "paper" else [name]
    return head + [w for i in order for w in parts[i]]


def argv_for(
    commands: list[str], leave_out: frozenset[str] = frozenset()
) -> st.SearchStrategy[list[str]]:
    anything = st.builds(
        lambda h, rest: [h, *rest],
        st.sampled_from(commands) | cli_token,
        st.lists(cli_token.filter(lambda t: t not in leave_out), max_size=6),
    )
    return st.one_of(anything, shaped_argv(commands, leave_out), shaped_argv(commands, leave_out))


@fuzz(300)
@given(argv=argv_for(SUBCOMMANDS))
def test_any_argv_parses_or_exits_2_and_help_exits_0(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    TRIED["cli parse"] += 1
    try:
        args = cli.build_parser().parse_args(argv)
    except SystemExit as exc:
        assert exc.code in (0, 2), (argv, exc.code)
        capsys.readouterr()
        return
    assert isinstance(args, argparse.Namespace) and args.command in CLI_SPEC


# commands that run here in-process: not `run` (it would not return), `drill`, `backtest` and
# `download` (long, or the network), nor `lock --hold` or the flags that write files
IN_PROCESS = ["status", "open", "close", "pause", "resume", "audit", "pnl", "doctor", "lock"]
IN_PROCESS += ["cycle", "paper"]
NOT_IN_PROCESS = frozenset({"--hold", "--csv", "--png", "--out", "--data", "--help", "-h"})
WARDEN_TOML = """
[storage]
path = "warden.db"
[exchanges.paper]
kind = "paper"
[risk]
max_notional = 0.000001   # every entry is refused by the risk limit: bad input never trades
"""


@contextlib.contextmanager
def in_process_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """main() sets up logging and the process secrets: put them back after each run."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal: open/close need --yes
    try:
        yield
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in handlers:
            root.addHandler(h)
        root.setLevel(level)
        bot.config.secrets._process = None


def paper_orders(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if "paper_order" not in tables:
            return 0
        return int(conn.execute("SELECT COUNT(*) FROM paper_order").fetchone()[0])
    finally:
        conn.close()


@fuzz(80)
@given(argv=argv_for(IN_PROCESS, NOT_IN_PROCESS))
def test_main_with_any_argv_exits_0_1_2_or_75_and_never_trades(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    TRIED["cli main"] += 1
    (tmp_path / "warden.toml").write_text(WARDEN_TOML, encoding="utf-8")
    argv = [a for a in argv if a not in NOT_IN_PROCESS]
    with in_process_cli(monkeypatch):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse: usage error (2)
            code = exc.code if isinstance(exc.code, int) else 2
    out = capsys.readouterr()
    assert code in (0, 1, 2, 75), (argv, code, out.err[-2000:])
    assert "internal error" not in out.err, (argv, out.err[-2000:])
    assert "Traceback" not in out.err, (argv, out.err[-2000:])
    assert paper_orders(tmp_path / "warden.db") == 0


# --- exchange payloads: OKX -----------------------------------------------------------------

CONTRACT = op.Contract(
    symbol="BTC/USDT:USDT",
    inst_id="BTC-USDT-SWAP",
    base="BTC",
    quote="USDT",
    ct_val=Decimal("0.01"),
    lot=Decimal("0.01"),
    min_sz=Decimal("0.01"),
    tick=Decimal("0.1"),
)
OKX_ORDER = {
    "instId": "BTC-USDT-SWAP",
    "ordId": "7001",
    "clOrdId": "wdabc123e1",
    "side": "buy",
    "sz": "1",
    "accFillSz": "1",
    "avgPx": "69060.1",
    "state": "filled",
    "reduceOnly": "false",
    "fee": "-0.03",
    "cTime": "1767225600000",
    "uTime": "1767225600100",
}
OKX_ALGO = {
    "instId": "BTC-USDT-SWAP",
    "algoId": "8001",
    "algoClOrdId": "wdabc123s2",
    "side": "sell",
    "sz": "1",
    "slTriggerPx": "65600",
    "state": "live",
    "failCode": "",
    "reduceOnly": "true",
    "ordType": "conditional",
    "cTime": "1767225600000",
    "uTime": "1767225600100",
}
OKX_POSITION = {
    "instId": "BTC-USDT-SWAP",
    "pos": "1",
    "posSide": "net",
    "avgPx": "69060.1",
    "upl": "1.5",
    "lever": "5",
}
OKX_FILL = {
    "instId": "BTC-USDT-SWAP",
    "ordId": "7001",
    "clOrdId": "wdabc123e1",
    "billId": "9001",
    "side": "buy",
    "fillSz": "1",
    "fillPx": "69060.1",
    "fee": "-0.03",
    "ts": "1767225600100",
}
OKX_BALANCE = {"ccy": "USDT", "eq": "10000", "availEq": "9000", "frozenBal": "1000"}
OKX_MARKET: dict[str, Any] = {
    "symbol": "BTC/USDT:USDT",
    "base": "BTC",
    "quote": "USDT",
    "settle": "USDT",
    "swap": True,
    "linear": True,
    "info": {
        "instId": "BTC-USDT-SWAP",
        "ctVal": "0.01",
        "lotSz": "0.01",
        "minSz": "0.01",
        "tickSz": "0.1",
        "state": "live",
    },
}
OKX_CONFIG = {"posMode": "net_mode", "acctLv": "2", "perm": "read_only,trade"}


def parses_or_bad_payload(fn: Callable[[], object], *errors: type[Exception]) -> object:
    """The value, or None when it raised one of ``errors`` (the module's parse error)."""
    try:
        value = fn()
    except errors:
        return None
    assert sane(value), value
    return value


# Functions typed to take a record (a Mapping) get records with any field missing or wrong;
# those that take a whole answer get any JSON at all.
@fuzz(200)
@given(
    order=mutated(OKX_ORDER),
    algo=mutated(OKX_ALGO),
    position=mutated(OKX_POSITION),
    fill=mutated(OKX_FILL),
    balance=record(OKX_BALANCE),
    market=st.one_of(
        mutated(OKX_MARKET),
        st.builds(lambda i: {**OKX_MARKET, "info": i}, record(OKX_MARKET["info"])),
    ),
    account=record(OKX_CONFIG),
    data=junk_json,
    row=st.lists(junk_scalar, max_size=7) | junk_json,
    text=st.text(max_size=40) | st.builds(lambda j: "okx " + json.dumps(j), junk_json),
)
def test_okx_payloads_parse_or_raise_bad_payload(
    order: Any,
    algo: Any,
    position: Any,
    fill: Any,
    balance: Any,
    market: Any,
    account: Any,
    data: Any,
    row: Any,
    text: str,
) -> None:
    TRIED["okx payloads"] += 1
    bad = op.BadPayload
    parses_or_bad_payload(lambda: op.order_from(order, CONTRACT), bad)
    parses_or_bad_payload(lambda: op.stop_from(algo, CONTRACT), bad)
    parses_or_bad_payload(lambda: op.stop_state(algo), bad)
    parses_or_bad_payload(lambda: op.position_from(position, CONTRACT), bad)
    parses_or_bad_payload(lambda: op.fill_from(fill, CONTRACT, "8001"), bad)
    parses_or_bad_payload(lambda: op.balance_from({"data": [{"details": [balance]}]}), bad)
    parses_or_bad_payload(lambda: op.balance_from({"data": data}), bad)
    parses_or_bad_payload(lambda: op.account_config_from({"data": [account]}), bad)
    parses_or_bad_payload(lambda: op.account_config_from({"data": data}), bad)
    parses_or_bad_payload(lambda: op.candle_from(row), bad)
    parses_or_bad_payload(lambda: op.triggered_orders([algo, order]), bad)
    parses_or_bad_payload(lambda: op.oldest_id([order, fill], "ordId", "cTime"), bad)
    contract = parses_or_bad_payload(lambda: op.contract_from(market), bad)
    if isinstance(contract, op.Contract):
        assert sane(contract.market), contract
    code, msg = op.error_payload(text)
    assert code is None or isinstance(code, str)
    assert msg is None or isinstance(msg, str)
    assert isinstance(op.short_text(text), str)


# --- exchange payloads: Hyperliquid -----------------------------------------------------------

HL_ORDER = {
    "coin": "BTC",
    "side": "B",
    "limitPx": "69100.0",
    "sz": "0.0",
    "origSz": "0.01",
    "oid": 123,
    "timestamp": 1767225600000,
    "cloid": hp.to_cloid("wdabc123e1"),
    "reduceOnly": False,
    "isTrigger": False,
    "orderType": "Market",
}
HL_STOP = {
    **HL_ORDER,
    "side": "A",
    "oid": 124,
    "sz": "0.01",
    "isTrigger": True,
    "triggerPx": "65600.0",
    "orderType": "Stop Market",
    "reduceOnly": True,
}
HL_FILL = {
    "coin": "BTC",
    "px": "69060.1",
    "sz": "0.01",
    "side": "B",
    "time": 1767225600100,
    "oid": 123,
    "fee": "0.03",
    "dir": "Open Long",
}
HL_POSITION = {
    "coin": "BTC",
    "szi": "0.01",
    "entryPx": "69060.1",
    "unrealizedPnl": "1.5",
    "leverage": {"type": "cross", "value": 5},
}
HL_MARKET: dict[str, Any] = {
    "swap": True,
    "settle": "USDC",
    "active": True,
    "base": "BTC",
    "quote": "USDC",
    "baseName": "BTC",
    "precision": {"amount": 0.00001, "price": 0.1},
    "info": {},
}


def symbol_of(coin: object) -> str | None:
    return "BTC/USDC:USDC" if coin == "BTC" else None


@fuzz(200)
@given(
    order=mutated(HL_ORDER),
    stop=mutated(HL_STOP),
    status=st.sampled_from(["open", "filled", "triggered", "canceled", "rejected", "x"])
    | junk_scalar,
    fill=mutated(HL_FILL),
    position=mutated(HL_POSITION),
    state=junk_json,
    market=st.one_of(
        mutated(HL_MARKET),
        st.builds(lambda p: {**HL_MARKET, "precision": p}, record(HL_MARKET["precision"])),
    ),
    payload=junk_json,
    text=st.text(max_size=40) | st.builds(lambda j: "hyperliquid " + json.dumps(j), junk_json),
)
def test_hyperliquid_payloads_parse_or_raise_malformed(
    order: Any,
    stop: Any,
    status: Any,
    fill: Any,
    position: Any,
    state: Any,
    market: Any,
    payload: Any,
    text: str,
) -> None:
    TRIED["hyperliquid payloads"] += 1
    bad = hp.Malformed
    status_text = status if isinstance(status, str) else "open"
    parses_or_bad_payload(
        lambda: hp.parse_order(order, status_text, "BTC/USDC:USDC", [fill], None), bad
    )
    parses_or_bad_payload(lambda: hp.parse_stop(stop, status_text, status, "BTC/USDC:USDC"), bad)
    parses_or_bad_payload(lambda: hp.parse_fill(fill, "BTC/USDC:USDC", {"123": order}), bad)
    parses_or_bad_payload(lambda: hp.fill_summary([fill], "123"), bad)
    parses_or_bad_payload(
        lambda: hp.parse_positions({"assetPositions": [{"position": position}]}, symbol_of), bad
    )
    parses_or_bad_payload(lambda: hp.parse_positions({"assetPositions": state}, symbol_of), bad)
    parses_or_bad_payload(lambda: hp.mark_prices(payload), bad)
    parses_or_bad_payload(lambda: hp.parse_order_status(payload), bad)
    parses_or_bad_payload(lambda: hp.open_orders(payload), bad)
    parses_or_bad_payload(lambda: hp.latest_by_oid([{"order": stop, "status": status}]), bad)
    parses_or_bad_payload(
        lambda: hp.ended_stops(
            [{"order": stop, "status": status, "statusTimestamp": 1}], symbol_of
        ),
        bad,
    )
    parses_or_bad_payload(lambda: hp.ended_stops(payload, symbol_of), bad)
    parses_or_bad_payload(lambda: hp.parse_fills([fill], [{"order": order}], symbol_of), bad)
    parses_or_bad_payload(lambda: hp.parse_fills(payload, state, symbol_of), bad)
    parses_or_bad_payload(lambda: hp.parse_markets({"BTC/USDC:USDC": market}), bad)
    if isinstance(status, str):
        assert hp.stop_state(status)[0] is not None
    assert hp.from_cloid(payload) is None or isinstance(hp.from_cloid(payload), str)
    assert isinstance(hp.exchange_reason(text), str)


# --- exchange payloads through the adapters -------------------------------------------------


def returning(value: Any) -> Callable[..., Awaitable[Any]]:
    async def call(*_: Any, **__: Any) -> Any:
        return value

    return call


@pytest.fixture
async def okx_junk() -> AsyncIterator[OkxExchange]:
    okx = OkxExchange("okx", "main", "key", "secret", "pass", sandbox=True)
    okx._ex.load_markets = returning({"BTC/USDT:USDT": OKX_MARKET})
    okx._ex.privateGetAccountConfig = returning({"code": "0", "data": [OKX_CONFIG]})
    try:
        yield okx
    finally:
        await okx.close()


async def only_port_errors(call: Callable[[], Awaitable[object]]) -> None:
    try:
        value = await call()
    except ExchangeError:
        return
    assert sane(value), value


@fuzz(100)
@given(
    order=mutated(OKX_ORDER),
    algo=mutated(OKX_ALGO),
    position=mutated(OKX_POSITION),
    fill=mutated(OKX_FILL),
    balance=record(OKX_BALANCE),
    row=st.lists(junk_scalar, max_size=7),
    wrapper=junk_json,
)
async def test_the_okx_adapter_turns_any_answer_into_models_or_port_errors(
    okx_junk: OkxExchange,
    order: Any,
    algo: Any,
    position: Any,
    fill: Any,
    balance: Any,
    row: list[Any],
    wrapper: Any,
) -> None:
    TRIED["okx adapter answers"] += 1
    ex, sym = okx_junk._ex, "BTC/USDT:USDT"
    ex.fetch_positions = returning([{"info": position}, wrapper])
    ex.fetch_balance = returning({"info": {"data": [{"details": [balance]}]}})
    ex.fetch_ohlcv = returning([row, wrapper])
    ex.fetch_ticker = returning(wrapper if isinstance(wrapper, dict) else {"last": wrapper})
    ex.fetch_order = returning({"info": order})
    ex.fetch_open_orders = returning([{"info": order}, {"info": algo}, wrapper])
    ex.fetch_my_trades = returning([{"info": fill}])
    ex.fetch_closed_orders = returning([{"info": algo}])
    ex.fetch_canceled_orders = returning([{"info": algo}])
    ex.fetch_time = returning(wrapper)
    ex.create_order = returning(wrapper if isinstance(wrapper, dict) else {"id": wrapper})
    calls: list[Callable[[], Awaitable[object]]] = [
        okx_junk.positions,
        okx_junk.balance,
        lambda: okx_junk.candles(sym, "30m"),
        lambda: okx_junk.ticker(sym),
        lambda: okx_junk.get_order(sym, client_id="wdabc123e1"),
        lambda: okx_junk.get_stop(sym, client_id="wdabc123s2"),
        okx_junk.open_orders,
        okx_junk.open_stops,
        okx_junk.stop_history,
        okx_junk.fills,
        okx_junk.server_time,
    ]
    for call in calls:
        await only_port_errors(call)


@pytest.fixture
async def hl_junk() -> AsyncIterator[HyperliquidExchange]:
    from tests.rig_hyperliquid import PRIVATE_KEY, WALLET

    hl = HyperliquidExchange("hl", "main", WALLET, PRIVATE_KEY, sandbox=True)
    hl.client.load_markets = returning({"BTC/USDC:USDC": HL_MARKET})
    try:
        yield hl
    finally:
        await hl.client.close()


@fuzz(100)
@given(
    order=mutated(HL_ORDER),
    stop=mutated(HL_STOP),
    fill=mutated(HL_FILL),
    position=mutated(HL_POSITION),
    status=st.sampled_from(["open", "filled", "canceled", "rejected"]) | junk_scalar,
    wrapper=junk_json,
    row=st.lists(junk_scalar, max_size=7),
)
async def test_the_hyperliquid_adapter_turns_any_answer_into_models_or_port_errors(
    hl_junk: HyperliquidExchange,
    order: Any,
    stop: Any,
    fill: Any,
    position: Any,
    status: Any,
    wrapper: Any,
    row: list[Any],
) -> None:
    TRIED["hyperliquid adapter answers"] += 1
    answers: dict[str, Any] = {
        "clearinghouseState": {"assetPositions": [{"position": position}], "time": wrapper},
        "metaAndAssetCtxs": [{"universe": [{"name": "BTC"}]}, [{"markPx": wrapper}]],
        "allMids": {"BTC": wrapper},
        "userFills": [fill, wrapper],
        "orderStatus": {"status": "order", "order": {"order": order, "status": status}},
        "frontendOpenOrders": [order, stop, wrapper],
        "historicalOrders": [{"order": stop, "status": status, "statusTimestamp": wrapper}],
    }

    async def info(request: dict[str, Any], *_: Any, **__: Any) -> Any:
        return answers.get(request.get("type", ""), wrapper)

    hl_junk.client.publicPostInfo = info
    hl_junk.client.fetch_balance = returning({"USDC": {"total": wrapper, "used": 0, "free": 1}})
    hl_junk.client.fetch_ohlcv = returning([row])
    sym = "BTC/USDC:USDC"
    calls: list[Callable[[], Awaitable[object]]] = [
        hl_junk.positions,
        hl_junk.balance,
        lambda: hl_junk.candles(sym, "30m"),
        lambda: hl_junk.ticker(sym),
        lambda: hl_junk.get_order(sym, client_id="wdabc123e1"),
        lambda: hl_junk.get_stop(sym, client_id="wdabc123s2"),
        hl_junk.open_orders,
        hl_junk.open_stops,
        hl_junk.stop_history,
        hl_junk.fills,
        hl_junk.server_time,
    ]
    for call in calls:
        await only_port_errors(call)


# --- secrets: a full run, then every byte it left behind ---------------------------------------

SCAN_SECRETS = {
    "TELEGRAM_BOT_TOKEN": "424242:AAfull-run-tg-token-Zx9Qw7Er5Ty",
    # the fake OKX checks the key and passphrase (its own), the secret only signs
    "OKX_API_KEY": FAKE_OKX_KEY,
    "OKX_API_SECRET": 'full-run-okx-sekrit-"q\\uote-ü-4b3a2918',
    "OKX_API_PASSPHRASE": FAKE_OKX_PASSPHRASE,
    "HYPERLIQUID_WALLET_ADDRESS": "0xfeedfacefeedface" + "c0ffee00" * 3,
    "HYPERLIQUID_PRIVATE_KEY": "0x" + "5eed1e55" * 8,
}
SCAN_FRAGMENTS = ["AAfull-run-tg", "okx-sekrit", "feedfacefeedface", "5eed1e555eed1e55"]


def leak_needles() -> list[str]:
    found = {f for s in SCAN_SECRETS.values() for f in forms(s)} | set(SCAN_FRAGMENTS)
    # the wallet as Hyperliquid and ccxt write it: lower case, and checksummed (mixed case)
    wallet = SCAN_SECRETS["HYPERLIQUID_WALLET_ADDRESS"]
    found |= {wallet.lower(), wallet.upper()[2:], wallet[2:]}
    return sorted(found)


def leaks_in(blob: bytes) -> list[str]:
    out = []
    lower = blob.lower()
    for needle in leak_needles():
        for encoding in ("utf-8", "utf-16-le"):
            raw = needle.encode(encoding)
            if raw in blob or (needle.startswith("0x") and raw.lower() in lower):
                out.append(f"{needle!r} ({encoding})")
    return out


def test_the_leak_finder_finds_each_secret_in_each_form() -> None:
    for secret in SCAN_SECRETS.values():
        for form in forms(secret):
            assert leaks_in(f"x {form} y".encode()), form
        assert leaks_in(secret.encode("utf-16-le"))
    wallet = SCAN_SECRETS["HYPERLIQUID_WALLET_ADDRESS"]
    assert leaks_in(("0x" + wallet[2:].upper()).encode())  # any case
    assert not leaks_in(b"okx:main hl:main *** 0xfeedface 424242")


def full_run_toml(run: Path, okx_url: str, hl_url: str, tg_url: str) -> str:
    return f"""
[storage]
path = "{run / "warden.db"}"
[logging]
level = "DEBUG"
[guardian]
verify_delay_seconds = 0.05
watchdog_seconds = 1.0
[scheduler]
outbox_seconds = 0.2
[telegram]
api_base_url = "{tg_url}"
poll_timeout = 1.0
confirm_timeout_seconds = 30.0
lease_wait_seconds = 10.0
retry_base_seconds = 0.05
retry_max_seconds = 0.4
[exchanges.paper]
kind = "paper"
[exchanges.paper.faults]
seed = 3
stop_silent_fail = 1
[exchanges.paper.replay]
data = "{run / "data"}"
seconds_per_candle = 0.25
warmup_candles = {WARMUP}
[exchanges.okx]
kind = "okx"
sandbox = true
api_url = "{okx_url}"
[exchanges.hl]
kind = "hyperliquid"
sandbox = true
api_url = "{hl_url}"
[[strategies]]
name = "momo"
kind = "momentum_breakout"
exchange = "paper"
symbols = ["ETH/USDT:USDT"]
timeframe = "30m"
[strategies.params]
channel = 5
exit_channel = 3
stop = "percent"
stop_percent = 2.0
"""


async def warden_child(cwd: Path, *args: str) -> tuple[int, bytes]:
    """The real CLI in a child process; the fakes serve from this loop, so it must not block."""
    proc = await asyncio.create_subprocess_exec(
        *warden_cmd(*args),
        cwd=cwd,
        env=child_env(**SCAN_SECRETS, TELEGRAM_ALLOWED_USER_IDS=str(OWNER)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out + b"\n" + err


@contextlib.contextmanager
def production_logging(run: Path, secrets: Any) -> Iterator[None]:
    """Logging as `warden run --log-level DEBUG` sets it up (redaction included), plus the
    same records into a text and a JSON log file in the run's folder."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    setup_logging("DEBUG", "text", secrets.secret_strings())
    files: list[logging.Handler] = [
        logging.FileHandler(run / "warden.log", encoding="utf-8"),
        logging.FileHandler(run / "warden.jsonl", encoding="utf-8"),
    ]
    files[0].setFormatter(KeyValueFormatter(redactor()))
    files[1].setFormatter(JsonFormatter(redactor()))
    for h in files:
        root.addHandler(h)
    try:
        yield
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in files:
            h.close()
        for h in handlers:
            root.addHandler(h)
        root.setLevel(level)


async def press_and_wait(fake: FakeTelegram, reply: Any, label: str, timeout: float) -> str:
    """Press the reply's button whose label starts with ``label``; the result message."""
    rows = reply.params["reply_markup"]["inline_keyboard"]
    data = next(b["callback_data"] for row in rows for b in row if b["text"].startswith(label))
    n = len(fake.calls)
    chat, message_id = int(reply.params["chat_id"]), int(reply.result["message_id"])
    fake.press(OWNER, chat, message_id, data)
    return str((await _reply_after(fake, n, chat, timeout)).params["text"])


ALERT_HEAD = re.compile(r"^\S+ <b>(INFO|WARNING|CRITICAL)</b> ")


async def ask(fake: FakeTelegram, text: str, user: int = OWNER, timeout: float = 30.0) -> Any:
    """The bot's reply to a command (alerts to the same chat meanwhile are skipped)."""
    n = len(fake.calls)
    fake.command(user, text)
    return await _reply_after(fake, n, user, timeout)


async def _reply_after(fake: FakeTelegram, n: int, chat: int, timeout: float) -> Any:
    def reply(calls: list[Any]) -> Any:
        for c in calls[n:]:
            # a message, or a photo with the text as caption (/pnl); alerts are skipped
            mine = c.method in ("sendMessage", "sendPhoto") and c.status == 200
            text = str(c.params.get("text") or c.params.get("caption") or "")
            if mine and int(c.params["chat_id"]) == chat and not ALERT_HEAD.match(text):
                return c
        return None

    return await fake.wait_for(reply, timeout)


async def test_no_secret_in_logs_database_or_alerts_after_a_full_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The daemon with Telegram, real OKX and Hyperliquid adapters on their fakes (faults on),
    a strategy on paper replay, commands through Telegram (opens and closes confirmed with the
    button, status, audit, P&L, a stranger), then drills, audit, P&L, status and doctor through
    the CLI. Every file in the run's folder, every alert and message, every output: no secret."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "data").mkdir()
    write_candles(run / "data" / data_filename(ETH_PAPER, "30m"), PATH)
    for name, secret in SCAN_SECRETS.items():
        monkeypatch.setenv(name, secret)
    monkeypatch.setenv("TELEGRAM_ALLOWED_USER_IDS", str(OWNER))
    monkeypatch.setattr(bot.config.secrets, "_process", None)
    fast_reads(monkeypatch, 0.05)  # read retries (after the injected 429s, 503s) in less time
    okx = await FakeOkx(demo=True).start()
    hl = FakeHyperliquid(SCAN_SECRETS["HYPERLIQUID_WALLET_ADDRESS"])
    hl._now = int(time.time() * 1000)
    hl_url = await hl.start()
    tg = await FakeTelegram(SCAN_SECRETS["TELEGRAM_BOT_TOKEN"]).start()
    (run / "warden.toml").write_text(full_run_toml(run, okx.url, hl_url, tg.base_url))
    outputs: dict[str, bytes] = {}
    try:
        secrets = load_secrets(environ=os.environ)
        set_process_secrets(secrets)
        config = load_config(run / "warden.toml", environ={})
        with production_logging(run, secrets):
            db = await Database.open(config.storage.path)
            try:
                daemon = Daemon(config, db)
                handle = await start_telegram(
                    daemon, secrets, settings_from_config(config.telegram)
                )
                daemon.notifier = handle.notifier
                await daemon.start()
                try:
                    assert daemon.reconciled == {"paper", "okx", "hl"}
                    # faults on the way: a silent stop on OKX, rate limits, broken answers
                    okx.faults.stop_order_failed = 1
                    hl.stop_fates.append("rejected")
                    opened = await ask(tg, "/open btc long 0.01 @okx")
                    assert "Open LONG" in opened.params["text"], opened.params["text"]
                    done = await press_and_wait(tg, opened, "✅", 60)
                    assert "protected" in done, done
                    opened = await ask(tg, "/open eth short 0.1 @hl")
                    assert "Open SHORT" in opened.params["text"], opened.params["text"]
                    done = await press_and_wait(tg, opened, "✅", 60)
                    assert "protected" in done, done
                    okx.faults.malformed = 1
                    okx.faults.rate_limited = 1
                    okx.faults.server_errors = 1
                    hl.malformed(1)
                    for text in ("/status", "/audit", "/pnl", "/help", "/pause", "/resume"):
                        await ask(tg, text)
                    tg.command(6666, "/status")  # a stranger
                    closing = await ask(tg, "/close all @okx")
                    assert "protected" not in await press_and_wait(tg, closing, "✅", 60)
                    await wait_until(
                        lambda: daemon.replay_done == {"paper"}, "the replay finished", 60
                    )
                    # the CLI next to the running agent, on the same database and fakes
                    steps = [
                        ("audit", "audit", "--json", "--log-level", "DEBUG"),
                        ("pnl", "pnl", "--json", "--log-level", "DEBUG"),
                        ("status", "status", "--json", "--log-level", "DEBUG", "--log-json"),
                        ("doctor", "doctor", "--json", "--log-level", "DEBUG"),
                        ("drill-silent", "drill", "silent-stop", "--log-level", "DEBUG"),
                        ("drill-removed", "drill", "stop-removed", "--log-level", "DEBUG"),
                        (
                            "open-refused",
                            "open",
                            "BTC/USDT:USDT",
                            "long",
                            "--size",
                            "0.01",
                            "--stop",
                            "1",
                            "--exchange",
                            "okx",
                            "--yes",
                            "--log-level",
                            "DEBUG",
                        ),
                    ]
                    results = await asyncio.gather(
                        *(warden_child(run, *step[1:]) for step in steps)
                    )
                    for (label, *_), (code, output) in zip(steps, results, strict=True):
                        outputs[f"cli {label} (exit {code})"] = output
                    codes = {
                        label: code for (label, *_), (code, _) in zip(steps, results, strict=True)
                    }
                    assert codes["drill-silent"] == 0 and codes["drill-removed"] == 0, codes
                    assert codes["status"] == 0 and codes["pnl"] == 0, codes
                    await wait_until(lambda: handle.notifier.sent >= 10, "alerts delivered")
                finally:
                    await handle.stop_commands()
                    await daemon.stop()
                    await handle.stop()
                alerts = await outbox(db)
            finally:
                await db.close()
    finally:
        await tg.stop()
        await okx.stop()
        await hl.stop()
    captured = capfd.readouterr()
    outputs["stdout+stderr of this process"] = (captured.out + captured.err).encode()

    # the run did the things whose traces are scanned
    texts = [a["text"] for a in alerts]
    assert any("failCode 1000" in t for t in texts), texts  # OKX's silent stop
    assert any(t.startswith("entered long") and "momo" in t for t in texts), texts
    assert any("user id 6666" in t for t in texts)
    assert len(tg.sent()) >= 20
    assert (run / "warden.log").stat().st_size > 10_000
    assert b" DEBUG " in (run / "warden.log").read_bytes()

    findings: dict[str, list[str]] = {}
    scanned = 0
    for path in sorted(p for p in tmp_path.rglob("*") if p.is_file()):
        if path.name == "warden.toml":
            continue  # written by the test, holds no secret (checked below anyway)
        findings[str(path.relative_to(tmp_path))] = leaks_in(path.read_bytes())
        scanned += 1
    assert scanned >= 4, scanned  # the database, the two logs, the replay data
    for label, blob in outputs.items():
        findings[label] = leaks_in(blob)
    for i, t in enumerate(texts):
        findings[f"alert {i}"] = leaks_in(t.encode())
    for i, call in enumerate(tg.calls):
        findings[f"telegram call {i} {call.method}"] = leaks_in(
            json.dumps(call.params, default=str, ensure_ascii=False).encode()
        )
    assert leaks_in((run / "warden.toml").read_bytes()) == []
    leaked = {k: v for k, v in findings.items() if v}
    assert not leaked, leaked
    crashed = {k: v[-1500:] for k, v in outputs.items() if b"Traceback" in v}
    assert not crashed, crashed
