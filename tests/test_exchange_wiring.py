"""The real CLI wired to real exchange adapters (the real ccxt clients) through `api_url`,
against the local fake OKX and Hyperliquid servers: config -> secrets -> adapter -> commands."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from storage.db import Database
from tests.fake_hyperliquid import FakeHyperliquid
from tests.fake_okx import API_KEY, FakeOkx
from tests.rig_exchange_wiring import (
    SECRETS,
    config,
    warden,
)
from tests.rig_hyperliquid import WALLET

pytestmark = pytest.mark.slow  # real OS processes


async def test_doctor_and_status_reach_both_real_adapters(tmp_path: Path) -> None:
    okx = await FakeOkx(demo=True).start()
    hl = FakeHyperliquid(WALLET)
    hl._now = int(time.time() * 1000)  # its clock starts at a fixed date; doctor checks skew
    hl_url = await hl.start()

    async def real_clock() -> None:
        # the fake's clock only ticks per request: keep it on the wall clock while the child
        # starts (seconds on a loaded machine), as a real venue's would be
        while True:
            hl._now = max(hl._now, int(time.time() * 1000))
            await asyncio.sleep(0.05)

    ticking = asyncio.create_task(real_clock())
    try:
        (tmp_path / "warden.toml").write_text(config(okx.url, hl_url))
        doctor = await warden(tmp_path, "doctor", "--json", **SECRETS)
        report = json.loads(doctor.stdout)
        checks = {c["name"]: c for c in report["checks"]}
        assert checks["exchange okx"]["status"] == "ok", checks["exchange okx"]
        assert "okx reachable" in checks["exchange okx"]["detail"]
        assert checks["exchange hl"]["status"] == "ok", checks["exchange hl"]
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr

        db = await Database.open(tmp_path / "warden.db")  # status reads an existing one only
        await db.close()
        status = await warden(tmp_path, "status", "--json", **SECRETS)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["positions"] == []
        for secret in SECRETS.values():
            assert secret not in doctor.stdout + doctor.stderr + status.stdout + status.stderr
    finally:
        ticking.cancel()
        await okx.stop()
        await hl.stop()


async def test_missing_keys_are_a_config_error_naming_the_variable(tmp_path: Path) -> None:
    (tmp_path / "warden.toml").write_text(config("http://127.0.0.1:9", "http://127.0.0.1:9"))
    # status reads an existing database only (a missing one is its own exit 2): make it first
    db = await Database.open(tmp_path / "warden.db")
    await db.close()
    out = await warden(tmp_path, "status", "--exchange", "okx", OKX_API_KEY=API_KEY)
    assert out.returncode == 2
    assert "exchange okx: OKX_API_SECRET, OKX_API_PASSPHRASE not set" in out.stderr, out.stderr
    assert API_KEY not in out.stderr
