"""OKX USDT-margined perpetual swaps behind the ExchangePort, through ccxt.async_support.okx.

- Sizes: the port speaks base units, OKX contracts of ``ctVal``; both ways exact (okx_parse).
- Entries and exits: market orders with ``clOrdId`` = Warden's client id, ``tdMode`` = the
  configured margin mode, ``reduceOnly`` for exits. The placement answer only carries the order
  id, so the fill is read back; an accepted order whose fill cannot be read is an unknown
  outcome for the caller to resolve by client id.
- Stops: ``conditional`` algo orders (POST trade/order-algo) with ``slTriggerPx``, market
  execution, ``reduceOnly``, ``algoClOrdId`` = the client id. Their state is the algo record's
  own ``state`` and ``failCode`` (ccxt's unified status maps ``order_failed`` to ``canceled``);
  ``pause`` is PAUSED, never protection. Stops are listed and read as ``conditional`` and
  ``oco`` (the stop-loss leg of an oco set in OKX's app is a stop), including ones that close
  the whole position (``closeFraction: "1"``, no ``sz``): ``whole_position``, size 0.
- The account must be in net position mode and a mode that trades swaps; checked before the
  first private call, refused with AccountModeError otherwise. Leverage is set per symbol (with
  the margin mode, POST account/set-leverage) before the first entry when configured.
- Equity (``balance``): acctLv 2 (single-currency margin) sizes from the USDT line (``eq``,
  ``availEq``). acctLv 3 (multi-currency) and 4 (portfolio margin) size from the account-level
  USD figures: ``adjEq`` (equity after collateral discounts, what OKX margins on) and
  ``availEq``, currency "USD". Never ``totalEq``, which counts assets that are not collateral,
  and never the USDT line, which on such accounts can be ~0 while the account is worth a lot.
- Errors: OKX 51278/51280 -> StopWouldTrigger, 51016 (clOrdId) and 51065/51068 (algoClOrdId)
  -> DuplicateClientId, 429/50011 -> RateLimited. On a write, a timeout, a cut-off answer, any
  HTTP 5xx, and 51149/51054 ("timed out", outcome unknown) -> UnknownOutcome, resolved by client
  id. Nothing is retried here: writes never are, reads may be retried by the caller
  (trading.retry). ccxt's rate limiter stays on.

ccxt is imported when an adapter is built, never at import time, so paper mode does not pay for
it. Raw payloads and ccxt objects stay in this module and okx_parse.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any, Literal, TypeVar

from trading.adapters.okx_parse import (
    ACCOUNT_LEVEL_EQUITY,
    AccountConfig,
    BadPayload,
    Contract,
    account_config_from,
    balance_from,
    candle_from,
    contract_from,
    exception_names,
    fill_from,
    is_not_found,
    leverage_from,
    oldest_id,
    order_from,
    position_from,
    position_leverage,
    short_text,
    stop_from,
    translate_okx,
    triggered_orders,
)
from trading.errors import (
    AuthError,
    ExchangeError,
    NetworkError,
    NotSent,
    Rejected,
    UnknownOutcome,
)
from trading.models import (
    Balance,
    Candle,
    Fill,
    LeverageSetting,
    Market,
    Order,
    OrderSide,
    OrderStatus,
    Position,
    StopAck,
    StopOrder,
    StopState,
    Ticker,
)

T = TypeVar("T")
MarginMode = Literal["cross", "isolated"]

CREDENTIALS = ("OKX_API_KEY", "OKX_API_SECRET", "OKX_API_PASSPHRASE")
CLIENT_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
PAGE = 100  # OKX's largest page for order lists
MAX_PAGES = 50
FILL_POLL_DELAYS = (0.0, 0.1, 0.2, 0.4, 0.8)  # reading a market order's fill back
# Stops are one-way TP/SL (``conditional``) and ``oco`` algo orders: OKX's app makes both, and
# GET orders-algo-pending takes the two together, comma-separated (ccxt's okx client documents
# its ordType parameter as "comma-separated stop orders: conditional, oco, ..."; OKX v5 docs,
# "Get algo order list", ordType).
STOP_ORD_TYPES = "conditional,oco"


class AccountModeError(Rejected):
    """The OKX account is not set up the way Warden trades (net mode, swaps allowed)."""


class MissingCredentials(ValueError):
    """OKX credentials are not configured; the message names the variables, never values."""


@functools.cache
def _client_class() -> Any:
    """ccxt's okx client, refusing answers that are not an OKX JSON object with a data list:
    a cut-off body must not read as 'no positions' (ccxt would parse it to an empty list)."""
    import ccxt.async_support as ccxt_async

    class CheckedOkx(ccxt_async.okx):
        async def fetch(
            self, url: str, method: str = "GET", headers: Any = None, body: Any = None
        ) -> Any:
            response = await super().fetch(url, method, headers, body)
            if not isinstance(response, dict) or not isinstance(response.get("data"), list):
                raise ccxt_async.BadResponse(
                    f"{method} {url.split('?')[0]}: the answer is not an OKX JSON object"
                )
            return response

        def handle_errors(
            self,
            code: int,
            reason: str,
            url: str,
            method: str,
            headers: Any,
            body: str,
            response: Any,
            request_headers: Any,
            request_body: Any,
        ) -> Any:
            # A 5xx may carry an OKX JSON body (51149 "Order timed out" comes with HTTP 500):
            # ccxt would read its code as a plain refusal. Whatever the body, the server failed
            # mid-request, so the outcome of a write is unknown: a network-class error.
            if isinstance(code, int) and code >= 500:
                raise ccxt_async.ExchangeNotAvailable(f"{self.id} HTTP {code} {body}")
            return super().handle_errors(
                code, reason, url, method, headers, body, response, request_headers, request_body
            )

    return CheckedOkx


def _stop_from_info(info: Any, contract: Contract) -> StopOrder | None:
    return stop_from(info, contract) if isinstance(info, Mapping) else None


class OkxExchange:
    """The ExchangePort on one OKX account (USDT-margined swaps, net position mode)."""

    def __init__(
        self,
        name: str,
        account: str,
        api_key: str | None,
        secret: str | None,
        passphrase: str | None,
        *,
        sandbox: bool = False,
        api_url: str | None = None,
        margin_mode: MarginMode = "cross",
        leverage: int | None = None,
        timeout_ms: int = 10_000,
        rate_limit_ms: float | None = None,
    ) -> None:
        if margin_mode not in ("cross", "isolated"):
            raise ValueError(f"margin mode {margin_mode!r}: cross or isolated")
        if leverage is not None and not 1 <= leverage <= 125:
            raise ValueError(f"leverage {leverage}: between 1 and 125")
        self.name = name
        self.account = account
        self.sandbox = sandbox
        self.margin_mode: MarginMode = margin_mode
        self.leverage = leverage
        self.has_credentials = bool(api_key and secret and passphrase)
        config: dict[str, Any] = {
            "apiKey": api_key or "",
            "secret": secret or "",
            "password": passphrase or "",
            "enableRateLimit": True,
            "timeout": timeout_ms,
            "options": {
                "defaultType": "swap",
                "fetchMarkets": {"types": ["swap"]},
                "createOrder": "privatePostTradeOrder",
                "adjustForTimeDifference": False,
            },
            # OKX's currency list is private and not needed: markets carry everything used
            "has": {"fetchCurrencies": False},
        }
        if rate_limit_ms is not None:
            config["rateLimit"] = rate_limit_ms
        self._ex: Any = _client_class()(config)
        if sandbox:
            self._ex.set_sandbox_mode(True)  # OKX demo trading (x-simulated-trading: 1)
        if api_url:
            self._ex.urls["api"] = {"rest": api_url.rstrip("/")}
        self._contracts: dict[str, Contract] = {}
        self._by_inst: dict[str, Contract] = {}
        self._load_lock = asyncio.Lock()
        self._account_ok = False
        self._acct_lv = "2"
        self._levered: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"OkxExchange(name={self.name!r}, account={self.account!r}, sandbox={self.sandbox})"

    # -- plumbing ----------------------------------------------------------------------------

    async def _call(
        self, fn: Callable[[], Awaitable[T]], *, write: bool = False, client_id: str | None = None
    ) -> T:
        try:
            return await fn()
        except ExchangeError:
            raise
        except (BadPayload, TypeError, KeyError, IndexError, AttributeError, ValueError) as exc:
            what = f"unreadable answer from okx ({type(exc).__name__}: {short_text(str(exc))})"
            raise (UnknownOutcome(what, client_id) if write else NetworkError(what)) from exc
        except Exception as exc:
            if "BaseError" not in exception_names(exc):
                raise
            raise translate_okx(exc, write=write, client_id=client_id) from exc

    async def _load(self) -> None:
        if self._contracts:
            return
        async with self._load_lock:
            if self._contracts:
                return
            loaded = await self._call(lambda: self._ex.load_markets())
            contracts = {}
            for m in loaded.values():
                c = contract_from(m)
                if c is not None:
                    contracts[c.symbol] = c
            self._by_inst = {c.inst_id: c for c in contracts.values()}
            self._contracts = contracts

    async def _contract(self, symbol: str) -> Contract:
        await self._load()
        c = self._contracts.get(symbol)
        if c is None:
            # a local check: the adapter knows no such contract, nothing was sent
            raise NotSent(f"{symbol} is not a live USDT-margined swap on okx")
        return c

    def _require_credentials(self) -> None:
        if not self.has_credentials:
            raise AuthError(f"okx {self.name}: credentials missing ({', '.join(CREDENTIALS)})")

    async def account_config(self) -> AccountConfig:
        """GET account/config: position mode, account mode, the key's permissions."""
        self._require_credentials()
        raw = await self._call(lambda: self._ex.privateGetAccountConfig())
        return _parse(lambda: account_config_from(raw))

    async def check_account(self) -> AccountConfig:
        """The account config, raising AccountModeError if Warden must not trade on it."""
        config = await self.account_config()
        problems = config.problems()
        if problems:
            self._account_ok = False
            raise AccountModeError(f"okx {self.name}: " + "; ".join(problems))
        self._acct_lv = config.acct_lv
        self._account_ok = True
        return config

    async def _ready(self) -> None:
        """Before any private call: markets loaded and the account fit to trade."""
        self._require_credentials()
        await self._load()
        if not self._account_ok:
            await self.check_account()

    async def prepare(self, symbol: str, leverage: int) -> None:
        """Set the symbol's leverage for the configured margin mode (idempotent on OKX)."""
        await self._contract(symbol)
        await self._ready()
        await self._call(
            lambda: self._ex.set_leverage(leverage, symbol, {"marginMode": self.margin_mode})
        )
        self._levered[symbol] = leverage

    async def current_leverage(self, symbol: str) -> int | None:
        """The symbol's leverage for the configured margin mode, read only."""
        c = await self._contract(symbol)
        await self._ready()
        raw = await self._call(
            lambda: self._ex.privateGetAccountLeverageInfo(
                {"instId": c.inst_id, "mgnMode": self.margin_mode}
            )
        )
        lever = _parse(lambda: leverage_from(raw, c, self.margin_mode)).leverage
        return int(lever) if lever is not None else None

    async def leverage_setting(self, symbol: str) -> LeverageSetting:
        """What the symbol trades with now, read only (for ``warden doctor``): an open
        position's own leverage and margin mode (GET account/positions) if there is one, else
        the leverage OKX has for the configured margin mode (GET account/leverage-info)."""
        c = await self._contract(symbol)
        await self._ready()
        raw = await self._call(
            lambda: self._ex.privateGetAccountPositions({"instType": "SWAP", "instId": c.inst_id})
        )

        def held() -> LeverageSetting | None:
            for info in raw.get("data") or []:
                if isinstance(info, Mapping) and info.get("instId") == c.inst_id:
                    found = position_leverage(info, c)
                    if found is not None:
                        return found
            return None

        setting = _parse(held)
        if setting is not None:
            return setting
        info = await self._call(
            lambda: self._ex.privateGetAccountLeverageInfo(
                {"instId": c.inst_id, "mgnMode": self.margin_mode}
            )
        )
        return _parse(lambda: leverage_from(info, c, self.margin_mode))

    async def server_time(self) -> float:
        """The exchange's clock in epoch seconds (OKX refuses requests more than 30 s off)."""
        ms = await self._call(lambda: self._ex.fetch_time())
        if not isinstance(ms, int | float):
            raise NetworkError("unreadable answer from okx: no server time")
        return float(ms) / 1000.0

    def _check_client_id(self, client_id: str) -> None:
        if not CLIENT_ID.match(client_id):
            raise NotSent(f"client id {client_id!r} is not 1-32 letters and digits")

    def _contracts_of(self, c: Contract, size: float) -> Decimal:
        try:
            return c.to_contracts(size)
        except ValueError as exc:
            raise NotSent(f"{c.symbol}: {exc}") from None

    async def _pages(
        self,
        fetch: Callable[[dict[str, Any]], Awaitable[Any]],
        params: dict[str, Any],
        key: str,
        time_key: str = "cTime",
    ) -> list[Mapping[str, Any]]:
        """Every record of an OKX list endpoint, page by page (``after`` = the oldest id)."""
        found: dict[str, Mapping[str, Any]] = {}
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            query = dict(params, **({"after": cursor} if cursor else {}))
            page = await self._call(functools.partial(fetch, query))
            if not isinstance(page, list):
                raise NetworkError("unreadable answer from okx: a list of records was expected")
            infos = [
                o["info"]
                for o in page
                if isinstance(o, Mapping) and isinstance(o.get("info"), Mapping)
            ]
            for info in infos:
                found[str(info.get(key))] = info
            if len(page) < PAGE or not infos:
                break
            cursor = _parse(functools.partial(oldest_id, infos, key, time_key))
        return list(found.values())

    async def _algo_history(self, symbol: str | None, state: str) -> list[Mapping[str, Any]]:
        """Ended conditional and oco algo orders in one state (OKX keeps 3 months)."""
        params = {"trigger": True, "ordType": STOP_ORD_TYPES, "instType": "SWAP", "state": state}
        fetch = (
            self._ex.fetch_closed_orders if state == "effective" else self._ex.fetch_canceled_orders
        )
        return await self._pages(lambda q: fetch(symbol, None, PAGE, q), params, "algoId")

    # -- ExchangePort: reads -----------------------------------------------------------------

    async def markets(self) -> dict[str, Market]:
        await self._load()
        return {s: c.market for s, c in self._contracts.items()}

    async def candles(
        self, symbol: str, timeframe: str, since: float | None = None, limit: int = 200
    ) -> list[Candle]:
        """Every candle OKX returns, the forming one included, oldest first."""
        await self._contract(symbol)
        since_ms = int(since * 1000) if since is not None else None
        rows = await self._call(lambda: self._ex.fetch_ohlcv(symbol, timeframe, since_ms, limit))
        return _parse(lambda: [candle_from(row) for row in rows])

    async def ticker(self, symbol: str) -> Ticker:
        await self._contract(symbol)
        t = await self._call(lambda: self._ex.fetch_ticker(symbol))
        last = t.get("last") if isinstance(t, Mapping) else None
        if isinstance(last, bool) or not isinstance(last, int | float) or not 0 < last < math.inf:
            raise NetworkError(f"unreadable answer from okx: no last price for {symbol}")
        ts = t.get("timestamp")
        return Ticker(symbol, float(last), ts / 1000.0 if ts else time.time())

    async def balance(self) -> Balance:
        """The equity Warden sizes from; by account mode, see the module docstring."""
        await self._ready()
        acct_lv = self._acct_lv
        params = {} if acct_lv in ACCOUNT_LEVEL_EQUITY else {"ccy": "USDT"}
        raw = await self._call(lambda: self._ex.fetch_balance(params))
        return _parse(lambda: balance_from(raw["info"], acct_lv=acct_lv))

    async def positions(self, symbol: str | None = None) -> list[Position]:
        await self._ready()
        symbols = [(await self._contract(symbol)).symbol] if symbol else None
        raw = await self._call(lambda: self._ex.fetch_positions(symbols, {"instType": "SWAP"}))

        def parse() -> list[Position]:
            out = []
            for p in raw:
                info = p.get("info")
                c = self._by_inst.get(str(info.get("instId"))) if isinstance(info, dict) else None
                if c is None or (symbol is not None and c.symbol != symbol):
                    continue
                pos = position_from(info, c)
                if pos is not None:
                    out.append(pos)
            return out

        return _parse(parse)

    async def get_order(
        self, symbol: str, *, order_id: str | None = None, client_id: str | None = None
    ) -> Order | None:
        if order_id is None and client_id is None:
            raise ValueError("get_order needs an order id or a client id")
        c = await self._contract(symbol)
        await self._ready()
        params = {} if order_id else {"clientOrderId": client_id}

        async def fetch() -> Order | None:
            try:
                o = await self._ex.fetch_order(order_id or "", symbol, params)
            except Exception as exc:
                if is_not_found(exc):
                    return None
                raise
            info = o.get("info")
            return order_from(info, c) if isinstance(info, Mapping) and info else None

        return await self._call(fetch)

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        await self._ready()
        if symbol is not None:
            await self._contract(symbol)
        infos = await self._pages(
            lambda q: self._ex.fetch_open_orders(symbol, None, PAGE, q),
            {"instType": "SWAP"},
            "ordId",
        )
        return _parse(lambda: self._orders(infos))

    def _orders(self, infos: list[Mapping[str, Any]]) -> list[Order]:
        out = []
        for info in infos:
            c = self._by_inst.get(str(info.get("instId")))
            if c is not None:
                out.append(order_from(info, c))
        return sorted(out, key=lambda o: o.ts)

    async def get_stop(
        self, symbol: str, *, stop_id: str | None = None, client_id: str | None = None
    ) -> StopOrder | None:
        if stop_id is None and client_id is None:
            raise ValueError("get_stop needs a stop id or a client id")
        c = await self._contract(symbol)
        await self._ready()
        params: dict[str, Any] = {"trigger": True}
        if not stop_id:
            params["clientOrderId"] = client_id

        async def fetch() -> StopOrder | None:
            try:
                o = await self._ex.fetch_order(stop_id or "", symbol, params)
            except Exception as exc:
                if is_not_found(exc):
                    return None
                raise
            return _stop_from_info(o.get("info"), c)

        return await self._call(fetch)

    async def open_stops(self, symbol: str | None = None) -> list[StopOrder]:
        """Live stop-losses: ``conditional`` and the stop-loss legs of ``oco`` algo orders
        (``trigger`` alone would list only ``ordType: trigger``). Paused ones are not live."""
        await self._ready()
        if symbol is not None:
            await self._contract(symbol)
        infos = await self._pages(
            lambda q: self._ex.fetch_open_orders(symbol, None, PAGE, q),
            {"trigger": True, "ordType": STOP_ORD_TYPES, "instType": "SWAP"},
            "algoId",
        )
        stops = _parse(lambda: self._stops(infos))
        return [s for s in stops if s.state is StopState.LIVE]

    def _stops(self, infos: list[Mapping[str, Any]]) -> list[StopOrder]:
        out = []
        for info in infos:
            c = self._by_inst.get(str(info.get("instId")))
            stop = stop_from(info, c) if c is not None else None
            if stop is not None:
                out.append(stop)
        return sorted(out, key=lambda s: (s.updated_at, s.created_at, s.id))

    async def stop_history(
        self, symbol: str | None = None, since: float | None = None
    ) -> list[StopOrder]:
        """Every conditional/oco stop that ended since ``since`` (by its last update), oldest
        first: triggered (``effective``), canceled, and failed (``order_failed`` + failCode)."""
        await self._ready()
        if symbol is not None:
            await self._contract(symbol)
        infos: list[Mapping[str, Any]] = []
        for state in ("effective", "canceled", "order_failed"):
            infos += await self._algo_history(symbol, state)
        unique = list({str(i.get("algoId")): i for i in infos}.values())
        stops = _parse(lambda: self._stops(unique))
        return [s for s in stops if s.state.terminal and (since is None or s.updated_at >= since)]

    async def fills(self, symbol: str | None = None, since: float | None = None) -> list[Fill]:
        """Executions of the last 3 months (GET trade/fills-history), oldest first; a
        triggered stop's fills carry its algo id (from the ended stop's order ids)."""
        await self._ready()
        if symbol is not None:
            await self._contract(symbol)
        since_ms = int(since * 1000) if since is not None else None
        infos = await self._pages(
            lambda q: self._ex.fetch_my_trades(symbol, since_ms, None if since_ms else PAGE, q),
            {"instType": "SWAP"},
            "billId",
            "ts",
        )
        by_stop = await self._algo_history(symbol, "effective") if infos else []
        fired = _parse(lambda: triggered_orders(by_stop))
        return _parse(lambda: self._fills(infos, fired, since))

    def _fills(
        self, infos: list[Mapping[str, Any]], fired: dict[str, str], since: float | None
    ) -> list[Fill]:
        out = []
        for info in infos:
            c = self._by_inst.get(str(info.get("instId")))
            if c is None:
                continue
            fill = fill_from(info, c, fired.get(str(info.get("ordId"))))
            if since is None or fill.ts >= since:
                out.append(fill)
        return sorted(out, key=lambda f: (f.ts, f.order_id))

    # -- ExchangePort: writes ----------------------------------------------------------------

    async def _ensure_leverage(self, symbol: str) -> None:
        if self.leverage is None or self._levered.get(symbol) == self.leverage:
            return
        try:
            await self.prepare(symbol, self.leverage)
        except ExchangeError as exc:
            # nothing was sent for the order itself: a refusal, not an unknown outcome
            raise Rejected(
                f"{symbol}: entry not sent, leverage {self.leverage} could not be set: {exc}",
                getattr(exc, "code", None),
            ) from exc

    async def place_market_order(
        self, symbol: str, side: OrderSide, size: float, client_id: str, reduce_only: bool = False
    ) -> Order:
        c = await self._contract(symbol)
        contracts = self._contracts_of(c, size)
        self._check_client_id(client_id)
        await self._ready()
        if not reduce_only:
            await self._ensure_leverage(symbol)
        params: dict[str, Any] = {"clientOrderId": client_id, "marginMode": self.margin_mode}
        if reduce_only:
            params["reduceOnly"] = True
        ack = await self._call(
            lambda: self._ex.create_order(
                symbol, "market", side.value, float(contracts), None, params
            ),
            write=True,
            client_id=client_id,
        )
        order_id = ack.get("id")
        if not order_id:
            raise UnknownOutcome(f"{symbol}: order {client_id} answered without an id", client_id)
        return await self._read_fill(c, str(order_id), client_id)

    async def _read_fill(self, c: Contract, order_id: str, client_id: str) -> Order:
        """The accepted market order read back until it is filled or canceled."""
        seen: Order | None = None
        last_error: Exception | None = None
        for delay in FILL_POLL_DELAYS:
            await asyncio.sleep(delay)
            try:
                seen = await self.get_order(c.symbol, order_id=order_id)
            except ExchangeError as exc:
                last_error = exc
                continue
            if seen is not None and seen.status in (OrderStatus.FILLED, OrderStatus.CANCELED):
                return seen
        if seen is None:
            raise UnknownOutcome(
                f"{c.symbol}: order {client_id} accepted as {order_id}, its fill could not be "
                f"read ({last_error or 'not found'})",
                client_id,
            )
        return seen

    async def cancel_order(self, symbol: str, order_id: str) -> None:
        await self._contract(symbol)
        await self._ready()
        await self._call(lambda: self._ex.cancel_order(order_id, symbol), write=True)

    async def place_stop(
        self, symbol: str, side: OrderSide, size: float, trigger_price: float, client_id: str
    ) -> StopAck:
        c = await self._contract(symbol)
        contracts = self._contracts_of(c, size)
        try:
            trigger = c.price(trigger_price)
        except ValueError as exc:
            raise NotSent(f"{symbol}: {exc}") from None
        self._check_client_id(client_id)
        await self._ready()
        params = {
            "stopLossPrice": str(trigger),
            "reduceOnly": True,
            "marginMode": self.margin_mode,
            "clientOrderId": client_id,
            "algoClOrdId": client_id,
        }
        ack = await self._call(
            lambda: self._ex.create_order(
                symbol, "market", side.value, float(contracts), None, params
            ),
            write=True,
            client_id=client_id,
        )
        algo_id = ack.get("id")
        return StopAck(client_id, str(algo_id) if algo_id else None)

    async def cancel_stop(self, symbol: str, stop_id: str) -> None:
        await self._contract(symbol)
        await self._ready()
        await self._call(
            lambda: self._ex.cancel_order(stop_id, symbol, {"trigger": True}), write=True
        )

    async def close(self) -> None:
        await self._ex.close()


def _parse(fn: Callable[[], T]) -> T:
    """Run a parse step over an answer already received: what it cannot read is the port's
    retryable NetworkError with a clear message, never a crash or a silent default."""
    try:
        return fn()
    except (BadPayload, TypeError, KeyError, IndexError, AttributeError, ValueError) as exc:
        raise NetworkError(
            f"unreadable answer from okx ({type(exc).__name__}: {short_text(str(exc))})"
        ) from exc


def build_okx(
    name: str,
    *,
    account: str,
    sandbox: bool,
    api_url: str | None,
    margin_mode: MarginMode,
    secrets: Callable[[str], str | None],
    leverage: int | None = None,
    require_credentials: bool = True,
    timeout_ms: int = 10_000,
    rate_limit_ms: float | None = None,
) -> OkxExchange:
    """The adapter for one configured OKX account; credentials from ``secrets`` (by name).

    Without credentials only public data works (markets, candles, ticker); with
    ``require_credentials`` their absence is a MissingCredentials error naming the variables.
    """
    key, secret, passphrase = (secrets(n) for n in CREDENTIALS)
    missing = [n for n, v in zip(CREDENTIALS, (key, secret, passphrase), strict=True) if not v]
    if missing and require_credentials:
        raise MissingCredentials(f"exchange {name}: {', '.join(missing)} not set")
    return OkxExchange(
        name,
        account,
        key,
        secret,
        passphrase,
        sandbox=sandbox,
        api_url=api_url,
        margin_mode=margin_mode,
        leverage=leverage,
        timeout_ms=timeout_ms,
        rate_limit_ms=rate_limit_ms,
    )
