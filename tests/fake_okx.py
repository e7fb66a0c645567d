"""A fake OKX v5 REST server for tests (aiohttp, 127.0.0.1, a random port).

It speaks the paths and field names the real ccxt okx client uses (checked against ccxt 4.5.90
and OKX's v5 documentation) and keeps state in memory: instruments, last prices, one USDT
trading account in net position mode (positions in contracts of ``ctVal``), regular orders and
``conditional`` algo orders that trigger when the price crosses them. Answers have OKX's shape,
``{"code": "0", "msg": "", "data": [...]}``, refusals carry per-item ``sCode``/``sMsg``.

Faults are injected through ``faults`` (each a budget consumed by the requests that follow): a
stop acknowledged that then ends ``order_failed`` with ``failCode``, 429/50011 rate limiting,
5xx, an order executed whose answer is lost (connection dropped or stalled past the client's
timeout), an executed placement answered 51149/51054 with HTTP 500 (OKX's "timed out", outcome
unknown), an executed placement answered 51016 (51065 for an algo), a price jump just before a
stop is placed (51278 follows naturally), cut-off JSON. 51016 on a reused clOrdId, 51065 on a
reused algoClOrdId and 51278/51280 for a stop on the wrong side of the last price are not
faults: the fake always answers them, as OKX does.

Stops the trader sets in OKX's app are served too (``place_outside_stop``): ``conditional`` or
``oco`` algos, with an ``sz`` or closing the whole position (``closeFraction: "1"``, empty
``sz``), with an empty or foreign ``algoClOrdId``; ``set_algo_state(id, "pause")`` pauses one
(a paused algo does not trigger). With ``acct_lv`` "3" or "4" the balance has the shape of a
multi-currency / portfolio-margin account: the collateral is a BTC line, the USDT line is
nearly empty, account-level ``adjEq``/``availEq``/``totalEq`` are in USD (``totalEq`` also
counts ``non_collateral_usd``, assets that are not collateral).

Private endpoints require the OK-ACCESS-* headers (signatures are not verified). A path the
fake does not know is logged at ERROR and kept in ``unknown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from aiohttp import web

log = logging.getLogger("tests.fake_okx")

API_KEY, SECRET, PASSPHRASE = "fake-okx-key", "fake-okx-secret", "fake-okx-passphrase"
BTC, ETH = "BTC-USDT-SWAP", "ETH-USDT-SWAP"
CLIENT_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
PRIVATE = ("/api/v5/account/", "/api/v5/trade/", "/api/v5/asset/")
ZERO = Decimal(0)

Json = dict[str, Any]


@dataclass(frozen=True)
class Instrument:
    inst_id: str
    ct_val: str
    lot_sz: str
    min_sz: str
    tick_sz: str
    settle: str = "USDT"
    ct_type: str = "linear"
    state: str = "live"
    max_lever: str = "100"

    def payload(self) -> Json:
        base, quote = self.inst_id.split("-")[:2]
        return {
            "alias": "",
            "baseCcy": "",
            "category": "1",
            "ctMult": "1",
            "ctType": self.ct_type,
            "ctVal": self.ct_val,
            "ctValCcy": base if self.ct_type == "linear" else quote,
            "expTime": "",
            "instFamily": f"{base}-{quote}",
            "instId": self.inst_id,
            "instType": "SWAP",
            "lever": self.max_lever,
            "listTime": "1611916828000",
            "lotSz": self.lot_sz,
            "maxLmtSz": "100000000",
            "maxMktSz": "12000",
            "minSz": self.min_sz,
            "quoteCcy": "",
            "settleCcy": self.settle,
            "state": self.state,
            "tickSz": self.tick_sz,
            "uly": f"{base}-{quote}",
        }


INSTRUMENTS = (
    Instrument(BTC, ct_val="0.01", lot_sz="0.01", min_sz="0.01", tick_sz="0.1"),
    Instrument(ETH, ct_val="0.1", lot_sz="0.01", min_sz="0.01", tick_sz="0.01"),
    # not tradeable by Warden: coin-margined, and a suspended one
    Instrument("BTC-USD-SWAP", "100", "1", "1", "0.1", settle="BTC", ct_type="inverse"),
    Instrument("DOGE-USDT-SWAP", "1000", "0.01", "0.01", "0.00001", state="suspend"),
)
PRICES = {BTC: 69_060.0, ETH: 1_950.0, "BTC-USD-SWAP": 69_060.0, "DOGE-USDT-SWAP": 0.1}


@dataclass
class Faults:
    stop_order_failed: int = 0  # next N stops: acknowledged (code 0), then order_failed
    fail_code: str = "1000"
    fail_after: float = 0.0  # seconds such a stop is seen live before it fails
    rate_limited: int = 0  # next N requests matching rate_limit_paths: HTTP 429, code 50011
    rate_limit_paths: tuple[str, ...] = ()  # path suffixes; empty: every request
    server_errors: int = 0  # next N requests: HTTP 503 (HTML), or 500 + OKX JSON code 50026
    server_error_json: bool = False
    lost_responses: int = 0  # next N POST trade/order: executed, the answer never arrives
    lose_by: Literal["drop", "stall"] = "drop"  # connection closed, or no answer in time
    stall_seconds: float = 30.0
    duplicate_after_apply: int = 0  # next N placements: executed, answered 51016 (algo: 51065)
    duplicate_paths: tuple[str, ...] = ("trade/order", "trade/order-algo")
    timeout_after_apply: int = 0  # next N placements: executed, answered HTTP 500 + timeout_code
    timeout_code: str = "51149"  # 51149 "Order timed out" or 51054 "Request timed out"
    timeout_paths: tuple[str, ...] = ("trade/order", "trade/order-algo")
    jump_before_stop: dict[str, float] = field(default_factory=dict)  # instId -> price
    malformed: int = 0  # next N requests matching malformed_paths: executed, cut-off JSON
    malformed_paths: tuple[str, ...] = ()  # path suffixes; empty: every request


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


TIMEOUT_TEXT = {
    "51149": "Order timed out, please try again later.",
    "51054": "Request timed out. Please try again.",
}


class OkxError(Exception):
    def __init__(self, code: str, msg: str, data: list[Json] | None = None, status: int = 200):
        super().__init__(f"{code} {msg}")
        self.code, self.msg, self.data, self.status = code, msg, data or [], status


def item_error(scode: str, smsg: str, **ids: str) -> OkxError:
    """An order endpoint's refusal: ``code: 1`` with the reason in the item."""
    return OkxError("1", "All operations failed", [{**ids, "sCode": scode, "sMsg": smsg}])


def _matches(request: web.Request, suffixes: tuple[str, ...]) -> bool:
    return not suffixes or any(request.path.endswith("/" + s) for s in suffixes)


def _d(value: Any, name: str) -> Decimal:
    try:
        return Decimal(str(value))
    except Exception:
        raise OkxError("51000", f"Parameter {name} error") from None


def _s(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


@dataclass
class FakePosition:
    inst_id: str
    pos: Decimal  # signed contracts (net mode)
    avg_px: Decimal
    mgn_mode: str
    c_time: int
    u_time: int
    pos_id: str


class FakeOkx:
    def __init__(
        self,
        *,
        cash: float = 10_000.0,
        pos_mode: str = "net_mode",
        acct_lv: str = "2",
        taker_fee: float = 0.0005,
        demo: bool | None = None,
    ) -> None:
        self.instruments = {i.inst_id: i for i in INSTRUMENTS}
        self.prices = {k: Decimal(repr(v)) for k, v in PRICES.items()}
        self.cash = Decimal(repr(cash))
        self.pos_mode = pos_mode
        self.acct_lv = acct_lv
        self.perm = "read_only,trade"
        self.non_collateral_usd = Decimal(0)  # acctLv 3/4: assets in totalEq, not in adjEq
        self.taker_fee = Decimal(repr(taker_fee))
        self.demo = demo  # True/False: require/forbid x-simulated-trading; None: either
        self.leverage: dict[tuple[str, str], int] = {}
        self.positions: dict[str, FakePosition] = {}
        self.orders: list[Json] = []
        self.algos: dict[str, Json] = {}
        self.fills: list[Json] = []
        self.candles: dict[str, list[list[str]]] = {}  # instId -> rows, oldest first
        self.faults = Faults()
        self.requests: list[Seen] = []
        self.unknown: list[str] = []
        self._ids = itertools.count(700_000_000_000_000_001)
        self._last_ms = 0
        self._fail_at: dict[str, float] = {}  # algoId -> when it turns order_failed
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""
        self._routes: dict[tuple[str, str], Callable[[Any], Any]] = {
            ("GET", "/api/v5/public/instruments"): self._instruments,
            ("GET", "/api/v5/public/time"): lambda q: [{"ts": str(self._now())}],
            ("GET", "/api/v5/market/ticker"): self._ticker,
            ("GET", "/api/v5/market/candles"): self._candles,
            ("GET", "/api/v5/market/history-candles"): self._candles,
            ("GET", "/api/v5/account/balance"): self._balance,
            ("GET", "/api/v5/account/positions"): self._positions,
            ("GET", "/api/v5/account/config"): self._config,
            ("POST", "/api/v5/account/set-leverage"): self._set_leverage,
            ("GET", "/api/v5/account/leverage-info"): self._leverage_info,
            ("POST", "/api/v5/trade/order"): lambda b: [self._place(b)],
            ("POST", "/api/v5/trade/batch-orders"): lambda b: [self._place(o) for o in b],
            ("GET", "/api/v5/trade/order"): self._get_order,
            ("GET", "/api/v5/trade/orders-pending"): self._orders_pending,
            ("GET", "/api/v5/trade/fills"): self._fills,
            ("GET", "/api/v5/trade/fills-history"): self._fills,
            ("POST", "/api/v5/trade/cancel-order"): self._cancel_order,
            ("POST", "/api/v5/trade/order-algo"): lambda b: [self._place_algo(b)],
            ("GET", "/api/v5/trade/order-algo"): self._get_algo,
            ("GET", "/api/v5/trade/orders-algo-pending"): self._algos_pending,
            ("GET", "/api/v5/trade/orders-algo-history"): self._algos_history,
            ("POST", "/api/v5/trade/cancel-algos"): self._cancel_algos,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> FakeOkx:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what tests look at and do -----------------------------------------------------------

    def calls(self, method: str, path: str) -> list[Seen]:
        return [r for r in self.requests if r.method == method and r.path == "/api/v5/" + path]

    def filled_orders(self, inst_id: str | None = None) -> list[Json]:
        return [o for o in self.orders if inst_id in (None, o["instId"]) and o["state"] == "filled"]

    def algo_list(self, state: str | None = None) -> list[Json]:
        self._settle()
        return [a for a in self.algos.values() if state in (None, a["state"])]

    def set_price(self, inst_id: str, price: float) -> None:
        """Move the market; live stops the price crosses trigger and close at this price."""
        self.prices[inst_id] = Decimal(repr(price))
        self._settle()
        for algo in list(self.algos.values()):
            if algo["instId"] != inst_id or algo["state"] != "live":
                continue  # a paused algo is not in effect
            last = self.prices[inst_id]
            sell = algo["side"] == "sell"
            if algo["slTriggerPx"]:
                sl = Decimal(algo["slTriggerPx"])
                if (sell and last <= sl) or (not sell and last >= sl):
                    self._trigger(algo, "sl")
                    continue
            if algo["tpTriggerPx"]:
                tp = Decimal(algo["tpTriggerPx"])
                if (sell and last >= tp) or (not sell and last <= tp):
                    self._trigger(algo, "tp")

    def cancel_algo_outside(self, algo_id: str) -> None:
        """Someone cancels a stop in OKX's app, behind the agent's back."""
        self._end_algo(self.algos[algo_id], "canceled")

    def place_outside_stop(
        self,
        inst_id: str,
        side: str,
        sl_trigger: str,
        *,
        sz: str = "",
        tp_trigger: str = "",
        ord_type: str = "conditional",
        algo_cl_ord_id: str = "",
        mode: str = "cross",
    ) -> str:
        """A stop the trader set in OKX's app: no size means the whole position
        (``closeFraction: "1"``, empty ``sz``); an ``oco`` carries a take-profit leg too."""
        algo_id = self.new_id()
        now = str(self._now())
        self.algos[algo_id] = {
            **self._algo_record(inst_id, side, mode, algo_id, algo_cl_ord_id, ""),
            "sz": sz,
            "closeFraction": "" if sz else "1",
            "ordType": ord_type,
            "slTriggerPx": sl_trigger,
            "tpTriggerPx": tp_trigger,
            "tpTriggerPxType": "last" if tp_trigger else "",
            "tpOrdPx": "-1" if tp_trigger else "",
            "reduceOnly": "false",  # the app leaves it false on closeFraction stops
            "cTime": now,
            "uTime": now,
        }
        return algo_id

    def set_algo_state(self, algo_id: str, state: str, fail_code: str = "") -> None:
        self.algos[algo_id].update(state=state, failCode=fail_code, uTime=str(self._now()))

    def new_id(self) -> str:
        return str(next(self._ids))

    def copy_algo(self, algo_id: str, **fields: Any) -> str:
        """A new algo record like ``algo_id`` with some fields changed (history seeding)."""
        new_id = self.new_id()
        self.algos[new_id] = dict(self.algos[algo_id], algoId=new_id, **fields)
        return new_id

    def open_outside(self, inst_id: str, side: str, contracts: str, mode: str = "cross") -> None:
        """A position opened in OKX's own app, not by the agent."""
        self._fill(self.instruments[inst_id], side, Decimal(contracts), "", mode, False, {})

    def position(self, inst_id: str) -> Decimal:
        p = self.positions.get(inst_id)
        return p.pos if p else ZERO

    # -- HTTP --------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.text()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        seen = Seen(request.method, request.path, dict(request.query), body, dict(request.headers))
        self.requests.append(seen)
        key = (request.method, request.path)
        f = self.faults
        if f.server_errors > 0:
            f.server_errors -= 1
            if f.server_error_json:
                body = {"code": "50026", "msg": "System error. Try again later.", "data": []}
                return web.json_response(body, status=500)
            return web.Response(status=503, text="<html>503 Service Temporarily Unavailable</html>")
        if f.rate_limited > 0 and _matches(request, f.rate_limit_paths):
            f.rate_limited -= 1
            return web.json_response({"msg": "Too Many Requests", "code": "50011"}, status=429)
        route = self._routes.get(key)
        if route is None:
            log.error("fake okx: unknown endpoint %s %s", request.method, request.path_qs)
            self.unknown.append(f"{request.method} {request.path_qs}")
            return web.json_response(
                {"code": "50000", "msg": "unknown path", "data": []}, status=404
            )
        try:
            if request.path.startswith(PRIVATE):
                self._authorize(request)
            data = route(body if request.method == "POST" else seen.query)
            payload: Json = {"code": "0", "msg": "", "data": data}
            status = 200
        except OkxError as exc:
            payload, status = {"code": exc.code, "msg": exc.msg, "data": exc.data}, exc.status
        if f.malformed > 0 and _matches(request, f.malformed_paths):
            f.malformed -= 1
            return web.Response(text=json.dumps(payload)[:25], content_type="application/json")
        if key == ("POST", "/api/v5/trade/order") and f.lost_responses > 0:
            f.lost_responses -= 1
            return await self._lose(request)
        placing = request.method == "POST" and request.path[8:] in f.duplicate_paths
        if placing and f.duplicate_after_apply > 0 and payload["code"] == "0":
            f.duplicate_after_apply -= 1
            first = payload["data"][0]
            ids = {k: str(first[k]) for k in ("clOrdId", "algoClOrdId") if k in first}
            if request.path.endswith("/order-algo"):
                err = item_error("51065", "algoClOrdId already exists.", **ids)
            else:
                err = item_error("51016", "Duplicated client order ID", **ids)
            payload = {"code": err.code, "msg": err.msg, "data": err.data}
        timing_out = request.method == "POST" and request.path[8:] in f.timeout_paths
        if timing_out and f.timeout_after_apply > 0 and payload["code"] == "0":
            # executed, then OKX's own "timed out" answer with HTTP 500: outcome unknown
            f.timeout_after_apply -= 1
            first = payload["data"][0]
            ids = {k: str(first[k]) for k in ("clOrdId", "algoClOrdId") if k in first}
            text = TIMEOUT_TEXT.get(f.timeout_code, "Service temporarily unavailable")
            err = item_error(f.timeout_code, text, **ids)
            payload, status = {"code": err.code, "msg": err.msg, "data": err.data}, 500
        return web.json_response(payload, status=status)

    async def _lose(self, request: web.Request) -> web.StreamResponse:
        """The order is executed; its answer never reaches the client."""
        if self.faults.lose_by == "stall":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.faults.stall_seconds)
        elif request.transport is not None:
            request.transport.close()
        return web.Response(status=504)

    def _authorize(self, request: web.Request) -> None:
        h = request.headers
        needed = ("OK-ACCESS-KEY", "OK-ACCESS-SIGN", "OK-ACCESS-TIMESTAMP", "OK-ACCESS-PASSPHRASE")
        for name in needed:
            if not h.get(name):
                raise OkxError("50103", f"Request header {name} can not be empty.", status=401)
        if h["OK-ACCESS-KEY"] != API_KEY:
            raise OkxError("50111", "Invalid OK-ACCESS-KEY.", status=401)
        if h["OK-ACCESS-PASSPHRASE"] != PASSPHRASE:
            raise OkxError("50105", "Invalid OK-ACCESS-PASSPHRASE.", status=401)
        simulated = h.get("x-simulated-trading") == "1"
        if self.demo is not None and simulated != self.demo:
            raise OkxError("50101", "APIKey does not match current environment.", status=401)

    # -- helpers -----------------------------------------------------------------------------

    def _now(self) -> int:
        self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
        return self._last_ms

    def _inst(self, inst_id: Any) -> Instrument:
        inst = self.instruments.get(str(inst_id))
        if inst is None:
            raise OkxError("51001", "Instrument ID does not exist")
        return inst

    def _size(self, inst: Instrument, raw: Any, **ids: str) -> Decimal:
        sz = _d(raw, "sz")
        lot = Decimal(inst.lot_sz)
        if sz <= 0 or sz % lot:
            raise item_error(
                "51121", f"Order quantity must be a multiple of the lot size {lot}", **ids
            )
        if sz < Decimal(inst.min_sz):
            raise item_error(
                "51020", "Order amount should be greater than the min available amount", **ids
            )
        return sz

    def _lever(self, inst_id: str, mode: str) -> Decimal:
        return Decimal(self.leverage.get((inst_id, mode), 10))

    def _upl(self, p: FakePosition) -> Decimal:
        ct = Decimal(self.instruments[p.inst_id].ct_val)
        return (self.prices[p.inst_id] - p.avg_px) * p.pos * ct

    def _imr(self, p: FakePosition) -> Decimal:
        ct = Decimal(self.instruments[p.inst_id].ct_val)
        return abs(p.pos) * ct * self.prices[p.inst_id] / self._lever(p.inst_id, p.mgn_mode)

    def _equity(self) -> tuple[Decimal, Decimal]:
        upl = sum((self._upl(p) for p in self.positions.values()), ZERO)
        imr = sum((self._imr(p) for p in self.positions.values()), ZERO)
        return self.cash + upl, imr

    # -- public ------------------------------------------------------------------------------

    def _instruments(self, q: dict[str, str]) -> list[Json]:
        if q.get("instType") != "SWAP":
            return []
        return [i.payload() for i in self.instruments.values()]

    def _ticker(self, q: dict[str, str]) -> list[Json]:
        inst = self._inst(q.get("instId"))
        last = _s(self.prices[inst.inst_id])
        return [
            {
                "instType": "SWAP",
                "instId": inst.inst_id,
                "last": last,
                "lastSz": "1",
                "askPx": last,
                "askSz": "10",
                "bidPx": last,
                "bidSz": "10",
                "open24h": last,
                "high24h": last,
                "low24h": last,
                "volCcy24h": "1000",
                "vol24h": "100000",
                "sodUtc0": last,
                "sodUtc8": last,
                "ts": str(self._now()),
            }
        ]

    def _candles(self, q: dict[str, str]) -> list[list[str]]:
        inst = self._inst(q.get("instId"))
        rows = self.candles.get(inst.inst_id, [])
        if "after" in q:
            rows = [r for r in rows if int(r[0]) < int(q["after"])]
        if "before" in q:
            rows = [r for r in rows if int(r[0]) > int(q["before"])]
        limit = min(int(q.get("limit", 100)), 300)
        return list(reversed(rows))[:limit]

    # -- account -----------------------------------------------------------------------------

    def _balance(self, q: dict[str, str]) -> list[Json]:
        eq, imr = self._equity()
        upl = eq - self.cash
        usdt = {
            "availBal": _s(self.cash - imr),
            "availEq": _s(eq - imr),
            "cashBal": _s(self.cash),
            "ccy": "USDT",
            "disEq": _s(eq),
            "eq": _s(eq),
            "eqUsd": _s(eq),
            "frozenBal": _s(imr),
            "imr": _s(imr),
            "isoEq": "0",
            "mgnRatio": "",
            "ordFrozen": "0",
            "upl": _s(upl),
            "uTime": str(self._now()),
        }
        wanted = q.get("ccy")
        if self.acct_lv in ("3", "4"):
            return self._account_level_balance(eq, imr, usdt, wanted)
        details = [usdt] if wanted in (None, "USDT") else []
        return [{"adjEq": "", "details": details, "totalEq": _s(eq), "uTime": usdt["uTime"]}]

    def _account_level_balance(
        self, eq: Decimal, imr: Decimal, usdt: Json, wanted: str | None
    ) -> list[Json]:
        """Multi-currency / portfolio margin: the collateral is BTC, the USDT line is a dust
        0.000258796 (as in ccxt's recorded okx fetchBalance), equity is account level in USD."""
        btc_px = self.prices[BTC]
        dust = "0.000258796"
        lines = [
            dict(usdt, availBal="0", availEq="0", cashBal=dust, eq=dust, eqUsd=dust, disEq=dust),
            dict(
                usdt,
                ccy="BTC",
                availBal=_s((eq - imr) / btc_px),
                availEq=_s((eq - imr) / btc_px),
                cashBal=_s(eq / btc_px),
                eq=_s(eq / btc_px),
                eqUsd=_s(eq),
                disEq=_s(eq),
            ),
        ]
        details = [d for d in lines if wanted in (None, d["ccy"])]
        return [
            {
                "adjEq": _s(eq),
                "availEq": _s(eq - imr),
                "details": details,
                "imr": _s(imr),
                "totalEq": _s(eq + self.non_collateral_usd),
                "uTime": usdt["uTime"],
            }
        ]

    def _positions(self, q: dict[str, str]) -> list[Json]:
        if q.get("instType") not in (None, "SWAP"):
            return []
        wanted = set(q["instId"].split(",")) if q.get("instId") else None
        out = []
        for p in self.positions.values():
            if wanted is not None and p.inst_id not in wanted:
                continue
            last = _s(self.prices[p.inst_id])
            out.append(
                {
                    "adl": "1",
                    "availPos": "",
                    "avgPx": _s(p.avg_px),
                    "cTime": str(p.c_time),
                    "ccy": "USDT",
                    "imr": _s(self._imr(p)),
                    "instId": p.inst_id,
                    "instType": "SWAP",
                    "last": last,
                    "lever": str(self._lever(p.inst_id, p.mgn_mode)),
                    "liqPx": "",
                    "margin": "",
                    "markPx": last,
                    "mgnMode": p.mgn_mode,
                    "mgnRatio": "",
                    "mmr": "0",
                    "notionalUsd": _s(self._imr(p) * self._lever(p.inst_id, p.mgn_mode)),
                    "pos": _s(p.pos),
                    "posCcy": "",
                    "posId": p.pos_id,
                    "posSide": "net",
                    "uTime": str(p.u_time),
                    "upl": _s(self._upl(p)),
                    "uplRatio": "0",
                }
            )
        return out

    def _config(self, q: dict[str, str]) -> list[Json]:
        return [
            {
                "acctLv": self.acct_lv,
                "autoLoan": False,
                "ctIsoMode": "automatic",
                "greeksType": "PA",
                "label": "warden-test",
                "level": "Lv1",
                "levelTmp": "",
                "mgnIsoMode": "automatic",
                "perm": self.perm,
                "posMode": self.pos_mode,
                "uid": "44705892343619584",
            }
        ]

    def _set_leverage(self, b: Json) -> list[Json]:
        inst = self._inst(b.get("instId"))
        mode = b.get("mgnMode")
        if mode not in ("cross", "isolated"):
            raise OkxError("51000", "Parameter mgnMode error")
        lever = int(_d(b.get("lever"), "lever"))
        if not 1 <= lever <= int(inst.max_lever):
            raise OkxError("59102", "Leverage exceeds the maximum leverage")
        self.leverage[(inst.inst_id, mode)] = lever
        return [{"instId": inst.inst_id, "lever": str(lever), "mgnMode": mode, "posSide": "net"}]

    def _leverage_info(self, q: dict[str, str]) -> list[Json]:
        inst = self._inst(q.get("instId"))
        mode = q.get("mgnMode")
        if mode not in ("cross", "isolated"):
            raise OkxError("51000", "Parameter mgnMode error")
        lever = str(self._lever(inst.inst_id, mode))
        return [{"instId": inst.inst_id, "mgnMode": mode, "posSide": "net", "lever": lever}]

    # -- regular orders ----------------------------------------------------------------------

    def _place(self, b: Json) -> Json:
        cid = str(b.get("clOrdId") or "")
        ids = {"clOrdId": cid, "ordId": "", "tag": str(b.get("tag") or "")}
        inst = self._inst(b.get("instId"))
        if cid and not CLIENT_ID.match(cid):
            raise item_error("51000", "Parameter clOrdId error", **ids)
        if cid and any(o["clOrdId"] == cid for o in self.orders):
            raise item_error("51016", "Duplicated client order ID", **ids)
        if b.get("ordType") != "market":
            raise item_error("51000", "Parameter ordType error", **ids)
        if b.get("tdMode") not in ("cross", "isolated"):
            raise item_error("51000", "Parameter tdMode error", **ids)
        if b.get("posSide") not in (None, "net"):
            raise item_error("51000", "Parameter posSide error", **ids)
        side = b.get("side")
        if side not in ("buy", "sell"):
            raise item_error("51000", "Parameter side error", **ids)
        sz = self._size(inst, b.get("sz"), **ids)
        reduce_only = b.get("reduceOnly") in (True, "true")
        order = self._fill(inst, side, sz, cid, b["tdMode"], reduce_only, ids)
        return {
            "clOrdId": cid,
            "ordId": order["ordId"],
            "tag": ids["tag"],
            "ts": order["cTime"],
            "sCode": "0",
            "sMsg": "Order placed",
        }

    def _fill(
        self,
        inst: Instrument,
        side: str,
        sz: Decimal,
        cid: str,
        mode: str,
        reduce_only: bool,
        ids: dict[str, str],
    ) -> Json:
        px = self.prices[inst.inst_id]
        ct = Decimal(inst.ct_val)
        signed = sz if side == "buy" else -sz
        p = self.positions.get(inst.inst_id)
        cur = p.pos if p else ZERO
        if reduce_only and (cur == 0 or (cur > 0) == (signed > 0)):
            raise item_error(
                "51169",
                "Order failed because you don't have any positions in this direction for this "
                "contract to reduce or close.",
                **ids,
            )
        if reduce_only and sz > abs(cur):
            raise item_error("51112", "Close order size exceeds your available size", **ids)
        new = cur + signed
        eq, imr = self._equity()
        if not reduce_only and abs(new) > abs(cur):
            need = (abs(new) - abs(cur)) * ct * px / self._lever(inst.inst_id, mode)
            if need > eq - imr:
                raise item_error(
                    "51008", "Order failed. Insufficient USDT margin in account", **ids
                )
        now = self._now()
        pnl = ZERO
        if p is None or cur == 0:
            p = FakePosition(inst.inst_id, new, px, mode, now, now, str(next(self._ids)))
            self.positions[inst.inst_id] = p
        elif (cur > 0) == (signed > 0):
            p.avg_px = (abs(cur) * p.avg_px + sz * px) / abs(new)
            p.pos, p.u_time = new, now
        else:
            closed = min(sz, abs(cur))
            pnl = (px - p.avg_px) * closed * ct * (1 if cur > 0 else -1)
            if new == 0:
                del self.positions[inst.inst_id]
            else:
                if (new > 0) != (cur > 0):
                    p.avg_px = px
                p.pos, p.u_time = new, now
        fee = sz * ct * px * self.taker_fee
        self.cash += pnl - fee
        order = {
            "instType": "SWAP",
            "instId": inst.inst_id,
            "ccy": "",
            "ordId": str(next(self._ids)),
            "clOrdId": cid,
            "tag": ids.get("tag", ""),
            "px": "",
            "sz": _s(sz),
            "pnl": _s(pnl),
            "ordType": "market",
            "side": side,
            "posSide": "net",
            "tdMode": mode,
            "accFillSz": _s(sz),
            "fillPx": _s(px),
            "tradeId": str(next(self._ids)),
            "fillSz": _s(sz),
            "fillTime": str(now),
            "avgPx": _s(px),
            "state": "filled",
            "lever": str(self._lever(inst.inst_id, mode)),
            "feeCcy": "USDT",
            "fee": _s(-fee),
            "rebateCcy": "USDT",
            "rebate": "0",
            "category": "normal",
            "reduceOnly": "true" if reduce_only else "false",
            "cancelSource": "",
            "source": "",
            "uTime": str(now),
            "cTime": str(now),
        }
        self.orders.append(order)
        self.fills.append(
            {
                "instType": "SWAP",
                "instId": inst.inst_id,
                "tradeId": order["tradeId"],
                "ordId": order["ordId"],
                "clOrdId": cid,
                "billId": str(next(self._ids)),
                "subType": "1" if side == "buy" else "2",
                "tag": order["tag"],
                "fillPx": order["fillPx"],
                "fillSz": order["fillSz"],
                "fillIdxPx": order["fillPx"],
                "fillPnl": order["pnl"],
                "fillMarkPx": order["fillPx"],
                "side": side,
                "posSide": "net",
                "execType": "T",
                "feeCcy": "USDT",
                "fee": order["fee"],
                "ts": str(now),
                "fillTime": str(now),
            }
        )
        return order

    def _find_order(self, q: dict[str, str]) -> Json:
        inst = self._inst(q.get("instId"))
        for o in self.orders:
            if o["instId"] != inst.inst_id:
                continue
            if (q.get("ordId") and o["ordId"] == q["ordId"]) or (
                q.get("clOrdId") and o["clOrdId"] == q["clOrdId"]
            ):
                return o
        if not q.get("ordId") and not q.get("clOrdId"):
            raise OkxError("51003", "Either client order ID or order ID is required")
        raise OkxError("51603", "Order does not exist")

    def _get_order(self, q: dict[str, str]) -> list[Json]:
        return [self._find_order(q)]

    def _orders_pending(self, q: dict[str, str]) -> list[Json]:
        return [
            o
            for o in self.orders
            if o["state"] in ("live", "partially_filled") and q.get("instId") in (None, o["instId"])
        ]

    def _fills(self, q: dict[str, str]) -> list[Json]:
        if q.get("instType") not in (None, "SWAP"):
            return []
        found = [
            f
            for f in self.fills
            if q.get("instId") in (None, f["instId"])
            and q.get("ordId") in (None, f["ordId"])
            and int(f["ts"]) >= int(q.get("begin", 0))
            and int(f["ts"]) <= int(q.get("end", 2**62))
        ]
        found.sort(key=lambda f: int(f["billId"]), reverse=True)
        if q.get("after"):
            found = [f for f in found if int(f["billId"]) < int(q["after"])]
        if q.get("before"):
            found = [f for f in found if int(f["billId"]) > int(q["before"])]
        return found[: min(int(q.get("limit", 100)), 100)]

    def _cancel_order(self, b: Json) -> list[Json]:
        try:
            o = self._find_order(b)
        except OkxError:
            raise item_error(
                "51400",
                "Order cancellation failed as the order does not exist",
                ordId=str(b.get("ordId", "")),
                clOrdId=str(b.get("clOrdId", "")),
            ) from None
        if o["state"] not in ("live", "partially_filled"):
            raise item_error(
                "51402",
                "Order cancellation failed as the order has been completed",
                ordId=o["ordId"],
                clOrdId=o["clOrdId"],
            )
        o.update(state="canceled", uTime=str(self._now()))
        return [{"clOrdId": o["clOrdId"], "ordId": o["ordId"], "sCode": "0", "sMsg": ""}]

    # -- algo orders -------------------------------------------------------------------------

    def _place_algo(self, b: Json) -> Json:
        acid = str(b.get("algoClOrdId") or "")
        cid = str(b.get("clOrdId") or "")
        ids = {"algoId": "", "algoClOrdId": acid, "clOrdId": cid, "tag": str(b.get("tag") or "")}
        inst = self._inst(b.get("instId"))
        if b.get("ordType") not in ("conditional", "oco"):
            raise item_error("51000", "Parameter ordType error", **ids)
        if b.get("tdMode") not in ("cross", "isolated"):
            raise item_error("51000", "Parameter tdMode error", **ids)
        for value, name in ((acid, "algoClOrdId"), (cid, "clOrdId")):
            if value and not CLIENT_ID.match(value):
                raise item_error("51000", f"Parameter {name} error", **ids)
        if acid and any(a["algoClOrdId"] == acid for a in self.algos.values()):
            # OKX: a reused algoClOrdId is 51065, not trade/order's 51016
            raise item_error("51065", "algoClOrdId already exists.", **ids)
        side = b.get("side")
        if side not in ("buy", "sell") or b.get("slTriggerPx") in (None, ""):
            raise item_error("51000", "Parameter slTriggerPx error", **ids)
        whole = str(b.get("closeFraction") or "") == "1"
        sz = None if whole else self._size(inst, b.get("sz"), **ids)
        if inst.inst_id in self.faults.jump_before_stop:
            jump = self.faults.jump_before_stop.pop(inst.inst_id)
            self.set_price(inst.inst_id, jump)
        trigger, last = _d(b["slTriggerPx"], "slTriggerPx"), self.prices[inst.inst_id]
        if side == "buy" and trigger <= last:
            raise item_error("51278", "SL trigger price cannot be lower than the last price", **ids)
        if side == "sell" and trigger >= last:
            raise item_error(
                "51280", "SL trigger price cannot be higher than the last price", **ids
            )
        algo_id = str(next(self._ids))
        algo = self._algo_record(inst.inst_id, side, b["tdMode"], algo_id, acid, cid)
        algo.update(
            sz="" if sz is None else _s(sz),
            closeFraction="1" if whole else "",
            ordType=b["ordType"],
            slTriggerPx=_s(trigger),
            slTriggerPxType=b.get("slTriggerPxType", "last"),
            slOrdPx=str(b.get("slOrdPx", "-1")),
            tpTriggerPx=str(b.get("tpTriggerPx") or ""),
            tag=ids["tag"],
            reduceOnly="true" if b.get("reduceOnly") in (True, "true") else "false",
        )
        self.algos[algo_id] = algo
        if self.faults.stop_order_failed > 0:
            self.faults.stop_order_failed -= 1
            self._fail_at[algo_id] = time.monotonic() + self.faults.fail_after
            self._settle()
        return {
            "algoId": algo_id,
            "algoClOrdId": acid,
            "clOrdId": cid,
            "sCode": "0",
            "sMsg": "",
            "tag": ids["tag"],
        }

    def _algo_record(
        self, inst_id: str, side: str, mode: str, algo_id: str, acid: str, cid: str
    ) -> Json:
        now = str(self._now())
        return {
            "instType": "SWAP",
            "instId": inst_id,
            "ccy": "",
            "ordId": "",
            "ordIdList": [],
            "algoId": algo_id,
            "clOrdId": cid,
            "algoClOrdId": acid,
            "sz": "",
            "closeFraction": "",
            "ordType": "conditional",
            "side": side,
            "posSide": "net",
            "tdMode": mode,
            "tgtCcy": "",
            "state": "live",
            "lever": str(self._lever(inst_id, mode)),
            "tpTriggerPx": "",
            "tpTriggerPxType": "",
            "tpOrdPx": "",
            "slTriggerPx": "",
            "slTriggerPxType": "last",
            "slOrdPx": "-1",
            "triggerPx": "",
            "triggerPxType": "",
            "ordPx": "",
            "actualSz": "",
            "actualPx": "",
            "actualSide": "",
            "triggerTime": "",
            "tag": "",
            "reduceOnly": "false",
            "last": _s(self.prices[inst_id]),
            "failCode": "",
            "cTime": now,
            "uTime": now,
        }

    def _settle(self) -> None:
        """Stops marked to fail silently do so once their time has come."""
        now = time.monotonic()
        for algo_id, at in list(self._fail_at.items()):
            if now >= at:
                del self._fail_at[algo_id]
                algo = self.algos[algo_id]
                if algo["state"] == "live":
                    algo.update(
                        state="order_failed", failCode=self.faults.fail_code, uTime=str(self._now())
                    )

    def _trigger(self, algo: Json, leg: str = "sl") -> None:
        inst = self.instruments[algo["instId"]]
        pos = self.position(inst.inst_id)
        closes = (pos > 0 and algo["side"] == "sell") or (pos < 0 and algo["side"] == "buy")
        held = abs(pos) if closes else ZERO  # a stop only ever reduces
        size = held if algo["closeFraction"] == "1" else min(Decimal(algo["sz"]), held)
        algo.update(
            state="effective",
            triggerTime=str(self._now()),
            actualSide=leg,
            actualPx=_s(self.prices[inst.inst_id]),
            actualSz=_s(size),
        )
        if size > 0:
            order = self._fill(inst, algo["side"], size, "", algo["tdMode"], True, {})
            algo.update(ordId=order["ordId"], ordIdList=[order["ordId"]])
        algo["uTime"] = str(self._now())

    def _end_algo(self, algo: Json, state: str) -> None:
        algo.update(state=state, uTime=str(self._now()))

    def _find_algo(self, q: dict[str, str]) -> Json:
        self._settle()
        for a in self.algos.values():
            if (q.get("algoId") and a["algoId"] == q["algoId"]) or (
                q.get("algoClOrdId") and a["algoClOrdId"] == q["algoClOrdId"]
            ):
                return a
        if not q.get("algoId") and not q.get("algoClOrdId"):
            raise OkxError("51000", "Parameter algoId error")
        raise OkxError("51603", "Order does not exist")

    def _get_algo(self, q: dict[str, str]) -> list[Json]:
        return [self._find_algo(q)]

    def _algo_page(self, q: dict[str, str], states: tuple[str, ...]) -> list[Json]:
        if not q.get("ordType"):
            raise OkxError("51000", "Parameter ordType error")
        self._settle()
        types = set(q["ordType"].split(","))
        found = [
            a
            for a in self.algos.values()
            if a["state"] in states
            and a["ordType"] in types
            and q.get("instId") in (None, a["instId"])
            and q.get("instType") in (None, a["instType"])
            and q.get("algoId") in (None, a["algoId"])
        ]
        found.sort(key=lambda a: int(a["algoId"]), reverse=True)
        if q.get("after"):
            found = [a for a in found if int(a["algoId"]) < int(q["after"])]
        if q.get("before"):
            found = [a for a in found if int(a["algoId"]) > int(q["before"])]
        return found[: min(int(q.get("limit", 100)), 100)]

    def _algos_pending(self, q: dict[str, str]) -> list[Json]:
        return self._algo_page(q, ("live", "pause", "partially_effective"))

    def _algos_history(self, q: dict[str, str]) -> list[Json]:
        state = q.get("state")
        if state is None and not q.get("algoId"):
            raise OkxError("51000", "Parameter state error")
        if state not in (None, "effective", "canceled", "order_failed"):
            raise OkxError("51000", "Parameter state error")
        states = (state,) if state else ("effective", "canceled", "order_failed")
        return self._algo_page(q, states)

    def _cancel_algos(self, b: list[Json]) -> list[Json]:
        self._settle()
        out, failed = [], False
        for item in b:
            algo = self.algos.get(str(item.get("algoId")))
            if algo is None or algo["state"] not in ("live", "pause", "partially_effective"):
                failed = True
                out.append(
                    {
                        "algoId": str(item.get("algoId")),
                        "sCode": "51400",
                        "sMsg": "Cancellation failed as the order does not exist.",
                    }
                )
                continue
            self._end_algo(algo, "canceled")
            out.append({"algoId": algo["algoId"], "sCode": "0", "sMsg": ""})
        if failed and len(out) == 1:
            raise OkxError("1", "Operation failed.", out)
        return out
