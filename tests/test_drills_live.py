"""`warden drill double-open|stop-removed --exchange NAME`: the drills on a configured account,
through the REAL CLI in child processes, the real ccxt clients and the local fake OKX and
Hyperliquid servers. What the drill claims is checked on the fake's own state."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import child_env, warden_cmd
from tests.fake_hyperliquid import FakeHyperliquid
from tests.fake_okx import API_KEY, BTC, PASSPHRASE, SECRET, FakeOkx
from tests.rig_hyperliquid import PRIVATE_KEY, WALLET

pytestmark = pytest.mark.slow  # real OS processes

SECRETS = {
    "OKX_API_KEY": API_KEY,
    "OKX_API_SECRET": SECRET,
    "OKX_API_PASSPHRASE": PASSPHRASE,
    "HYPERLIQUID_WALLET_ADDRESS": WALLET,
    "HYPERLIQUID_PRIVATE_KEY": PRIVATE_KEY,
}
FAST = '[logging]\nlevel = "ERROR"\n[guardian]\nverify_delay_seconds = 0.2\nwatchdog_seconds = 1\n'


def write_config(root: Path, exchange: str) -> Path:
    path = root / "warden.toml"
    path.write_text(f'[storage]\npath = "{root / "warden.db"}"\n{FAST}{exchange}')
    return path


def okx_section(url: str, sandbox: bool = True) -> str:
    return f'[exchanges.demo]\nkind = "okx"\nsandbox = {str(sandbox).lower()}\napi_url = "{url}"\n'


def hl_section(url: str) -> str:
    return f'[exchanges.test]\nkind = "hyperliquid"\nsandbox = true\napi_url = "{url}"\n'


async def drill(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # the fakes serve from this test's event loop: the child must not block it
    proc = await asyncio.create_subprocess_exec(
        *warden_cmd("--config", str(config), "drill", *args),
        cwd=config.parent,
        env=child_env(**SECRETS),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return subprocess.CompletedProcess(args, proc.returncode or 0, out.decode(), err.decode())


def okx_writes(fake: FakeOkx) -> list[str]:
    return [r.path for r in fake.requests if r.method == "POST"]


async def test_a_real_exchange_without_sandbox_is_refused_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    fake = await FakeOkx().start()
    try:
        config = write_config(tmp_path, okx_section(fake.url, sandbox=False))
        for name in ("double-open", "stop-removed"):
            out = await drill(config, name, "--exchange", "demo")
            assert out.returncode == 2, out.stdout + out.stderr
            assert "exchange demo" in out.stderr and "sandbox = true" in out.stderr
            assert "--real-money" in out.stderr
        assert fake.requests == []  # refused before any request, read or write
        # the other drills exist only on the throwaway paper exchange
        other = await drill(config, "silent-stop", "--exchange", "demo")
        assert other.returncode == 2 and "double-open, stop-removed" in other.stderr
        unknown = await drill(config, "double-open", "--exchange", "nope")
        assert unknown.returncode == 2 and "nope" in unknown.stderr
        assert fake.requests == []
    finally:
        await fake.stop()


async def test_a_symbol_the_account_holds_is_refused_and_left_alone(tmp_path: Path) -> None:
    fake = await FakeOkx(demo=True).start()
    try:
        fake.open_outside(BTC, "buy", "3")  # the trader's own position, opened in OKX's app
        config = write_config(tmp_path, okx_section(fake.url))

        out = await drill(config, "double-open", "--exchange", "demo", "--symbol", "btc")

        assert out.returncode == 75, out.stdout + out.stderr
        assert "BTC/USDT:USDT" in out.stderr and "position long 0.03" in out.stderr
        assert okx_writes(fake) == []
        assert fake.position(BTC) == Decimal("3")
    finally:
        await fake.stop()


async def test_okx_double_open_and_stop_removed_hold_and_leave_the_account_as_it_was(
    tmp_path: Path,
) -> None:
    fake = await FakeOkx(demo=True).start()
    try:
        config = write_config(tmp_path, okx_section(fake.url))

        double = await drill(config, "double-open", "--exchange", "demo")

        assert double.returncode == 0, double.stdout + double.stderr
        assert "FAIL" not in double.stdout
        # exactly one entry of the minimum size (minSz 0.01 contracts of 0.01 BTC) was filled
        entries = [o for o in fake.filled_orders(BTC) if o["reduceOnly"] == "false"]
        assert [o["sz"] for o in entries] == ["0.01"], entries
        closes = [o for o in fake.filled_orders(BTC) if o["reduceOnly"] == "true"]
        assert [o["sz"] for o in closes] == ["0.01"]
        assert fake.position(BTC) == 0 and fake.algo_list("live") == []

        removed = await drill(config, "stop-removed", "--exchange", "demo", "--stop-percent", "4")

        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert "attributed as external" in removed.stdout
        # the drill's stop, canceled outside the lease, then the guardian's verified stop at
        # the same level (4% below 69,060), canceled by the cleanup after the close
        ended = [a for a in fake.algo_list() if a["instId"] == BTC]
        assert len(ended) == 3 and all(a["state"] == "canceled" for a in ended)
        assert {a["slTriggerPx"] for a in ended[1:]} == {"66297.6"}
        assert fake.position(BTC) == 0 and fake.algo_list("live") == []
    finally:
        await fake.stop()


async def test_okx_a_stop_the_cleanup_cannot_cancel_is_named_and_exits_1(tmp_path: Path) -> None:
    fake = await FakeOkx(demo=True).start()
    try:
        fake.faults.rate_limited = 10
        fake.faults.rate_limit_paths = ("trade/cancel-algos",)
        config = write_config(tmp_path, okx_section(fake.url))

        out = await drill(config, "double-open", "--exchange", "demo")

        assert out.returncode == 1, out.stdout + out.stderr
        [left] = fake.algo_list("live")
        assert fake.position(BTC) == 0  # the position was closed first
        assert "LEFT ON EXCHANGE demo" in out.stdout
        assert f"stop {left['algoId']} on BTC/USDT:USDT" in out.stdout
        assert "cancel the stop(s) listed above" in out.stdout
        assert "safety net held, but the account is NOT back" in out.stdout
    finally:
        await fake.stop()


async def test_hyperliquid_stop_removed_restores_a_live_stop(tmp_path: Path) -> None:
    fake = FakeHyperliquid(WALLET)
    url = await fake.start()
    try:
        config = write_config(tmp_path, hl_section(url))

        out = await drill(config, "stop-removed", "--exchange", "test")

        assert out.returncode == 0, out.stdout + out.stderr
        # the minimum value ($10, with room) at 69,060: 0.00018 BTC, not the 0.00001 size step
        assert "BTC/USDC:USDC" in out.stdout and "size 0.00018" in out.stdout
        stops = [o for o in fake.orders.values() if o.is_trigger]
        # the drill's stop canceled outside the lease; the guardian's, live until the close,
        # after which Hyperliquid cancels a reduce-only order left without a position
        assert [o.status for o in stops] == ["canceled", "reduceOnlyCanceled"]
        assert [s for s, _ in stops[1].history] == ["open", "reduceOnlyCanceled"]
        assert fake.positions["BTC"].szi == 0 and fake.live_stops() == []
    finally:
        await fake.stop()


async def test_hyperliquid_a_close_the_cleanup_cannot_make_leaves_the_stop_and_says_so(
    tmp_path: Path,
) -> None:
    fake = FakeHyperliquid(WALLET)
    fake.refuse_closes = True
    url = await fake.start()
    try:
        config = write_config(tmp_path, hl_section(url))

        out = await drill(config, "double-open", "--exchange", "test")

        assert out.returncode == 1, out.stdout + out.stderr
        assert "PASS exactly one position" in out.stdout
        # the close failed: the stop still protects the position (the cleanup closes first)
        assert fake.positions["BTC"].szi == 0.00018
        [stop] = fake.live_stops("BTC")
        assert "position BTC/USDC:USDC long 0.00018" in out.stdout
        assert f"stop {stop.oid} on BTC/USDC:USDC" in out.stdout
        assert "warden close BTC/USDC:USDC --exchange test" in out.stdout
    finally:
        await fake.stop()


async def test_ctrl_c_during_the_drill_still_cleans_up(tmp_path: Path) -> None:
    fake = await FakeOkx(demo=True).start()
    # a long watchdog interval: the interrupt lands while the drill waits for the guardian
    config = write_config(tmp_path, okx_section(fake.url))
    config.write_text(config.read_text().replace("watchdog_seconds = 1", "watchdog_seconds = 60"))
    proc = await asyncio.create_subprocess_exec(
        *warden_cmd("--config", str(config), "drill", "stop-removed", "--exchange", "demo"),
        cwd=tmp_path,
        env=child_env(**SECRETS),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        seen = ""
        while "guardian every" not in seen:
            line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
            assert line, seen  # the drill ended before it reached the guardian
            seen += line
        assert fake.position(BTC) != 0  # the drill's position is open

        proc.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(proc.communicate(), 120)

        text = seen + out.decode()
        assert proc.returncode == 130, text
        assert "interrupted: cleaning up" in text
        assert "no position and no stop on BTC/USDT:USDT" in text
        assert fake.position(BTC) == 0 and fake.algo_list("live") == []
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await fake.stop()
