"""Hyperliquid perpetuals (USDC margined) behind the ExchangePort, through ccxt.async_support.

- Credentials: the main wallet address (whose account trades) and the private key of an API
  (agent) wallet that signs for it. The key lives only inside the ccxt client.
- Client ids: Warden's ids are packed into Hyperliquid ``cloid``s reversibly
  (``hyperliquid_parse.to_cloid``); an unknown outcome is resolved with ``orderStatus`` by cloid.
- Market orders: Hyperliquid has none; an IOC limit at the mid price plus/minus
  ``slippage_percent`` is sent, so a fill is never worse than that bound.
- Stops: reduce-only trigger orders ``{isMarket: true, triggerPx, tpsl: 'sl'}``. The placement
  reply may be the bare string ``waitingForTrigger`` with no order id; the stop is then read
  back by its cloid. Every status maps to a StopState (``hyperliquid_parse.stop_state``).
  Stops trigger on the MARK price and then work as a limit order; the venue's own market
  TP/SL allow 10% of slippage ("My TP/SL did not execute correctly",
  https://hyperliquid.gitbook.io/hyperliquid-docs/support/faq/trade-outcome-looks-incorrect/my-tp-sl-did-not-execute-correctly),
  so a stop's limit sits ``stop_slippage_percent`` (default 10) beyond its trigger, on the
  side that lets it fill, checked before sending. A stop that fired but whose limit rests
  unfilled (a gap) is TRIGGERED, never LIVE: the position it was for is unprotected.
- Leverage and margin mode are set per coin with one ``updateLeverage`` action (``isCross``,
  ``leverage``) before the first entry on each coin in this process; if that fails the entry
  is refused unsent.
- ccxt, left at its defaults, approves a builder fee and sets a referrer on the user's account
  before its first write. Both are switched off here (``_switch_off_grants``): the agent never
  grants a third party anything.
- Writes are sent once (ccxt's own retries are off); a timeout or lost answer on a write is an
  UnknownOutcome carrying the client id. Raw payloads never leave this module and its parser.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

from trading import retry
from trading.adapters.ccxt_errors import translate
from trading.adapters.hyperliquid_parse import (
    SETTLE,
    Found,
    Malformed,
    Raw,
    active_leverage,
    as_dict,
    as_list,
    ended_stops,
    exchange_reason,
    fill_summary,
    live_stops,
    mark_prices,
    num,
    open_orders,
    parse_candle,
    parse_fills,
    parse_markets,
    parse_order,
    parse_order_status,
    parse_positions,
    parse_stop,
    position_leverage,
    positive,
    text,
    to_cloid,
)
from trading.errors import (
    AuthError,
    DuplicateClientId,
    ExchangeError,
    InsufficientFunds,
    NetworkError,
    NotSent,
    Rejected,
    UnclearStopRefusal,
    UnknownOutcome,
)
from trading.logfmt import event
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
    Ticker,
)

log = logging.getLogger("warden.hyperliquid")

INVALID_TPSL = "Invalid TP/SL price"
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_PRIVATE_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
# wallet addresses (40 hex) and keys (64 hex) in an exchange's text; cloids (32 hex) stay
_KEYLIKE = re.compile(r"\b(0x)?([0-9a-fA-F]{64}|[0-9a-fA-F]{40})\b")
# the ccxt methods that grant something on the user's account (ccxt 4.5.90): replaced on the
# client instance; if a ccxt upgrade renames them, construction fails instead of granting
_GRANT_HOOKS = ("initialize_client", "handle_builder_fee_approval", "set_ref")
_GRANT_CALLS = ("approve_builder_fee",)
GRANT_OPTIONS: Mapping[str, object] = {
    "builderFee": False,  # no builder fee on orders
    "approvedBuilderFee": False,  # and so no 'builder' field attached to any order action
    "refSet": True,  # the referrer counts as set: setReferrer is never sent
}


async def _grant_nothing(*_: object, **__: object) -> bool:
    return True


async def _never_approve(*_: object, **__: object) -> None:
    raise NotSent("Warden never approves a builder fee on the user's account")


def _switch_off_grants(client: Any) -> None:
    for hook in (*_GRANT_HOOKS, *_GRANT_CALLS):
        if not callable(getattr(type(client), hook, None)):
            raise RuntimeError(f"ccxt hyperliquid has no {hook}(): re-check its account grants")
    client.options.update(GRANT_OPTIONS)
    for hook in _GRANT_HOOKS:
        setattr(client, hook, _grant_nothing)
    for call in _GRANT_CALLS:
        setattr(client, call, _never_approve)


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


_MALFORMED = (Malformed, TypeError, KeyError, ValueError, AttributeError, IndexError)


def port_error(exc: Exception, *, write: bool, client_id: str | None = None) -> ExchangeError:
    """A ccxt (or parsing) exception as a port error; anything else is re-raised."""
    names = _names(exc)
    if "BadResponse" in names or "NullResponse" in names or isinstance(exc, _MALFORMED):
        what = f"malformed answer from hyperliquid: {type(exc).__name__}: {exc}"
        return UnknownOutcome(what, client_id) if write else NetworkError(what)
    if "BaseError" not in names:
        raise exc
    reason = _KEYLIKE.sub("0x…", exchange_reason(str(exc)))
    if INVALID_TPSL in reason:
        return UnclearStopRefusal(reason)
    if reason.startswith("User or API Wallet"):
        return AuthError(f"hyperliquid does not know this wallet: {reason}")
    err = translate(exc, write=write, client_id=client_id)
    if type(err) in (Rejected, InsufficientFunds, DuplicateClientId):
        return type(err)(reason)
    return err


@contextmanager
def _parsing() -> Iterator[None]:
    """A payload of the wrong shape is a clear read error, never a crash deep in the caller."""
    try:
        yield
    except _MALFORMED as exc:
        raise port_error(exc, write=False) from None


class MissingCredentials(ValueError):
    """A credential the configuration needs is not set (names the variable, never a value)."""


class HyperliquidExchange:
    """ExchangePort for Hyperliquid perpetuals. Sizes are base units (Hyperliquid's own).

    Without a wallet address and key only public data works (markets, candles, ticker): the
    account's reads are AuthError, and writes are refused unsent."""

    def __init__(
        self,
        name: str,
        account: str,
        wallet_address: str | None,
        private_key: str | None,
        *,
        sandbox: bool = False,
        api_url: str | None = None,
        slippage_percent: float = 5.0,
        stop_slippage_percent: float = 10.0,
        margin_mode: Literal["cross", "isolated"] = "cross",
        leverage: int | None = None,
        timeout_ms: int = 10_000,
        enable_rate_limit: bool = True,
    ) -> None:
        if (wallet_address is None) != (private_key is None):
            raise AuthError("a Hyperliquid wallet address needs its API wallet key, and back")
        if wallet_address is not None and not _ADDRESS.match(wallet_address):
            raise AuthError("the Hyperliquid wallet address is not 0x followed by 40 hex digits")
        if private_key is not None and not _PRIVATE_KEY.match(private_key):
            raise AuthError("the Hyperliquid API wallet private key is not 32 bytes of hex")
        if not 0 < slippage_percent < 100:
            raise ValueError(f"slippage_percent {slippage_percent} is not in (0, 100)")
        if not 0 < stop_slippage_percent < 100:
            raise ValueError(f"stop_slippage_percent {stop_slippage_percent} is not in (0, 100)")
        if margin_mode not in ("cross", "isolated"):
            raise ValueError(f"margin_mode {margin_mode!r} is neither 'cross' nor 'isolated'")
        if leverage is not None and (isinstance(leverage, bool) or leverage < 1):
            raise ValueError(f"leverage {leverage!r} is not a whole number of at least 1")
        import ccxt.async_support as ccxt_async  # here, so paper mode never imports ccxt

        settings: dict[str, object] = {"timeout": timeout_ms, "enableRateLimit": enable_rate_limit}
        if wallet_address is not None:
            settings |= {"walletAddress": wallet_address, "privateKey": private_key}
        client = ccxt_async.hyperliquid(settings)
        _switch_off_grants(client)
        client.options["maxRetriesOnFailure"] = 0  # writes are sent once (I2)
        client.options["defaultSlippage"] = str(slippage_percent / 100)
        client.options["fetchMarkets"] = {"types": ["swap"]}  # perpetuals only
        if sandbox:
            client.set_sandbox_mode(True)
        if api_url:
            client.urls["api"] = {"public": api_url, "private": api_url}
        self.name = name
        self.account = account
        self.wallet = wallet_address
        self.stop_slippage_percent = stop_slippage_percent
        self.margin_mode = margin_mode
        self.leverage = leverage
        self.client: Any = client
        self._markets: dict[str, Market] | None = None
        self._coins: dict[str, str] = {}  # coin -> symbol
        self._symbols: dict[str, str] = {}  # symbol -> coin
        self._levered: set[str] = set()  # coins whose leverage this process has set

    def __repr__(self) -> str:
        return f"HyperliquidExchange(name={self.name!r}, account={self.account!r})"

    # -- plumbing ----------------------------------------------------------------------------
    async def _read(self, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await call()
        except Exception as exc:
            raise port_error(exc, write=False) from None

    async def _write(self, call: Callable[[], Awaitable[Any]], client_id: str | None) -> Any:
        try:
            return await call()
        except Exception as exc:
            raise port_error(exc, write=True, client_id=client_id) from None

    async def _info(self, request: dict[str, Any]) -> Any:
        return await self._read(lambda: self.client.publicPostInfo(request))

    def _user(self) -> str:
        if self.wallet is None:
            raise AuthError(f"exchange {self.name}: no Hyperliquid credentials (public data only)")
        return self.wallet

    def _can_write(self) -> None:
        if self.wallet is None:
            raise NotSent(f"exchange {self.name} has no Hyperliquid credentials")

    def _symbol_of(self, coin: object) -> str | None:
        """The unified symbol of a Hyperliquid coin name, None when it is not a USDC perp."""
        return self._coins.get(str(coin))

    async def _coin(self, symbol: str) -> str:
        await self.markets()
        coin = self._symbols.get(symbol)
        if coin is None:
            raise NotSent(f"{symbol} is not a Hyperliquid {SETTLE} perpetual")
        return coin

    def _wanted(self, coin: object, symbol: str | None) -> str | None:
        """The symbol of ``coin`` when it is a perpetual Warden trades and matches the filter."""
        sym = self._symbol_of(coin)
        return sym if sym is not None and (symbol is None or sym == symbol) else None

    # -- market data -------------------------------------------------------------------------
    async def markets(self) -> dict[str, Market]:
        if self._markets is None:
            loaded = await self._read(lambda: self.client.load_markets())
            with _parsing():
                perps = parse_markets(loaded)
            self._coins = {coin: symbol for symbol, (coin, _) in perps.items()}
            self._symbols = {symbol: coin for symbol, (coin, _) in perps.items()}
            self._markets = {symbol: market for symbol, (_, market) in perps.items()}
        return dict(self._markets)

    async def candles(
        self, symbol: str, timeframe: str, since: float | None = None, limit: int = 200
    ) -> list[Candle]:
        await self._coin(symbol)
        since_ms = int(since * 1000) if since is not None else None
        rows = await self._read(lambda: self.client.fetch_ohlcv(symbol, timeframe, since_ms, limit))
        with _parsing():
            return [parse_candle(r) for r in as_list(rows, "candleSnapshot")]

    async def ticker(self, symbol: str) -> Ticker:
        """The MARK price (``metaAndAssetCtxs`` ``markPx``) as ``last``, not the mid or the last
        trade: TP/SL "are triggered by mark price" (Hyperliquid docs, "My TP/SL did not execute
        correctly"), so the domain's checks of a stop against the price (is the level already
        passed? is the stop on the protective side?) read what the venue's trigger reads.
        Market orders are bounded from the book's mid (``allMids``) instead, see ``_mid``."""
        coin = await self._coin(symbol)
        payload = await self._info({"type": "metaAndAssetCtxs"})
        with _parsing():
            marks = mark_prices(payload)
            if coin not in marks:
                raise Malformed(f"no mark price for {coin}")
        return Ticker(symbol, marks[coin], time.time())

    async def _mid(self, coin: str) -> float:
        mids = await self._info({"type": "allMids"})
        with _parsing():
            return positive(as_dict(mids, "allMids"), coin)

    # -- account -----------------------------------------------------------------------------
    async def _state(self) -> Raw:
        payload = await self._info({"type": "clearinghouseState", "user": self._user()})
        with _parsing():
            return as_dict(payload, "clearinghouseState")

    async def balance(self) -> Balance:
        self._user()
        raw = await self._read(lambda: self.client.fetch_balance())
        with _parsing():
            usdc = as_dict(as_dict(raw, "balance").get(SETTLE), "USDC balance")
            total = num(usdc, "total")
            used = float(usdc.get("used") or 0.0)
            free = float(usdc["free"]) if usdc.get("free") is not None else total - used
        return Balance(SETTLE, total, free, used)

    async def server_time(self) -> float:
        """The exchange's clock (clearinghouseState's time), for a clock-skew check."""
        state = await self._state()
        with _parsing():
            return num(state, "time") / 1000

    async def positions(self, symbol: str | None = None) -> list[Position]:
        await self.markets()
        state = await self._state()
        with _parsing():
            found = parse_positions(state, self._symbol_of)
        return [p for p in found if symbol is None or p.symbol == symbol]

    # -- orders ------------------------------------------------------------------------------
    async def place_market_order(
        self, symbol: str, side: OrderSide, size: float, client_id: str, reduce_only: bool = False
    ) -> Order:
        """An IOC limit at the mid price +/- the slippage bound. Nothing is sent when the
        market or its mid price cannot be read (NotSent: the exchange never saw it)."""
        self._can_write()
        if not reduce_only:
            await self._ensure_leverage(symbol)
        try:
            coin = await self._coin(symbol)
            mid = await retry.read(lambda: self._mid(coin))
        except ExchangeError as exc:
            if isinstance(exc, NotSent):
                raise
            raise NotSent(f"cannot read the {symbol} mid price: {exc}") from None
        cloid = to_cloid(client_id)
        params = {"clientOrderId": cloid, "reduceOnly": reduce_only, "timeInForce": "Ioc"}
        created = await self._write(
            lambda: self.client.create_order(symbol, "market", side.value, size, mid, params),
            client_id,
        )
        info = created.get("info") if isinstance(created, Mapping) else None
        event(log, "hyperliquid.order", symbol=symbol, client_id=client_id, cloid=cloid)
        fill = info.get("filled") if isinstance(info, Mapping) else None
        if not isinstance(fill, Mapping):
            # resting, or a reply without this order: what became of it is read by cloid
            found = await self.get_order(symbol, client_id=client_id)
            if found is None:
                raise UnknownOutcome(f"order {client_id}: reply {info!r}, not found", client_id)
            return found
        try:
            oid, filled, avg = text(fill, "oid"), num(fill, "totalSz"), num(fill, "avgPx")
        except Malformed as exc:
            raise port_error(exc, write=True, client_id=client_id) from None
        fee = await self._fee(oid)
        whole = filled >= size - 1e-12
        status = OrderStatus.FILLED if whole else OrderStatus.PARTIALLY_FILLED
        return Order(
            symbol, oid, client_id, side, size, filled, avg, status, reduce_only, fee, time.time()
        )

    async def _fills(self) -> list[Raw]:
        payload = await self._info({"type": "userFills", "user": self._user()})
        with _parsing():
            return as_list(payload, "userFills")

    async def _fee(self, oid: str) -> float:
        """The fees of one order's fills; 0.0 when they cannot be read (the fill stands)."""
        try:
            return fill_summary(await self._fills(), oid)[2]
        except (ExchangeError, Malformed) as exc:
            event(log, "hyperliquid.fee_unknown", logging.WARNING, oid=oid, error=str(exc))
            return 0.0

    async def _order_status(self, order_id: str | None, client_id: str | None) -> Found | None:
        """The order's record by order id, else by cloid; None when the exchange has neither."""
        keys: list[int | str] = []
        if order_id:
            keys.append(int(order_id) if order_id.isdigit() else order_id)
        if client_id:
            keys.append(to_cloid(client_id))
        for key in keys:
            request = {"type": "orderStatus", "user": self._user(), "oid": key}
            try:
                payload = await self.client.publicPostInfo(request)
            except Exception as exc:
                if "OrderNotFound" in _names(exc):  # {"status": "unknownOid"}
                    continue
                raise port_error(exc, write=False) from None
            with _parsing():
                return parse_order_status(payload)
        return None

    async def get_order(
        self, symbol: str, *, order_id: str | None = None, client_id: str | None = None
    ) -> Order | None:
        await self.markets()
        found = await self._order_status(order_id, client_id)
        if found is None:
            return None
        o = found.order
        with _parsing():
            settled = found.status == "filled" or num(o, "sz") < num(o, "origSz")
        fills = await self._fills() if settled else []
        sym = self._symbol_of(o.get("coin")) or symbol
        with _parsing():
            return parse_order(o, found.status, sym, fills, client_id)

    async def _frontend_orders(self) -> list[Raw]:
        payload = await self._info({"type": "frontendOpenOrders", "user": self._user()})
        with _parsing():
            return open_orders(payload)

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        await self.markets()
        orders = await self._frontend_orders()
        with _parsing():
            return [
                parse_order(o, "open", sym, [], None)
                for o in orders
                if not o.get("isTrigger") and (sym := self._wanted(o.get("coin"), symbol))
            ]

    async def _cancel(self, symbol: str, oid: str) -> None:
        self._can_write()
        await self._coin(symbol)
        answer = await self._write(lambda: self.client.cancel_order(oid, symbol), None)
        said = answer.get("info") if isinstance(answer, Mapping) else None
        if said != "success":
            raise UnknownOutcome(f"cancel of {symbol} order {oid}: reply {said!r}")

    async def cancel_order(self, symbol: str, order_id: str) -> None:
        await self._cancel(symbol, order_id)

    # -- stops -------------------------------------------------------------------------------
    def _stop_wire(
        self,
        symbol: str,
        side: OrderSide,
        size: float,
        trigger_price: float,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        """The order object ccxt will send for this stop, checked before anything is sent: a
        reduce-only ``sl`` trigger whose limit lies beyond the trigger on the side that lets it
        fill (a sell's below, a buy's above). A limit on the wrong side is refused by the venue
        as "Invalid TP/SL price", which the domain reads as a level already passed."""
        # create_orders_request hands amount and price on as strings (ccxt's safe_string)
        amount, price = (self.client.safe_string({"v": v}, "v") for v in (size, trigger_price))
        wire: dict[str, Any] = self.client.create_order_request(
            symbol, "market", side.value, amount, price, params
        )
        trigger = wire["t"]["trigger"]
        limit, at = float(wire["p"]), float(trigger["triggerPx"])
        right_side = limit < at if side is OrderSide.SELL else limit > at
        if not (right_side and wire["r"] is True and trigger["tpsl"] == "sl"):
            raise NotSent(
                f"stop {params['clientOrderId']} for {symbol} would have its limit "
                f"{wire['p']} on the wrong side of its trigger {trigger['triggerPx']}"
            )
        return wire

    async def place_stop(
        self, symbol: str, side: OrderSide, size: float, trigger_price: float, client_id: str
    ) -> StopAck:
        self._can_write()
        await self._coin(symbol)
        cloid = to_cloid(client_id)
        params: dict[str, Any] = {
            "stopLossPrice": trigger_price,
            "reduceOnly": True,
            "clientOrderId": cloid,
            # the limit the triggered stop works at: trigger -/+ this fraction
            "slippage": str(self.stop_slippage_percent / 100),
        }
        try:
            self._stop_wire(symbol, side, size, trigger_price, params)
        except _MALFORMED as exc:
            raise NotSent(f"stop {client_id} for {symbol}: {exc}") from None
        created = await self._write(
            lambda: self.client.create_order(
                symbol, "market", side.value, size, trigger_price, params
            ),
            client_id,
        )
        info = created.get("info") if isinstance(created, Mapping) else None
        if not isinstance(info, Mapping):
            raise UnknownOutcome(f"stop {client_id}: the reply does not mention it", client_id)
        placed = info.get("resting") or info.get("filled")
        oid = placed.get("oid") if isinstance(placed, Mapping) else None
        answer = str(info.get("status") or "resting")
        event(log, "hyperliquid.stop", symbol=symbol, client_id=client_id, answer=answer, oid=oid)
        # "waitingForTrigger" carries no id: the read-back goes by cloid
        return StopAck(client_id, str(oid) if oid is not None else None)

    async def get_stop(
        self, symbol: str, *, stop_id: str | None = None, client_id: str | None = None
    ) -> StopOrder | None:
        await self.markets()
        found = await self._order_status(stop_id, client_id)
        if found is None:
            return None
        sym = self._symbol_of(found.order.get("coin")) or symbol
        # a live status on a record that is no longer a pending trigger is the stop's limit
        # resting on the book after it fired: TRIGGERED, not protection
        fired = not found.order.get("isTrigger")
        with _parsing():
            return parse_stop(found.order, found.status, found.status_ts, sym, triggered=fired)

    async def open_stops(self, symbol: str | None = None) -> list[StopOrder]:
        """Stops waiting for their trigger, Warden's and the trader's (set in Hyperliquid's UI:
        a position TP/SL reads ``whole_position``, a sized one without a cloid reads
        ``placed_by_warden`` False)."""
        await self.markets()
        payload = await self._info({"type": "frontendOpenOrders", "user": self._user()})
        with _parsing():
            return live_stops(payload, lambda coin: self._wanted(coin, symbol))

    async def cancel_stop(self, symbol: str, stop_id: str) -> None:
        await self._cancel(symbol, stop_id)

    async def stop_history(
        self, symbol: str | None = None, since: float | None = None
    ) -> list[StopOrder]:
        """Stops that ended (triggered, canceled, rejected) since a time, oldest first."""
        await self.markets()
        payload = await self._info({"type": "historicalOrders", "user": self._user()})
        with _parsing():
            ended = ended_stops(payload, lambda coin: self._wanted(coin, symbol))
        return [s for s in ended if since is None or s.updated_at >= since]

    async def fills(self, symbol: str | None = None, since: float | None = None) -> list[Fill]:
        """Executions, oldest first (Hyperliquid keeps the latest 2,000 per query)."""
        await self.markets()
        if since is None:
            request: dict[str, Any] = {"type": "userFills", "user": self._user()}
        else:
            request = {
                "type": "userFillsByTime",
                "user": self._user(),
                "startTime": int(since * 1000),
                "aggregateByTime": False,
            }
        payload = await self._info(request)
        history = await self._info({"type": "historicalOrders", "user": self._user()})
        with _parsing():
            found = parse_fills(payload, history, lambda coin: self._wanted(coin, symbol))
        return [f for f in found if since is None or f.ts >= since]

    # -- leverage ----------------------------------------------------------------------------
    async def _ensure_leverage(self, symbol: str) -> None:
        """Leverage and margin mode for the coin, once per coin per process, before its first
        entry: one ``updateLeverage`` action ``{asset, isCross, leverage}`` (ccxt's
        setMarginMode, as recorded in ccxt's request fixtures). A failure refuses the entry
        unsent (Rejected): the order itself never left."""
        if self.leverage is None:
            return
        leverage, mode = self.leverage, self.margin_mode
        try:
            coin = await self._coin(symbol)
            if coin in self._levered:
                return
            await self._write(
                lambda: self.client.set_margin_mode(mode, symbol, {"leverage": leverage}), None
            )
        except NotSent:
            raise
        except ExchangeError as exc:
            raise Rejected(
                f"{symbol}: entry not sent, leverage {leverage} ({mode}) could not be set: {exc}",
                getattr(exc, "code", None),
            ) from None
        self._levered.add(coin)
        event(log, "hyperliquid.leverage", symbol=symbol, leverage=leverage, margin_mode=mode)

    async def leverage_setting(self, symbol: str) -> LeverageSetting:
        """The coin's leverage and margin mode as the exchange has them now (read only): the
        open position's (clearinghouseState), else the account's setting for the coin
        (activeAssetData, Hyperliquid docs, info endpoint, perpetuals, "Retrieve user's active
        asset data")."""
        coin = await self._coin(symbol)
        state = await self._state()
        with _parsing():
            held = position_leverage(state, coin, symbol)
        if held is not None:
            return held
        payload = await self._info({"type": "activeAssetData", "user": self._user(), "coin": coin})
        with _parsing():
            return active_leverage(payload, coin, symbol)

    async def close(self) -> None:
        await self.client.close()


CREDENTIALS = ("HYPERLIQUID_WALLET_ADDRESS", "HYPERLIQUID_PRIVATE_KEY")


def build_hyperliquid(
    name: str,
    *,
    account: str,
    sandbox: bool,
    api_url: str | None,
    slippage_percent: float,
    secrets: Callable[[str], str | None],
    stop_slippage_percent: float = 10.0,
    margin_mode: Literal["cross", "isolated"] = "cross",
    leverage: int | None = None,
    require_credentials: bool = True,
    timeout_ms: int = 10_000,
    enable_rate_limit: bool = True,
) -> HyperliquidExchange:
    """The adapter for one configured Hyperliquid account; credentials from ``secrets`` (by
    name, see CREDENTIALS). ccxt is imported here, on use.

    Without credentials only public data works; with ``require_credentials`` their absence is a
    MissingCredentials error naming the variables.
    """
    wallet, key = (secrets(n) for n in CREDENTIALS)
    missing = [n for n, v in zip(CREDENTIALS, (wallet, key), strict=True) if not v]
    if missing and require_credentials:
        raise MissingCredentials(f"exchange {name}: {', '.join(missing)} not set")
    return HyperliquidExchange(
        name,
        account,
        None if missing else wallet,
        None if missing else key,
        sandbox=sandbox,
        api_url=api_url,
        slippage_percent=slippage_percent,
        stop_slippage_percent=stop_slippage_percent,
        margin_mode=margin_mode,
        leverage=leverage,
        timeout_ms=timeout_ms,
        enable_rate_limit=enable_rate_limit,
    )
