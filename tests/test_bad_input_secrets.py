"""Bad input (issue 8), secrets: a full run (the real warden processes against the fake OKX,
Hyperliquid and Telegram servers), then a scan of everything it left behind (logs, database,
alerts) for each secret in each form it could take.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt.async_support  # noqa: F401  imported once for the session, as the adapters do
import pytest

import bot.config.secrets
from bot.config import load_config
from bot.config.secrets import load_secrets, set_process_secrets
from bot.daemon import Daemon
from bot.logs import JsonFormatter, KeyValueFormatter, redactor, setup_logging
from bot.telegram import start_telegram
from bot.telegram.settings import settings_from_config
from storage.db import Database
from tests import rig_bad_input
from tests.conftest import child_env, warden_cmd
from tests.fake_hyperliquid import FakeHyperliquid
from tests.fake_okx import API_KEY as FAKE_OKX_KEY
from tests.fake_okx import PASSPHRASE as FAKE_OKX_PASSPHRASE
from tests.fake_okx import FakeOkx
from tests.fake_telegram import FakeTelegram
from tests.rig_bad_input import wait_until
from tests.rig_cycles import ETH as ETH_PAPER
from tests.rig_cycles import PATH, WARMUP
from tests.rig_outages import fast_reads, outbox
from tests.rig_secrets import forms
from tests.telegram_rig import OWNER
from trading.marketdata import data_filename, write_candles

pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
_report_examples = rig_bad_input._report_examples  # the fixture, from tests/rig_bad_input.py

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


@pytest.mark.slow
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
