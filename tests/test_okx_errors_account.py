"""The OKX adapter driving the REAL ccxt okx client against the fake OKX server (as
tests/test_okx_adapter.py): the error taxonomy (duplicates, rate limits, server errors, lost
answers, cut-off JSON, margin), the account (credentials, demo header, account mode), leverage
and doctor's leverage report.

What goes over the wire is checked in the fake's request log; what comes back is checked as the
port's models and errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import rig_okx_adapter
from tests.conftest import ROOT, child_env
from tests.fake_okx import API_KEY, BTC, ETH, PASSPHRASE, SECRET, FakeOkx
from tests.rig_okx_adapter import BTC_SYM, BUY, ETH_SYM, SELL, adapter, no_payload, quick_close
from trading.adapters.okx import AccountModeError, MissingCredentials, OkxExchange, build_okx
from trading.errors import (
    AuthError,
    DuplicateClientId,
    InsufficientFunds,
    NetworkError,
    RateLimited,
    Rejected,
    StopWouldTrigger,
    UnknownOutcome,
)
from trading.models import OrderStatus

fake = rig_okx_adapter.fake  # the fixture, from tests/rig_okx_adapter.py
okx = rig_okx_adapter.okx  # the fixture, from tests/rig_okx_adapter.py


async def test_a_stop_beyond_the_last_price_is_stop_would_trigger(
    fake: FakeOkx, okx: OkxExchange
) -> None:
    await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")
    await okx.place_market_order(ETH_SYM, SELL, 0.5, "wdtest1e2")

    with pytest.raises(StopWouldTrigger) as long_stop:
        await okx.place_stop(BTC_SYM, SELL, 0.05, 70_000.0, "wdtest1s1")
    with pytest.raises(StopWouldTrigger) as short_stop:
        await okx.place_stop(ETH_SYM, BUY, 0.5, 1_900.0, "wdtest1s2")

    assert (long_stop.value.code, short_stop.value.code) == ("51280", "51278")
    assert "cannot be lower than the last price" in str(short_stop.value)
    no_payload(long_stop.value)
    no_payload(short_stop.value)
    assert fake.algo_list() == []


async def test_a_reused_client_id_is_duplicate_client_id(fake: FakeOkx, okx: OkxExchange) -> None:
    await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")
    await okx.place_stop(BTC_SYM, SELL, 0.05, 65_600.0, "wdtest1s1")

    with pytest.raises(DuplicateClientId) as order:
        await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")
    with pytest.raises(DuplicateClientId) as stop:
        await okx.place_stop(BTC_SYM, SELL, 0.05, 65_000.0, "wdtest1s1")

    # a reused clOrdId is 51016; a reused algoClOrdId is 51065 (OKX v5 docs, error codes)
    assert (order.value.code, stop.value.code) == ("51016", "51065")
    no_payload(order.value)
    assert len(fake.filled_orders()) == 1 and len(fake.algo_list()) == 1
    found = await okx.get_order(BTC_SYM, client_id="wdtest1e1")
    assert found is not None and found.filled == 0.05


async def test_rate_limiting_is_retryable_and_sends_nothing(
    fake: FakeOkx, okx: OkxExchange
) -> None:
    await okx.markets()
    fake.faults.rate_limited = 2
    with pytest.raises(RateLimited, match="50011") as read:
        await okx.ticker(BTC_SYM)
    assert read.value.retryable
    with pytest.raises(RateLimited):
        await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")
    assert fake.orders == [] and okx._ex.enableRateLimit is True
    assert (await okx.ticker(BTC_SYM)).last == 69_060.0


async def test_server_errors_read_retryable_write_unknown(fake: FakeOkx, okx: OkxExchange) -> None:
    await okx.balance()
    fake.faults.server_errors = 2
    with pytest.raises(NetworkError) as read:
        await okx.positions()
    with pytest.raises(UnknownOutcome) as write:
        await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")
    assert read.value.retryable and write.value.client_id == "wdtest1e1"
    no_payload(read.value)
    no_payload(write.value)


@pytest.mark.parametrize("lose_by", ["drop", "stall"])
async def test_a_write_without_an_answer_is_an_unknown_outcome(fake: FakeOkx, lose_by: str) -> None:
    okx = adapter(fake, timeout_ms=400)
    try:
        fake.faults.lost_responses, fake.faults.lose_by = 1, lose_by  # type: ignore[assignment]
        with pytest.raises(UnknownOutcome) as lost:
            await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")
        assert lost.value.client_id == "wdtest1e1" and not lost.value.retryable
        # the order did go through: asking by client id is how it is found
        found = await okx.get_order(BTC_SYM, client_id="wdtest1e1")
    finally:
        await okx.close()
    assert found is not None and (found.filled, found.status) == (0.05, OrderStatus.FILLED)
    assert len(fake.calls("POST", "trade/order")) == 1


async def test_cut_off_json_is_a_clear_error(fake: FakeOkx, okx: OkxExchange) -> None:
    await okx.balance()
    fake.faults.malformed = 1
    with pytest.raises(NetworkError, match="unreadable answer") as read:
        await okx.positions()
    no_payload(read.value)
    fake.faults.malformed = 1
    with pytest.raises(UnknownOutcome, match="unreadable answer") as write:
        await okx.place_stop(BTC_SYM, SELL, 0.05, 65_600.0, "wdtest1s1")
    assert write.value.client_id == "wdtest1s1"


async def test_insufficient_margin(fake: FakeOkx, okx: OkxExchange) -> None:
    with pytest.raises(InsufficientFunds) as exc:
        await okx.place_market_order(BTC_SYM, BUY, 20.0, "wdtest1e1")
    assert exc.value.code == "51008" and fake.orders == []


async def test_wrong_credentials_are_auth_errors(fake: FakeOkx) -> None:
    ex = OkxExchange(
        "okx", "main", "another-key", SECRET, PASSPHRASE, sandbox=True, api_url=fake.url
    )
    quick_close(ex)
    try:
        with pytest.raises(AuthError) as exc:
            await ex.balance()
    finally:
        await ex.close()
    assert "another-key" not in str(exc.value) and SECRET not in str(exc.value)


async def test_without_credentials_only_public_data(fake: FakeOkx) -> None:
    secrets: dict[str, str] = {}
    with pytest.raises(MissingCredentials) as missing:
        build_okx(
            "okx",
            account="main",
            sandbox=True,
            api_url=fake.url,
            margin_mode="cross",
            secrets=secrets.get,
        )
    assert "OKX_API_KEY, OKX_API_SECRET, OKX_API_PASSPHRASE" in str(missing.value)
    ex = build_okx(
        "okx",
        account="main",
        sandbox=True,
        api_url=fake.url,
        margin_mode="cross",
        secrets=secrets.get,
        require_credentials=False,
    )
    quick_close(ex)
    try:
        assert (await ex.ticker(BTC_SYM)).last == 69_060.0
        with pytest.raises(AuthError, match="credentials missing"):
            await ex.positions()
    finally:
        await ex.close()
    assert not [r for r in fake.requests if r.path.startswith("/api/v5/account/")]


async def test_build_okx_reads_the_named_secrets(fake: FakeOkx) -> None:
    secrets = {"OKX_API_KEY": API_KEY, "OKX_API_SECRET": SECRET, "OKX_API_PASSPHRASE": PASSPHRASE}
    ex = build_okx(
        "okx-demo",
        account="alt",
        sandbox=True,
        api_url=fake.url + "/",
        margin_mode="isolated",
        secrets=secrets.get,
        leverage=3,
        rate_limit_ms=1,
    )
    quick_close(ex)
    try:
        assert (ex.name, ex.account, ex.margin_mode, ex.leverage) == (
            "okx-demo",
            "alt",
            "isolated",
            3,
        )
        assert API_KEY not in repr(ex)
        assert (await ex.balance()).total == 10_000
    finally:
        await ex.close()


async def test_demo_trading_header_follows_the_sandbox_flag(fake: FakeOkx) -> None:
    live = OkxExchange("okx", "main", API_KEY, SECRET, PASSPHRASE, api_url=fake.url)
    quick_close(live)
    try:
        with pytest.raises(AuthError, match="environment"):  # a demo key on production
            await live.balance()
    finally:
        await live.close()
    [seen] = fake.calls("GET", "account/config")
    assert "x-simulated-trading" not in seen.headers
    demo = adapter(fake)
    try:
        await demo.balance()
    finally:
        await demo.close()
    assert fake.calls("GET", "account/balance")[-1].headers["x-simulated-trading"] == "1"


@pytest.mark.parametrize(
    ("pos_mode", "acct_lv", "why"),
    [("long_short_mode", "2", "net mode"), ("net_mode", "1", "cannot trade swaps")],
)
async def test_an_account_not_fit_to_trade_is_refused(
    fake: FakeOkx, okx: OkxExchange, pos_mode: str, acct_lv: str, why: str
) -> None:
    fake.pos_mode, fake.acct_lv = pos_mode, acct_lv
    for call in (
        okx.positions,
        okx.balance,
        okx.open_stops,
        lambda: okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1"),
        lambda: okx.place_stop(BTC_SYM, SELL, 0.05, 65_600.0, "wdtest1s1"),
    ):
        with pytest.raises(AccountModeError, match=why):
            await call()
    assert not [r for r in fake.requests if r.method == "POST"]
    assert (await okx.markets()) and (await okx.ticker(BTC_SYM)).last > 0  # public data works
    config = await okx.account_config()
    assert (config.pos_mode, config.acct_lv) == (pos_mode, acct_lv) and config.problems()

    fake.pos_mode, fake.acct_lv = "net_mode", "2"  # fixed in OKX's settings: trading resumes
    assert (await okx.check_account()).problems() == []
    assert await okx.positions() == []


async def test_leverage_is_set_once_per_symbol_before_the_first_entry(fake: FakeOkx) -> None:
    okx = adapter(fake, leverage=3, margin_mode="isolated")
    try:
        assert await okx.current_leverage(BTC_SYM) == 10  # read only: nothing set yet
        assert fake.calls("POST", "account/set-leverage") == []
        await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")
        await okx.place_stop(BTC_SYM, SELL, 0.05, 65_600.0, "wdtest1s1")
        await okx.place_market_order(BTC_SYM, SELL, 0.05, "wdtest1c2", reduce_only=True)
        await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e3")
        [position] = await okx.positions()
        assert await okx.current_leverage(BTC_SYM) == 3
    finally:
        await okx.close()
    [lever] = [c.body for c in fake.calls("POST", "account/set-leverage")]
    assert lever == {"lever": 3, "mgnMode": "isolated", "instId": BTC, "posSide": "net"}
    entry, exit_, again = [c.body for c in fake.calls("POST", "trade/order")]
    assert entry["tdMode"] == exit_["tdMode"] == "isolated"
    assert exit_["reduceOnly"] is True and "reduceOnly" not in again
    assert fake.calls("POST", "trade/order-algo")[0].body["tdMode"] == "isolated"
    assert position.leverage == 3


async def test_leverage_that_cannot_be_set_stops_the_entry(fake: FakeOkx) -> None:
    fake.instruments[BTC] = type(fake.instruments[BTC])(
        BTC, "0.01", "0.01", "0.01", "0.1", max_lever="2"
    )
    okx = adapter(fake, leverage=3)
    try:
        with pytest.raises(Rejected, match="leverage 3 could not be set") as exc:
            await okx.place_market_order(BTC_SYM, BUY, 0.05, "wdtest1e1")
    finally:
        await okx.close()
    assert not isinstance(exc.value, UnknownOutcome)
    assert fake.calls("POST", "trade/order") == []


async def test_server_time_and_close(fake: FakeOkx) -> None:
    okx = adapter(fake)
    assert abs(await okx.server_time() - time.time()) < 5
    await okx.close()
    assert okx._ex.session is None or okx._ex.session.closed


@pytest.mark.slow
def test_importing_the_adapter_does_not_import_ccxt() -> None:
    code = "import sys, trading.adapters.okx; print('ccxt' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"


def test_error_payload_prefers_the_item_code() -> None:
    from trading.adapters.okx_parse import error_payload

    body: Callable[[Any], str] = lambda p: "okx " + json.dumps(p)  # noqa: E731
    item = {"code": "1", "msg": "", "data": [{"sCode": "51278", "sMsg": "SL trigger price..."}]}
    assert error_payload(body(item)) == ("51278", "SL trigger price...")
    assert error_payload(body({"code": "50011", "msg": "Too Many Requests", "data": []})) == (
        "50011",
        "Too Many Requests",
    )
    assert error_payload("okx POST http://x/api/v5/trade/order") == (None, None)
    assert error_payload("okx {cut off") == (None, None)


async def test_doctor_shows_leverage_per_traded_or_held_symbol_and_flags_differences(
    fake: FakeOkx, tmp_path: Path
) -> None:
    """`warden doctor` through the real CLI and adapter: BTC (traded by a strategy) is at the
    configured 3x cross; ETH (held, opened in OKX's app at 10x isolated) is flagged."""
    from tests.rig_exchange_wiring import SECRETS, warden

    fake.leverage[(BTC, "cross")] = 3
    fake.open_outside(ETH, "sell", "3", mode="isolated")
    (tmp_path / "warden.toml").write_text(
        f'[exchanges.okx]\nkind = "okx"\nsandbox = true\napi_url = "{fake.url}"\nleverage = 3\n'
        '\n[[strategies]]\nname = "btc"\nkind = "bollinger"\nexchange = "okx"\n'
        'symbols = ["BTC/USDT:USDT"]\n'
    )

    doctor = await warden(tmp_path, "doctor", "--json", **SECRETS)
    text = await warden(tmp_path, "doctor", **SECRETS)

    assert doctor.returncode == 0 == text.returncode, doctor.stdout + doctor.stderr
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    lever = checks["leverage okx"]
    assert lever["status"] == "warn" and "ETH/USDT:USDT 10x isolated" in lever["detail"]
    assert lever["data"] == {
        "leverage": 3,
        "margin_mode": "cross",
        "symbols": [
            {"symbol": BTC_SYM, "leverage": 3.0, "margin_mode": "cross", "differs": False},
            {"symbol": ETH_SYM, "leverage": 10.0, "margin_mode": "isolated", "differs": True},
        ],
    }
    assert "data" not in checks["exchange okx"]  # the JSON of the other checks is unchanged
    assert "[warn] leverage okx: config is 3x cross" in text.stdout
    assert fake.calls("POST", "account/set-leverage") == []  # read only
