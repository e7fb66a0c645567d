"""A fake Hyperliquid: POST /info and POST /exchange on 127.0.0.1, a random port.

It speaks the request and reply shapes of the real API (as ccxt 4.5.90 sends and parses them)
and keeps one account's orders, trigger orders, fills and positions, so the REAL ccxt client can
be driven through ``api_url``. Signatures are checked for shape only, not verified.

Faults it can inject, each one a real failure mode:
- ``stop_fates``: the next stops are acknowledged with the bare string ``waitingForTrigger``
  (no order id) and then end ``rejected``/``canceled``/... on the exchange: the silent failure;
- ``gap_before_stop(price, nth)``: the market jumps to ``price`` just before the nth stop from
  now is checked, so it is refused with "Invalid TP/SL price" (its level is already passed);
- ``lose_next_order``: the next (non-trigger) order is executed, but its reply is lost:
  ``"drop"`` closes the connection, ``"delay"`` answers after ``delay_seconds``;
- ``rate_limit(n, path)``: the next ``n`` requests are answered HTTP 429 and not processed;
- ``malformed(n, path)``: the next ``n`` requests are answered with broken JSON (unprocessed);
- ``unknown_signer``: every action is refused as signed by an API wallet it does not know;
- ``leverage_error``: every ``updateLeverage`` is refused with this text.
Venue behaviour it models (sources in the adapter and tests/venue_payloads/hyperliquid/):
- stops trigger on the MARK price (``set_mark``), kept apart from the book's mid (``allMids``,
  where IOC orders and triggered limits fill): ``set_mark(coin, mark, mid=...)``;
- a triggered stop becomes a limit at its ``p``: after a gap past that limit it rests unfilled
  (``triggered`` in its history; ``triggered_reads_open`` makes the venue report the resting
  limit as ``open`` again) and fills if the book comes back to it;
- "Invalid TP/SL price." for a stop whose trigger is already passed by the mark, or whose
  reduce-only limit is on the wrong side of its trigger;
- trigger orders set in Hyperliquid's UI: ``add_position_tpsl`` (``isPositionTpsl``, size 0.0,
  closes the whole position) and ``add_trigger`` (sized, no cloid unless given);
- ``updateLeverage`` ``{asset, isCross, leverage}`` per coin (``leverage_set``), served back in
  clearinghouseState positions and ``activeAssetData``.
Every request is recorded: ``paths`` (faulted ones included), ``info_types`` and
``action_types`` in arrival order, ``actions`` (the raw action objects).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

TAKER_FEE = 0.00045
TPSL_INVALID = "Invalid TP/SL price."


@dataclass
class Coin:
    name: str
    mark: float
    sz_decimals: int
    max_leverage: int = 50
    mid: float = 0.0  # the book's mid; 0.0: the mark

    def __post_init__(self) -> None:
        self.mid = self.mid or self.mark


@dataclass
class FakeOrder:
    oid: int
    coin: str
    buy: bool
    limit_px: float
    orig_sz: float
    sz: float
    reduce_only: bool
    cloid: str | None
    timestamp: int
    tif: str | None = None
    trigger_px: float | None = None
    tpsl: str | None = None
    position_tpsl: bool = False  # set from the position in the UI: closes the whole position
    resting: bool = False  # a trigger that fired: its limit is on the book, unfilled
    history: list[tuple[str, int]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.history[-1][0]

    @property
    def is_trigger(self) -> bool:
        return self.trigger_px is not None

    @property
    def on_book(self) -> bool:
        """Listed by frontendOpenOrders: waiting for its trigger, or resting as a limit."""
        return self.resting or self.status == "open"

    def frontend(self) -> dict[str, Any]:
        """The ``frontendOpenOrders`` / ``orderStatus`` shape of this order."""
        kind = "Limit"
        condition = "N/A"
        if self.is_trigger:
            kind = "Stop Market" if self.tpsl == "sl" else "Take Profit Market"
            above = self.buy if self.tpsl == "sl" else not self.buy
            condition = f"Price {'above' if above else 'below'} {self.trigger_px}"
            if self.resting:
                condition = "Triggered"
        return {
            "coin": self.coin,
            "side": "B" if self.buy else "A",
            "limitPx": str(self.limit_px),
            "sz": str(self.sz),
            "oid": self.oid,
            "timestamp": self.timestamp,
            "triggerCondition": condition,
            "isTrigger": self.is_trigger and not self.resting,
            "triggerPx": str(self.trigger_px if self.is_trigger else 0.0),
            "children": [],
            "isPositionTpsl": self.position_tpsl,
            "reduceOnly": self.reduce_only,
            "orderType": kind,
            "origSz": str(self.orig_sz),
            "tif": self.tif,
            "cloid": self.cloid,
        }


@dataclass
class FakePosition:
    szi: float = 0.0
    entry_px: float = 0.0


class OrderError(Exception):
    """An order refused by the (fake) matching engine, with Hyperliquid's message."""


class FakeHyperliquid:
    def __init__(
        self, wallet: str, coins: list[Coin] | None = None, balance: float = 10_000.0
    ) -> None:
        self.wallet = wallet.lower()
        self.coins = coins or [
            Coin("BTC", 69060.0, 5, 40),
            Coin("ETH", 1950.0, 4, 25),
        ]
        self.cash = balance  # deposits + realised P&L - fees
        self.positions: dict[str, FakePosition] = {c.name: FakePosition() for c in self.coins}
        self.orders: dict[int, FakeOrder] = {}
        self.fills: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.info_types: list[str] = []
        self.action_types: list[str] = []
        self.actions: list[dict[str, Any]] = []
        self._oid = 1_000_000_000
        self._now = 1_760_000_000_000  # ms, strictly increasing
        # faults
        self.stop_fates: deque[str] = deque()
        self.stop_reply_waiting = False
        self._gaps: dict[int, float] = {}
        self._triggers_seen = 0
        self.lose_next_order: str | None = None
        self.unknown_signer: str | None = None  # an API wallet the exchange does not know
        self.leverage_error: str | None = None
        self.triggered_reads_open = False
        # coin -> (margin mode, leverage) as updateLeverage set it
        self.leverage_set: dict[str, tuple[str, int]] = {}
        self.delay_seconds = 2.0
        # reduce-only (non-trigger) orders find nothing to match: a close that cannot go through
        self.refuse_closes = False
        self._limited: dict[str | None, int] = {}
        self._broken: dict[str | None, int] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/info", self._info)
        app.router.add_post("/exchange", self._exchange)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- fault injection and test helpers ----------------------------------------------------
    def rate_limit(self, n: int, path: str | None = None) -> None:
        """Answer the next ``n`` requests (to ``/info`` or ``/exchange``, or any) with 429."""
        self._limited[path] = self._limited.get(path, 0) + n

    def clear_faults(self) -> None:
        """The exchange is itself again: pending 429s and broken answers are dropped."""
        self._limited.clear()
        self._broken.clear()

    def gap_before_stop(self, price: float, nth: int = 1) -> None:
        self._gaps[self._triggers_seen + nth] = price

    def malformed(self, n: int, path: str | None = None) -> None:
        self._broken[path] = self._broken.get(path, 0) + n

    def coin(self, name: str) -> Coin:
        return next(c for c in self.coins if c.name == name)

    def set_mark(self, name: str, price: float, mid: float | None = None) -> None:
        """Move the market: the mark to ``price``, the book's mid with it (or to ``mid``).
        Stops the MARK crosses fire: each becomes a limit at its price, which fills at the mid
        when it crosses it and otherwise rests on the book (a gap past the limit)."""
        coin = self.coin(name)
        coin.mark = price
        coin.mid = price if mid is None else mid
        for o in list(self.orders.values()):
            if o.coin != name or not o.is_trigger:
                continue
            assert o.trigger_px is not None
            if o.resting:
                self._work_limit(o)
            elif o.status == "open" and (
                (o.buy and price >= o.trigger_px) or (not o.buy and price <= o.trigger_px)
            ):
                self._end(o, "triggered")
                if not self._work_limit(o):
                    o.resting = True
                    if self.triggered_reads_open:
                        self._end(o, "open")

    def _work_limit(self, o: FakeOrder) -> bool:
        """A triggered stop's limit against the book: True when it filled (or had nothing left
        to close), False when it rests."""
        coin = self.coin(o.coin)
        if not (o.limit_px <= coin.mid if not o.buy else o.limit_px >= coin.mid):
            return False
        held = abs(self.positions[o.coin].szi)
        size = held if o.position_tpsl else min(o.sz, held)
        o.resting = False
        if size > 0:
            self._fill(o, size, coin.mid)
        o.sz = 0.0
        self._end(o, "filled")
        return True

    def add_position_tpsl(
        self, name: str, trigger_px: float, limit_px: float | None = None, cloid: str | None = None
    ) -> FakeOrder:
        """A stop-loss set from the position in Hyperliquid's UI: ``isPositionTpsl``, size 0.0,
        it closes the whole position when it fires. Its limit defaults to the trigger -/+ 10%
        (the venue's market TP/SL slippage)."""
        held = self.positions[name].szi
        assert held != 0, "a position TP/SL needs a position"
        buy = held < 0
        limit = limit_px if limit_px is not None else trigger_px * (1.1 if buy else 0.9)
        order = self._new(self.coin(name), buy, limit, 0.0, True, cloid)
        order.trigger_px, order.tpsl, order.position_tpsl = trigger_px, "sl", True
        return order

    def add_trigger(
        self,
        name: str,
        buy: bool,
        size: float,
        trigger_px: float,
        limit_px: float,
        cloid: str | None = None,
        reduce_only: bool = True,
        tpsl: str = "sl",
    ) -> FakeOrder:
        """A sized trigger order placed outside the agent (Hyperliquid's UI: no cloid)."""
        order = self._new(self.coin(name), buy, limit_px, size, reduce_only, cloid)
        order.trigger_px, order.tpsl = trigger_px, tpsl
        return order

    def end_order(self, oid: int, status: str) -> None:
        """The exchange ends an order on its own (marginCanceled, ...), as after a liquidation."""
        self._end(self.orders[oid], status)

    def open_position(self, name: str, szi: float, entry: float) -> None:
        """A position opened outside the agent (another app, by hand)."""
        self.positions[name] = FakePosition(szi, entry)

    def by_cloid(self, cloid: str) -> FakeOrder | None:
        return next((o for o in self.orders.values() if o.cloid == cloid), None)

    def live_stops(self, name: str | None = None) -> list[FakeOrder]:
        """Trigger orders still waiting for their trigger (a resting triggered limit is not)."""
        return [
            o
            for o in self.orders.values()
            if o.is_trigger
            and o.status == "open"
            and not o.resting
            and (name is None or o.coin == name)
        ]

    def order_actions(self) -> list[dict[str, Any]]:
        """Every order wire object received, whatever became of it."""
        return [o for a in self.actions if a.get("type") == "order" for o in a["orders"]]

    # -- plumbing ----------------------------------------------------------------------------
    def _tick(self) -> int:
        self._now += 1
        return self._now

    def _take(self, faults: dict[str | None, int], path: str) -> bool:
        for key in (path, None):
            if faults.get(key, 0) > 0:
                faults[key] -= 1
                return True
        return False

    async def _body(self, request: web.Request, path: str) -> dict[str, Any] | web.Response:
        self.paths.append(path)
        if self._take(self._limited, path):
            return web.Response(status=429, text="null", content_type="application/json")
        if self._take(self._broken, path):
            return web.Response(text='{"status": "ok", "respo', content_type="application/json")
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=422, text="Failed to deserialize the JSON body")
        if not isinstance(body, dict):
            return web.Response(status=422, text="Failed to deserialize the JSON body")
        return body

    # -- /info -------------------------------------------------------------------------------
    async def _info(self, request: web.Request) -> web.Response:
        body = await self._body(request, "/info")
        if isinstance(body, web.Response):
            return body
        kind = str(body.get("type"))
        self.info_types.append(kind)
        user = str(body.get("user", "")).lower()
        mine = user == self.wallet
        answer: Any
        if kind == "meta":
            answer = self._meta()
        elif kind == "metaAndAssetCtxs":
            answer = [self._meta(), [self._ctx(c) for c in self.coins]]
        elif kind == "spotMeta":
            answer = {"universe": [], "tokens": [_USDC_TOKEN]}
        elif kind == "spotMetaAndAssetCtxs":
            answer = [{"universe": [], "tokens": [_USDC_TOKEN]}, []]
        elif kind == "perpDexs":
            answer = [None]
        elif kind == "allMids":
            answer = {c.name: str(c.mid) for c in self.coins}
        elif kind == "userAbstraction":
            answer = "default"
        elif kind == "clearinghouseState":
            answer = self._clearinghouse(mine)
        elif kind in ("frontendOpenOrders", "openOrders"):
            answer = [o.frontend() for o in self.orders.values() if mine and o.on_book]
        elif kind == "orderStatus":
            answer = self._order_status(body.get("oid"), mine)
        elif kind == "historicalOrders":
            answer = self._history() if mine else []
        elif kind == "userFills":
            answer = list(reversed(self.fills)) if mine else []
        elif kind == "userFillsByTime":
            start = int(body.get("startTime") or 0)
            answer = [f for f in self.fills if mine and f["time"] >= start]
        elif kind == "candleSnapshot":
            answer = self._candles(body.get("req") or {})
        elif kind == "activeAssetData" and any(c.name == body.get("coin") for c in self.coins):
            answer = self._active_asset(self.coin(str(body["coin"])), str(body.get("user")))
        else:
            return web.Response(status=422, text=f"Failed to deserialize the JSON body: {kind}")
        return web.json_response(answer)

    def _meta(self) -> dict[str, Any]:
        return {
            "universe": [
                {"name": c.name, "szDecimals": c.sz_decimals, "maxLeverage": c.max_leverage}
                for c in self.coins
            ]
        }

    def _ctx(self, c: Coin) -> dict[str, Any]:
        px, mid = str(c.mark), str(c.mid)
        return {
            "funding": "0.0000125",
            "openInterest": "1000.0",
            "prevDayPx": px,
            "dayNtlVlm": "1000000.0",
            "premium": "0.0",
            "oraclePx": px,
            "markPx": px,
            "midPx": mid,
            "impactPxs": [mid, mid],
        }

    def _leverage(self, c: Coin, margin: float) -> dict[str, Any]:
        """A coin's leverage object: as updateLeverage set it, else cross at up to 20x."""
        mode, value = self.leverage_set.get(c.name, ("cross", min(20, c.max_leverage)))
        out: dict[str, Any] = {"type": mode, "value": value}
        if mode == "isolated":
            out["rawUsd"] = str(-margin)
        return out

    def _active_asset(self, c: Coin, user: str) -> dict[str, Any]:
        """activeAssetData, as the info endpoint documents it (perpetuals)."""
        free = str(self.cash)
        return {
            "user": user,
            "coin": c.name,
            "leverage": self._leverage(c, 0.0),
            "maxTradeSzs": [free, free],
            "availableToTrade": [free, free],
            "markPx": str(c.mark),
        }

    def _clearinghouse(self, mine: bool) -> dict[str, Any]:
        positions = []
        upnl = margin = ntl = 0.0
        for c in self.coins:
            p = self.positions[c.name]
            if not mine or p.szi == 0:
                continue
            pnl = (c.mark - p.entry_px) * p.szi
            value = abs(p.szi) * c.mark
            upnl, ntl, margin = upnl + pnl, ntl + value, margin + value / 10
            positions.append(
                {
                    "type": "oneWay",
                    "position": {
                        "coin": c.name,
                        "szi": str(p.szi),
                        "entryPx": str(p.entry_px),
                        "positionValue": str(value),
                        "unrealizedPnl": str(pnl),
                        "returnOnEquity": "0.0",
                        "leverage": self._leverage(c, value / 10),
                        "liquidationPx": None,
                        "marginUsed": str(value / 10),
                        "maxLeverage": c.max_leverage,
                        "cumFunding": {"allTime": "0.0", "sinceOpen": "0.0", "sinceChange": "0.0"},
                    },
                }
            )
        value = (self.cash + upnl) if mine else 0.0
        summary = {
            "accountValue": str(value),
            "totalMarginUsed": str(margin),
            "totalNtlPos": str(ntl),
            "totalRawUsd": str(value),
        }
        return {
            "assetPositions": positions,
            "crossMaintenanceMarginUsed": str(margin / 2),
            "crossMarginSummary": summary,
            "marginSummary": summary,
            "time": self._now,
            "withdrawable": str(max(0.0, value - margin)),
        }

    def _history(self) -> list[dict[str, Any]]:
        """Every status each order went through, newest first. As in ccxt's recorded
        fixture, the ended entries carry the order id and timestamps as strings."""
        out = []
        for o in self.orders.values():
            for status, ts in o.history:
                order = o.frontend()
                if status != "open":
                    order |= {"oid": str(o.oid), "timestamp": str(o.timestamp)}
                stamp: int | str = ts if status == "open" else str(ts)
                out.append({"order": order, "status": status, "statusTimestamp": stamp})
        return sorted(out, key=lambda e: -int(e["statusTimestamp"]))

    def _order_status(self, oid: object, mine: bool) -> dict[str, Any]:
        found = None
        if mine and isinstance(oid, int):
            found = self.orders.get(oid)
        elif mine and isinstance(oid, str):
            found = self.by_cloid(oid.lower())
        if found is None:
            return {"status": "unknownOid"}
        status, ts = found.history[-1]
        return {
            "status": "order",
            "order": {"order": found.frontend(), "status": status, "statusTimestamp": ts},
        }

    def _candles(self, req: dict[str, Any]) -> list[dict[str, Any]]:
        c = self.coin(str(req.get("coin")))
        minute = 60_000
        end = int(req.get("endTime") or self._now)
        start = max(int(req.get("startTime") or 0), end - 50 * minute)
        out = []
        for t in range(start - start % minute, end, minute):
            px = str(c.mark)
            out.append(
                {"t": t, "T": t + minute - 1, "s": c.name, "i": str(req.get("interval"))}
                | {"o": px, "c": px, "h": px, "l": px, "v": "1.0", "n": 1}
            )
        return out

    # -- /exchange ---------------------------------------------------------------------------
    async def _exchange(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, "/exchange")
        if isinstance(body, web.Response):
            return body
        action = body.get("action")
        signature = body.get("signature")
        if not isinstance(action, dict) or not isinstance(body.get("nonce"), int):
            return web.Response(status=422, text="Failed to deserialize the JSON body")
        self.action_types.append(str(action.get("type")))
        self.actions.append(action)
        if not (isinstance(signature, dict) and {"r", "s", "v"} <= signature.keys()):
            return web.json_response({"status": "err", "response": "Invalid signature"})
        if self.unknown_signer is not None:
            text = f"User or API Wallet {self.unknown_signer} does not exist."
            return web.json_response({"status": "err", "response": text})
        kind = action.get("type")
        if kind == "order":
            return await self._order_action(request, action)
        if kind in ("cancel", "cancelByCloid"):
            return web.json_response(_ok("cancel", {"statuses": self._cancels(action)}))
        if kind == "updateLeverage":
            return web.json_response(self._update_leverage(action))
        if kind in ("approveBuilderFee", "setReferrer"):
            return web.json_response({"status": "ok", "response": {"type": "default"}})
        return web.json_response({"status": "err", "response": f"Unknown action {kind}"})

    def _update_leverage(self, action: dict[str, Any]) -> dict[str, Any]:
        index, lev, cross = action.get("asset"), action.get("leverage"), action.get("isCross")
        if self.leverage_error is not None:
            return {"status": "err", "response": self.leverage_error}
        if not (isinstance(index, int) and 0 <= index < len(self.coins)):
            return {"status": "err", "response": "Invalid asset."}
        coin = self.coins[index]
        if not (isinstance(lev, int) and 1 <= lev <= coin.max_leverage):
            return {"status": "err", "response": f"Invalid leverage value {lev}"}
        if not isinstance(cross, bool):
            return {"status": "err", "response": "Failed to deserialize isCross"}
        self.leverage_set[coin.name] = ("cross" if cross else "isolated", lev)
        return {"status": "ok", "response": {"type": "default"}}

    async def _order_action(
        self, request: web.Request, action: dict[str, Any]
    ) -> web.StreamResponse:
        statuses: list[Any] = []
        lose = None
        for wire in action.get("orders", []):
            try:
                if "trigger" in wire["t"]:
                    statuses.append(self._place_trigger(wire))
                else:
                    statuses.append(self._place_limit(wire))
                    lose, self.lose_next_order = self.lose_next_order, None
            except OrderError as exc:
                statuses.append({"error": f"{exc} asset={wire.get('a')}"})
        if lose == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if lose == "delay":
            await asyncio.sleep(self.delay_seconds)
        return web.json_response(_ok("order", {"statuses": statuses}))

    def _wire(self, wire: dict[str, Any]) -> tuple[Coin, bool, float, float, bool, str | None]:
        index = wire["a"]
        if not isinstance(index, int) or not 0 <= index < len(self.coins):
            raise OrderError("Invalid asset.")
        coin = self.coins[index]
        px, sz = Decimal(str(wire["p"])), Decimal(str(wire["s"]))
        if sz <= 0:
            raise OrderError("Order has zero size.")
        if _decimals(sz) > coin.sz_decimals:
            raise OrderError("Order has invalid size.")
        if not _valid_price(px, coin.sz_decimals):
            raise OrderError("Price must be divisible by tick size.")
        cloid = wire.get("c")
        if cloid is not None and (not isinstance(cloid, str) or len(cloid) != 34):
            raise OrderError("Invalid cloid.")
        return coin, bool(wire["b"]), float(px), float(sz), bool(wire["r"]), cloid

    def _new(
        self, coin: Coin, buy: bool, px: float, sz: float, ro: bool, cloid: str | None
    ) -> FakeOrder:
        self._oid += 1
        now = self._tick()
        order = FakeOrder(self._oid, coin.name, buy, px, sz, sz, ro, cloid, now)
        order.history.append(("open", now))
        self.orders[order.oid] = order
        return order

    def _place_trigger(self, wire: dict[str, Any]) -> Any:
        coin, buy, px, sz, ro, cloid = self._wire(wire)
        trigger = wire["t"]["trigger"]
        trigger_px = float(trigger["triggerPx"])
        self._triggers_seen += 1
        gap = self._gaps.pop(self._triggers_seen, None)
        if gap is not None:
            self.set_mark(coin.name, gap)
        if trigger["tpsl"] == "sl" and (
            trigger_px >= coin.mark if not buy else trigger_px <= coin.mark
        ):
            raise OrderError(TPSL_INVALID)  # the mark is already past the trigger
        if trigger["tpsl"] == "sl" and ro and (px > trigger_px if not buy else px < trigger_px):
            raise OrderError(TPSL_INVALID)  # the limit on the wrong side of the trigger
        order = self._new(coin, buy, px, sz, ro, cloid)
        order.trigger_px, order.tpsl = trigger_px, str(trigger["tpsl"])
        if self.stop_fates:
            self._end(order, self.stop_fates.popleft())
            return "waitingForTrigger"
        return "waitingForTrigger" if self.stop_reply_waiting else {"resting": {"oid": order.oid}}

    def _place_limit(self, wire: dict[str, Any]) -> Any:
        coin, buy, px, sz, ro, cloid = self._wire(wire)
        tif = str(wire["t"]["limit"]["tif"])
        pos = self.positions[coin.name]
        crosses = px >= coin.mid if buy else px <= coin.mid
        if ro and self.refuse_closes:
            raise OrderError("Order could not immediately match against any resting orders.")
        if ro:
            if pos.szi == 0 or (pos.szi > 0) == buy:
                raise OrderError("Reduce only order would increase position.")
            sz = min(sz, abs(pos.szi))
        elif sz * coin.mark < 10:
            raise OrderError("Order must have minimum value of $10.")
        if tif == "Ioc" and not crosses:
            raise OrderError("Order could not immediately match against any resting orders.")
        order = self._new(coin, buy, px, sz, ro, cloid)
        order.tif = tif
        if not crosses:
            return {"resting": {"oid": order.oid}}
        self._fill(order, sz, coin.mid)
        order.sz = 0.0
        self._end(order, "filled")
        return {"filled": {"totalSz": str(sz), "avgPx": str(coin.mid), "oid": order.oid}}

    def _fill(self, order: FakeOrder, sz: float, px: float) -> None:
        pos = self.positions[order.coin]
        signed = sz if order.buy else -sz
        start = pos.szi
        closing = min(abs(signed), abs(start)) if start * signed < 0 else 0.0
        pnl = closing * (px - pos.entry_px) * (1 if start > 0 else -1)
        fee = sz * px * TAKER_FEE
        new = round(start + signed, 10)
        if start == 0 or (start > 0) == (signed > 0):
            pos.entry_px = (abs(start) * pos.entry_px + sz * px) / abs(new)
        elif new != 0 and (new > 0) != (start > 0):
            pos.entry_px = px  # flipped
        pos.szi = new
        if new == 0:
            pos.entry_px = 0.0
        self.cash += pnl - fee
        self.fills.append(
            {
                "coin": order.coin,
                "px": str(px),
                "sz": str(sz),
                "side": "B" if order.buy else "A",
                "time": self._tick(),
                "startPosition": str(start),
                "dir": "Close Long" if start > 0 and not order.buy else "Open",
                "closedPnl": str(pnl),
                "hash": "0x" + "0" * 64,
                "oid": order.oid,
                "crossed": True,
                "fee": str(fee),
                "tid": len(self.fills) + 1,
                "feeToken": "USDC",
                "twapId": None,
            }
        )
        if new == 0:  # reduce-only orders left without a position are canceled by the exchange
            for o in self.orders.values():
                if o.coin == order.coin and o.reduce_only and o.on_book and o is not order:
                    o.resting = False
                    self._end(o, "reduceOnlyCanceled")

    def _end(self, order: FakeOrder, status: str) -> None:
        order.history.append((status, self._tick()))

    def _cancels(self, action: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        for c in action.get("cancels", []):
            if action["type"] == "cancel":
                order = self.orders.get(c.get("o"))
            else:
                order = self.by_cloid(str(c.get("cloid")).lower())
            if order is None or not order.on_book:
                out.append({"error": "Order was never placed, already canceled, or filled."})
                continue
            order.resting = False
            self._end(order, "canceled")
            out.append("success")
        return out


_USDC_TOKEN = {
    "name": "USDC",
    "szDecimals": 8,
    "weiDecimals": 8,
    "index": 0,
    "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054",
    "isCanonical": True,
    "evmContract": None,
    "fullName": None,
}


def _ok(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"status": "ok", "response": {"type": kind, "data": data}}


def _decimals(x: Decimal) -> int:
    exponent = x.normalize().as_tuple().exponent
    assert isinstance(exponent, int), x
    return max(0, -exponent)


def _valid_price(px: Decimal, sz_decimals: int) -> bool:
    """Hyperliquid perps: at most 5 significant figures (integers always allowed) and at most
    6 - szDecimals decimals."""
    if px <= 0:
        return False
    normal = px.normalize()
    if _decimals(px) > 6 - sz_decimals:
        return False
    return normal == normal.to_integral_value() or len(normal.as_tuple().digits) <= 5
