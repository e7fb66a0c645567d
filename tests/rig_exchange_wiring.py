"""A warden child process wired to the fake OKX and Hyperliquid servers: its config, its secrets
and the run itself; shared by the exchange-wiring, OKX-adapter and chart suites."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from tests.conftest import child_env, warden_cmd
from tests.fake_okx import API_KEY, PASSPHRASE, SECRET
from tests.rig_hyperliquid import PRIVATE_KEY, WALLET

SECRETS = {
    "OKX_API_KEY": API_KEY,
    "OKX_API_SECRET": SECRET,
    "OKX_API_PASSPHRASE": PASSPHRASE,
    "HYPERLIQUID_WALLET_ADDRESS": WALLET,
    "HYPERLIQUID_PRIVATE_KEY": PRIVATE_KEY,
}


async def warden(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # the fakes serve from this test's event loop: the child must not block it
    proc = await asyncio.create_subprocess_exec(
        *warden_cmd(*args),
        cwd=cwd,
        env=child_env(**env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return subprocess.CompletedProcess(args, proc.returncode or 0, out.decode(), err.decode())


def config(okx_url: str, hl_url: str) -> str:
    return (
        f'[exchanges.okx]\nkind = "okx"\nsandbox = true\napi_url = "{okx_url}"\n'
        f'[exchanges.hl]\nkind = "hyperliquid"\napi_url = "{hl_url}"\n'
    )
