"""`warden download SYMBOL --exchange okx|hyperliquid --timeframe 30m --days N [--out PATH]`:
real candle history through the exchange's PUBLIC OHLCV endpoint (no keys) into a replay CSV.

Pages forward by ``since`` until the last closed candle; the candle still forming is left out.
The reply is checked by the same reader the backtest uses, and the file is written atomically
(temporary file + rename), so a failure (network, unknown symbol, bad reply) leaves no file.
ccxt is imported here, on use: only this command pays for it.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bot import exit_codes
from bot.context import Context
from bot.progress import ProgressBar
from bot.symbols import SymbolError, resolve_symbol
from trading.adapters.kinds import KINDS, ExchangeKind, history_kinds
from trading.marketdata import (
    CandleFileError,
    data_filename,
    format_candles,
    format_timestamp,
    parse_candles,
    timeframe_seconds,
)
from trading.models import Candle

MAX_DAYS = 3650
RETRIES = 3  # attempts per page on network errors (reads may be retried; nothing is written)
RETRY_DELAY = 1.0  # seconds, doubled after each failed attempt


class DownloadError(Exception):
    """The request or the reply is wrong (unknown symbol, bad candle): a usage error, exit 2."""


class NetworkDownloadError(DownloadError):
    """The exchange could not be reached or kept failing: a failure (exit 1), not a usage
    error; the same command may work later."""


def resolve(ctx: Context, name: str) -> tuple[str, str | None, bool]:
    """(kind, api url, sandbox) for ``--exchange``: a kind with public candle history (its
    descriptor names the reader), or a configured exchange of one."""
    readable = history_kinds()
    cfg = ctx.config.exchanges.get(name)
    if cfg is not None:
        if cfg.kind not in readable:
            raise DownloadError(
                f"--exchange {name}: a {cfg.kind} exchange has no history to download; "
                f"use one of: {', '.join(readable)}"
            )
        table = cfg.model_dump()
        return cfg.kind, table.get("api_url"), bool(table.get("sandbox"))
    if name in readable:
        return name, None, False
    raise DownloadError(
        f"--exchange {name}: not an exchange kind ({', '.join(readable)}) nor a configured "
        f"exchange of one"
    )


def make_client(kind: str, api_url: str | None, sandbox: bool) -> Any:
    import ccxt.async_support as ccxt

    desc = _reader(kind)
    options: dict[str, Any] = {"fetchMarkets": {"types": ["swap"]}}  # perpetual swaps only
    options.update(dict(desc.history_options))
    client = getattr(ccxt, str(desc.history_client))({"enableRateLimit": True, "options": options})
    if sandbox:
        client.set_sandbox_mode(True)
    if api_url:
        url = api_url.rstrip("/")
        client.urls["api"] = dict.fromkeys(desc.api_url_keys, url)
    return client


def _reader(kind: str) -> ExchangeKind:
    desc = KINDS[kind]
    if desc.history_client is None or desc.history_page is None:
        raise DownloadError(f"a {kind} exchange has no history to download")
    return desc


def _error(exc: Exception) -> DownloadError:
    names = {cls.__name__ for cls in type(exc).__mro__}
    text = str(exc).strip() or type(exc).__name__
    if "BadSymbol" in names:
        return DownloadError(f"unknown symbol: {text}")
    if "NetworkError" in names:
        # ccxt's NetworkError covers no connection, DNS, timeouts and 5xx (ExchangeNotAvailable)
        return NetworkDownloadError(f"network error ({type(exc).__name__}): {text}")
    return DownloadError(f"exchange error ({type(exc).__name__}): {text}")


def listed_symbol(client: Any, text: str) -> str:
    """The swap market the user meant (``btc``, ``BTCUSDT`` work as in Telegram)."""
    swaps = [s for s, m in (client.markets or {}).items() if m.get("swap")]
    try:
        return resolve_symbol(text, swaps)
    except SymbolError as exc:
        raise DownloadError(str(exc)) from None


async def _page(client: Any, symbol: str, timeframe: str, since_ms: int, limit: int) -> Any:
    delay = RETRY_DELAY
    for attempt in range(1, RETRIES + 1):
        try:
            return await client.fetch_ohlcv(symbol, timeframe, since=since_ms, limit=limit)
        except Exception as exc:
            names = {cls.__name__ for cls in type(exc).__mro__}
            if "NetworkError" not in names or attempt == RETRIES:
                raise _error(exc) from None
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _candle(row: Any) -> Candle:
    try:
        ts, o, h, low, c, v = row[:6]
        values = [float(x) for x in (o, h, low, c, v if v is not None else 0.0)]
        return Candle(int(ts) / 1000, *values)
    except (TypeError, ValueError) as exc:
        raise DownloadError(f"bad reply: candle {row!r} ({exc})") from None


async def fetch_history(
    client: Any,
    kind: str,
    symbol: str,
    timeframe: str,
    days: int,
    bar: ProgressBar,
    now: float | None = None,
) -> list[Candle]:
    """Every closed candle of the last ``days`` days, oldest first, paging by ``since``."""
    step = timeframe_seconds(timeframe)
    now = time.time() if now is None else now
    start = (int(now) - days * 86_400) // step * step
    end = int(now) // step * step  # open time of the candle still forming
    total = max(1, (end - start) // step)
    try:
        await client.load_markets()
        client.market(symbol)
    except Exception as exc:
        raise _error(exc) from None
    limit = int(_reader(kind).history_page or 0)
    got: dict[float, Candle] = {}
    since = start
    while since < end:
        rows = await _page(client, symbol, timeframe, since * 1000, limit)
        page = [c for c in map(_candle, rows or []) if since <= c.ts < end]
        if page:
            got.update((c.ts, c) for c in page)
            since = int(max(c.ts for c in page)) + step
        else:  # nothing in this window (before the listing, or a gap): move past it
            since += limit * step
        bar.update(min(len(got), total), total)
    candles = [got[ts] for ts in sorted(got)]
    if not candles:
        raise DownloadError(f"the exchange returned no {timeframe} candles for {symbol}")
    try:  # the backtest's own reader: what is written can be replayed
        return parse_candles(format_candles(candles).splitlines(), f"{kind} reply", timeframe)
    except CandleFileError as exc:
        raise DownloadError(f"bad reply: {exc}") from None


def write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


async def run(ctx: Context) -> int:
    args = ctx.args
    symbol: str = args.symbol
    try:
        kind, api_url, sandbox = resolve(ctx, args.exchange)
        timeframe_seconds(args.timeframe)
        if not 1 <= args.days <= MAX_DAYS:
            raise DownloadError(f"--days {args.days}: must be between 1 and {MAX_DAYS}")
        out = Path(args.out) if args.out else None
        if out is not None and not out.is_dir() and not out.parent.is_dir():
            raise DownloadError(f"--out {out}: folder {out.parent} does not exist")
    except ValueError as exc:
        print(f"warden download: --timeframe: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    except DownloadError as exc:
        print(f"warden download: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    client = make_client(kind, args.api_url or api_url, sandbox)
    bar: ProgressBar | None = None
    try:
        try:
            await client.load_markets()
        except Exception as exc:
            raise _error(exc) from None
        symbol = listed_symbol(client, symbol)
        name = data_filename(symbol, args.timeframe)
        out = Path(name) if out is None else out / name if out.is_dir() else out
        bar = ProgressBar(f"download {symbol}", "candles")
        candles = await fetch_history(client, kind, symbol, args.timeframe, args.days, bar)
        write_atomically(out, format_candles(candles))
    except DownloadError as exc:
        if bar is not None:
            bar.close()
        print(f"warden download: {kind} {symbol}: {exc}; no file written", file=sys.stderr)
        network = isinstance(exc, NetworkDownloadError)
        return exit_codes.REFUSED if network else exit_codes.USAGE
    except OSError as exc:
        if bar is not None:
            bar.close()
        print(f"warden download: cannot write {out}: {exc.strerror}", file=sys.stderr)
        return exit_codes.USAGE
    finally:
        await client.close()
    bar.close()
    expected = math.ceil(args.days * 86_400 / timeframe_seconds(args.timeframe))
    short = ""
    if len(candles) < expected * 0.98:
        short = f" (about {expected:,} asked for: the exchange has fewer)"
    print(
        f"wrote {len(candles):,} {args.timeframe} candles of {symbol} from {kind} "
        f"({format_timestamp(candles[0].ts)} .. {format_timestamp(candles[-1].ts)}){short} "
        f"to {out}"
    )
    return exit_codes.OK
