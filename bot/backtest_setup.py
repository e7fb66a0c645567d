"""From the config and the `warden backtest` flags to the accounts the engine replays.

Strategies come from ``[[strategies]]`` (all of them unless ``--strategy`` picks some); the ones
on one configured exchange share one simulated account, as under ``warden run``. Candles come
from ``--data`` (``bundled``, a folder of replay files, or one replay file), else from the
exchange's ``[replay] data``, else the bundled set. Every problem is a ``SetupError`` whose text
is the whole message (exit 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from bot.config import Config
from bot.config.schema import PaperExchangeConfig
from bot.cycles import build_runs
from bot.exchanges import paper_config, paper_settings
from trading.backtest import AccountSpec, SymbolData, backtest_settings
from trading.cycle import StrategyRun
from trading.marketdata import CandleFileError, data_filename, format_timestamp, read_candles
from trading.models import Candle
from trading.paper import PaperMarketSettings

BUNDLED = Path(str(resources.files("trading.data")))  # SYNTHETIC data, see its README


class SetupError(Exception):
    pass


@dataclass(frozen=True)
class Source:
    exchange: str
    symbol: str
    timeframe: str
    path: Path
    synthetic: bool
    candles: int  # traded candles (after --from/--to)


@dataclass(frozen=True)
class Setup:
    accounts: list[AccountSpec]
    sources: list[Source]
    kinds: dict[str, str]  # strategy name -> description
    exchanges: dict[str, str]  # strategy name -> exchange name
    notes: list[str]  # assumptions made for exchanges that are not paper exchanges


def parse_date(text: str, flag: str) -> float:
    """``2026-01-15``, ``2026-01-15T12:00`` (UTC) or with an offset, to epoch seconds."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SetupError(
            f"{flag} {text!r}: not a date (use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z])"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _pick(config: Config, wanted: list[str] | None) -> list[tuple[StrategyRun, str, str]]:
    if not config.strategies:
        raise SetupError("no [[strategies]] configured: nothing to backtest")
    triples: list[tuple[StrategyRun, str, str]] = [
        (run, sc.exchange, sc.kind)
        for run, sc in zip(build_runs(config), config.strategies, strict=True)
    ]
    if not wanted:
        return triples
    names = [sc.name for sc in config.strategies]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise SetupError(
            f"--strategy {', '.join(unknown)}: not configured (strategies: {', '.join(names)})"
        )
    return [t for t in triples if t[0].name in wanted]


def _data_path(config: Config, exchange: str, data: str | None, symbol: str, tf: str) -> Path:
    if data is None:
        paper = paper_config(config.exchanges[exchange])
        replay = paper.replay if paper is not None else None
        data = replay.data if replay is not None else "bundled"
    if data == "bundled":
        return BUNDLED / data_filename(symbol, tf)
    path = Path(data)
    if path.is_dir():
        return path / data_filename(symbol, tf)
    if path.is_file():
        return path
    raise SetupError(f"--data {data}: no such file or folder")


def _load(path: Path, symbol: str, tf: str) -> list[Candle]:
    if not path.is_file():
        raise SetupError(
            f"no {tf} candles for {symbol}: {path} not found (fetch real history with "
            f"`warden download {symbol} --exchange okx --timeframe {tf} --days N`)"
        )
    try:
        return read_candles(path, tf)
    except CandleFileError as exc:
        raise SetupError(str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SetupError(f"{path}: cannot be read ({exc})") from None


def infer_market(symbol: str, candles: list[Candle]) -> PaperMarketSettings:
    """Market rules for a symbol no paper exchange lists (a real exchange's, offline): the price
    step from the decimals in the file, a size step worth about 1-10 units of the quote."""
    decimals = 0
    for c in candles[:500]:
        for v in (c.open, c.high, c.low, c.close):
            text = repr(v)
            if "e" not in text and "." in text:
                decimals = max(decimals, len(text.split(".")[1].rstrip("0")))
    step = float(f"1e{math.floor(math.log10(10.0 / candles[0].close))}")
    return PaperMarketSettings(
        symbol=symbol,
        price=candles[0].open,
        min_size=step,
        size_step=step,
        price_step=float(f"1e-{min(decimals, 10)}"),
    )


def build_setup(
    config: Config,
    strategies: list[str] | None,
    symbols: list[str] | None,
    data: str | None,
    start: float | None,
    end: float | None,
    balance: float | None,
    faults: bool,
) -> Setup:
    if start is not None and end is not None and start >= end:
        raise SetupError(
            f"--from {format_timestamp(start)} is not before --to {format_timestamp(end)}"
        )
    picked = _pick(config, strategies)
    if data is not None and Path(data).is_file():
        wanted = set(symbols or [s for run, _, _ in picked for s in run.symbols])
        if len(wanted) != 1:
            raise SetupError(
                f"--data {data}: one file holds one symbol's candles, but the backtest trades "
                f"{', '.join(sorted(wanted))}; choose one with --symbol (or give a folder)"
            )
    accounts: list[AccountSpec] = []
    sources: list[Source] = []
    notes: list[str] = []
    for exchange in dict.fromkeys(ex for _, ex, _ in picked):
        runs = [run for run, ex, _ in picked if ex == exchange]
        if symbols:
            runs = [replace(run, symbols=tuple(dict.fromkeys(symbols))) for run in runs]
        account, found = _account(config, exchange, runs, data, start, end, balance, faults, notes)
        accounts.append(account)
        sources.extend(found)
    return Setup(
        accounts,
        sources,
        {run.name: f"{kind}: {run.strategy.describe()}" for run, _, kind in picked},
        {run.name: ex for run, ex, _ in picked},
        notes,
    )


def _account(
    config: Config,
    exchange: str,
    runs: list[StrategyRun],
    data: str | None,
    start: float | None,
    end: float | None,
    balance: float | None,
    faults: bool,
    notes: list[str],
) -> tuple[AccountSpec, list[Source]]:
    cfg = config.exchanges[exchange]
    own = paper_config(cfg)  # a real venue is simulated with the paper exchange's defaults
    paper_cfg = own if own is not None else PaperExchangeConfig()
    if own is None:
        notes.append(
            f"{exchange} ({cfg.kind}) is simulated with the paper exchange's defaults: taker fee "
            f"{paper_cfg.taker_fee:.4%}, slippage {paper_cfg.slippage_bps:g} bps, leverage "
            f"{paper_cfg.leverage:g}x"
        )
    listed = {m.symbol: m for m in paper_settings(paper_cfg).markets}
    timeframes: dict[str, str] = {}
    for run in runs:
        for symbol in run.symbols:
            if own is not None and symbol not in listed:
                raise SetupError(
                    f"unknown symbol {symbol} on paper exchange {exchange} "
                    f"(markets: {', '.join(listed)})"
                )
            if timeframes.setdefault(symbol, run.timeframe) != run.timeframe:
                raise SetupError(
                    f"{symbol} is traded on {timeframes[symbol]} and {run.timeframe} candles on "
                    f"exchange {exchange}: backtest those strategies one at a time (--strategy)"
                )
    series: dict[str, SymbolData] = {}
    markets: list[PaperMarketSettings] = []
    sources: list[Source] = []
    for symbol, tf in timeframes.items():
        path = _data_path(config, exchange, data, symbol, tf)
        full = _load(path, symbol, tf)
        candles = [c for c in full if c.ts < end] if end is not None else full
        warmup = sum(1 for c in candles if start is not None and c.ts < start)
        if warmup >= len(candles):
            first, last = format_timestamp(full[0].ts), format_timestamp(full[-1].ts)
            raise SetupError(
                f"no {symbol} candles in the chosen range in {path} (the file covers {first} .. "
                f"{last})"
            )
        series[symbol] = SymbolData(candles, warmup)
        market = listed.get(symbol)
        if market is None:
            market = infer_market(symbol, candles)
            notes.append(
                f"{symbol}: market rules inferred from the data: price step "
                f"{market.price_step:g}, size step and minimum {market.size_step:g}"
            )
        markets.append(replace(market, price=candles[0].open))
        synthetic = path.resolve().parent == BUNDLED.resolve()
        sources.append(Source(exchange, symbol, tf, path, synthetic, len(candles) - warmup))
    settings = replace(paper_settings(paper_cfg), markets=tuple(markets))
    if balance is not None:
        settings = replace(settings, starting_balance=balance)
    spec = AccountSpec(exchange, backtest_settings(settings, faults), tuple(runs), series)
    return spec, sources
