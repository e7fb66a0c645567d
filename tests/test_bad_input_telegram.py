"""Bad input (issue 8), Telegram: whatever arrives, never a crash, always a clear error, never an
order.

Property-based (hypothesis, derandomized: the same examples on every run; the shared settings and
generators are in tests/rig_bad_input.py) over Telegram command text and arguments, through the
argument parsers and through the real python-telegram-bot Application against the fake Bot API
(the reply is one clear line, or the problem plus the usage; the paper exchange never sees an
order). Plus a stranger flooding the bot.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import ccxt.async_support  # noqa: F401  imported once for the session, as the adapters do
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.telegram import args as A
from tests import rig_bad_input
from tests.fake_telegram import BOT_USER
from tests.rig_bad_input import NUMBERISH, TRIED, fuzz, wait_until
from tests.telegram_rig import OWNER, Rig, running_bot
from trading.models import PositionSide

pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
_report_examples = rig_bad_input._report_examples  # the fixture, from tests/rig_bad_input.py

# --- Telegram: the argument parsers ---------------------------------------------------------------

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


# --- Telegram: the real bot -----------------------------------------------------------------------

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


# --- Telegram: a stranger flooding the bot --------------------------------------------------------

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
