"""The ``warden`` command line. Command names, flags, exit codes and ``--json`` output are a
public contract (see README); the bodies live in ``bot/commands/``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from bot import exit_codes
from bot.config.errors import ConfigError
from bot.context import Context, build_context
from bot.drills import DRILLS
from bot.logs import redactor
from storage.errors import StorageError
from trading.adapters.kinds import KINDS
from trading.errors import ExchangeError

Handler = Callable[[Context], Coroutine[Any, Any, int]]


SYMBOL_HELP = "BTC/USDT:USDT, or as in Telegram: btc, BTCUSDT"


def _version() -> str:
    """The installed distribution's version (what pip installed), not a copy in the code."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("warden")
    except PackageNotFoundError:
        return "unknown (not installed: pip install .)"


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive finite number")
    return value


def _common(json_flag: bool = False, exchange: bool = False) -> argparse.ArgumentParser:
    # SUPPRESS lets the same options stand before or after the command name
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="TOML config (default: $WARDEN_CONFIG, ./warden.toml, built-in defaults)",
    )
    p.add_argument(
        "--env-file",
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="secrets file (default: $WARDEN_ENV_FILE or ./.env)",
    )
    p.add_argument(
        "--log-level", default=argparse.SUPPRESS, choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    p.add_argument(
        "--log-json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log JSON lines instead of key=value text",
    )
    if json_flag:
        p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    if exchange:
        p.add_argument(
            "--exchange",
            metavar="NAME",
            help="configured exchange (may be omitted when only one is configured)",
        )
    return p


def _lazy(module: str, func: str = "run") -> Handler:
    # commands import their dependencies on use, so `warden status` never pays for ccxt
    async def handler(ctx: Context) -> int:
        import importlib

        fn = getattr(importlib.import_module(f"bot.commands.{module}"), func)
        result: int = await fn(ctx)
        return result

    return handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="warden",
        parents=[_common()],
        description="Warden: a trading agent for perpetual swaps that proves its stops are live.",
        epilog="exit codes: 0 ok, 1 findings or refused by a safety guard, "
        "2 usage or configuration error, 75 execution lease held by someone else",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_: str, handler: Handler, **kw: bool) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, parents=[_common(**kw)])
        p.set_defaults(handler=handler)
        return p

    p = add("run", "start the agent (daemon) on the configured exchanges", _lazy("run"))
    p.add_argument(
        "--standby",
        action="store_true",
        help="when another agent runs on this database, wait and take over when it stops or "
        "dies (default: exit 75)",
    )
    p = add("cycle", "run one strategy cycle now, through the execution lease", _lazy("cycle"))
    p.add_argument("--once", action="store_true", required=True, help="run one cycle and exit")
    p.add_argument("--strategy", metavar="NAME")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p = add(
        "pause", "stop new entries (stops stay guarded)", _lazy("pause", "pause"), exchange=True
    )
    p.add_argument("--reason", default="manual pause", help="shown in status")
    add("resume", "allow new entries again", _lazy("pause", "resume"), exchange=True)

    p = add(
        "open",
        "open a position with a verified stop-loss",
        _lazy("trade", "open_"),
        exchange=True,
        json_flag=True,
    )
    p.add_argument("symbol", metavar="SYMBOL", help=SYMBOL_HELP)
    p.add_argument("side", choices=["long", "short"])
    p.add_argument("--size", type=positive_number, required=True, help="size in base currency")
    p.add_argument("--stop", type=positive_number, required=True, help="stop-loss trigger price")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    p = add(
        "close",
        "close a position (or all) with a reduce-only market order",
        _lazy("trade", "close"),
        exchange=True,
        json_flag=True,
    )
    p.add_argument("target", metavar="SYMBOL|all", help=SYMBOL_HELP + ", or all")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    add(
        "status",
        "positions, stops, pause state and lease holders",
        _lazy("status"),
        json_flag=True,
        exchange=True,
    )
    p = add(
        "audit",
        "reconcile the exchange against the database",
        _lazy("audit"),
        json_flag=True,
        exchange=True,
    )
    p.add_argument(
        "--since-days",
        type=positive_number,
        default=30.0,
        metavar="DAYS",
        help="how far back stop history and lease refusals are read (default 30)",
    )
    p = add(
        "pnl",
        "realised P&L per trade from the exchange's fills, with loss attribution",
        _lazy("pnl"),
        json_flag=True,
        exchange=True,
    )
    period = p.add_mutually_exclusive_group()
    period.add_argument(
        "--days", type=positive_number, metavar="N", help="trades closed in the last N days"
    )
    period.add_argument(
        "--since", metavar="DATE", help="trades closed since DATE (YYYY-MM-DD or ISO, UTC)"
    )
    p.add_argument("--csv", metavar="PATH", help="write the trades as CSV (one row per trade)")
    p.add_argument("--png", metavar="PATH", help="write the equity curve as a PNG")
    p.add_argument(
        "--slippage-bound-bps",
        type=non_negative_number,
        default=None,
        metavar="BPS",
        help="slippage beyond this from a stop's trigger (or an entry's decision price) is "
        "execution cost (default: [accounting] slippage_bound_bps, 10)",
    )
    p = add(
        "chart",
        "draw a symbol's chart as a PNG: candles, last price, the position's entry and stop "
        "(state, last verified live), fills from the journal; reads only",
        _lazy("chart"),
        json_flag=True,
        exchange=True,
    )
    p.add_argument("symbol", metavar="SYMBOL", help=SYMBOL_HELP)
    p.add_argument(
        "--hours",
        type=positive_number,
        default=24.0,
        metavar="N",
        help="how much history to draw, in hours (default 24, at most 720)",
    )
    p.add_argument("--png", metavar="PATH", required=True, help="the PNG file to write")
    p = add(
        "backtest",
        "replay history through the live cycle (strategy, executor, verified stops, paper "
        "exchange), as fast as it goes",
        _lazy("backtest"),
        json_flag=True,
    )
    p.add_argument(
        "--strategy",
        action="append",
        metavar="NAME",
        help="a configured [[strategies]] name (repeatable; default: every configured strategy)",
    )
    p.add_argument(
        "--symbol",
        action="append",
        metavar="SYMBOL",
        help="trade this symbol instead of the strategies' own (repeatable)",
    )
    p.add_argument(
        "--data",
        metavar="bundled|FOLDER|FILE.csv",
        help="replay candles: the bundled SYNTHETIC set, a folder of SYMBOL_TF.csv files or one "
        "file (default: the exchange's [replay] data, else bundled)",
    )
    p.add_argument(
        "--from",
        dest="start",
        metavar="DATE",
        help="trade candles opening at or after this UTC date/time (earlier ones are history)",
    )
    p.add_argument(
        "--to", dest="end", metavar="DATE", help="trade candles opening before this date/time"
    )
    p.add_argument(
        "--balance",
        type=positive_number,
        metavar="X",
        help="starting balance of each simulated account (default: the exchange's)",
    )
    p.add_argument(
        "--faults",
        action="store_true",
        help="keep the paper exchange's configured fault injection (latency excepted)",
    )
    p.add_argument("--png", metavar="PATH", help="write the equity curve as a PNG image")
    p = add(
        "download",
        "fetch real candle history (public endpoint, no keys) into a replay CSV file",
        _lazy("download"),
    )
    p.add_argument("symbol", metavar="SYMBOL", help="swap symbol: " + SYMBOL_HELP)
    p.add_argument(
        "--exchange",
        required=True,
        metavar="okx|hyperliquid|NAME",
        help="an exchange kind, or a configured exchange of that kind (its api_url, sandbox)",
    )
    p.add_argument("--timeframe", default="30m", help="1m 5m 15m 30m 1h 4h 1d (default 30m)")
    p.add_argument("--days", type=int, default=30, metavar="N", help="how far back (default 30)")
    p.add_argument(
        "--out",
        metavar="PATH",
        help="file or folder to write (default: ./SYMBOL_TF.csv, the replay file name)",
    )
    p.add_argument("--api-url", metavar="URL", help="another base URL for the exchange's API")
    p = add(
        "drill",
        "run a scripted failure drill on a throwaway paper exchange, or (double-open, "
        "stop-removed) on a configured exchange account with --exchange",
        _lazy("drill"),
    )
    p.epilog = (
        "drills: " + ", ".join(DRILLS) + " (what each proves: README, Drills). With "
        "--exchange the drill trades the market's minimum size on that account (sandbox = true "
        "required, else --real-money), is refused (75) while the symbol holds a position or "
        "stop, and always closes and cancels what it made (exit 1 naming anything left)"
    )
    p.add_argument("name", metavar="NAME", help="the drill (listed below)")
    p.add_argument(
        "--exchange",
        metavar="NAME",
        help="run double-open or stop-removed on this configured exchange account",
    )
    p.add_argument(
        "--symbol",
        metavar="SYMBOL",
        help="with --exchange: the symbol to trade (BTC/USDT:USDT, or btc, BTCUSDT; default BTC)",
    )
    p.add_argument(
        "--stop-percent",
        type=positive_number,
        metavar="PCT",
        help="with --exchange: the stop's distance below the last price in percent (default 3)",
    )
    p.add_argument(
        "--real-money",
        action="store_true",
        help="with --exchange: allow an exchange without sandbox = true (real money)",
    )
    add("doctor", "check configuration, secrets and database", _lazy("doctor"), json_flag=True)
    p = add(
        "health",
        "exit 0 if a running agent guarded every account recently, else 1 (container "
        "HEALTHCHECK, systemd, monitoring)",
        _lazy("health"),
        json_flag=True,
    )
    p.add_argument(
        "--max-age",
        type=positive_number,
        metavar="SECONDS",
        help="newest activity accepted (default: 3 x guardian.watchdog_seconds, at least 60)",
    )
    p = add(
        "backup",
        "copy the database to PATH while the agent runs (SQLite online backup)",
        _lazy("backup", "backup"),
        json_flag=True,
    )
    p.add_argument("path", metavar="PATH", help="file to write, or a folder (warden-<time>.db)")
    p.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    p = add(
        "restore",
        "replace the database with a backup (refused while an agent or lease holder uses it)",
        _lazy("backup", "restore"),
    )
    p.add_argument("path", metavar="PATH", help="a file written by warden backup")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p = sub.add_parser(
        "init",
        help="write a commented warden.toml and a .env (mode 600) from a few questions or flags",
        description="write a commented warden.toml and a .env (mode 600); asks on a terminal, "
        "otherwise takes the flags and writes empty placeholders for the secrets",
    )
    p.set_defaults(handler=None, standalone=_standalone("init"))
    p.add_argument("--dir", default=".", metavar="PATH", help="where to write (default: .)")
    p.add_argument("--exchange", choices=list(KINDS), help="default: paper")
    p.add_argument("--telegram", action="store_true", help="set up Telegram control")
    p.add_argument("--yes", action="store_true", help="ask nothing: flags and defaults")
    p.add_argument("--force", action="store_true", help="overwrite existing files")

    p = add(
        "lock",
        "show execution lease holders, or hold a lease by hand",
        _lazy("lock"),
        json_flag=True,
        exchange=True,
    )
    p.add_argument(
        "--hold",
        type=positive_number,
        metavar="SECONDS",
        help="take the exchange's lease and hold it (maintenance), then release",
    )
    p.add_argument("--purpose", default="manual hold (warden lock --hold)")
    p.add_argument(
        "--wait",
        type=non_negative_number,
        default=0.0,
        metavar="SECONDS",
        help="with --hold: wait this long for the lease before giving up",
    )
    # the group itself never runs: argparse requires one of its subcommands
    p = add("paper", "paper exchange controls (drills and tests)", _lazy("paper", "price"))
    paper_sub = p.add_subparsers(dest="paper_command", metavar="SUBCOMMAND", required=True)
    pp = paper_sub.add_parser(
        "price",
        help="set a paper market's last price (fires stops it crosses)",
        parents=[_common(exchange=True)],
    )
    pp.add_argument("symbol", metavar="SYMBOL")
    pp.add_argument("price", type=positive_number, metavar="PRICE")
    pp.set_defaults(handler=_lazy("paper", "price"))
    pf = paper_sub.add_parser(
        "faults",
        help="show the paper exchange's fault injection in force; --set changes it",
        parents=[_common(json_flag=True, exchange=True)],
    )
    pf.add_argument(
        "--set",
        action="extend",
        nargs="+",
        metavar="KEY=VALUE",
        help="e.g. stop_silent_fail=1 stop_silent_fail_rate=0.15 (seed, entry_timeout_after_fill, "
        "reject_rate, latency_ms)",
    )
    pf.set_defaults(handler=_lazy("paper", "faults"))
    return parser


def non_negative_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def _standalone(module: str, func: str = "run") -> Callable[[argparse.Namespace], int]:
    """A command that runs without a Context (`warden init` writes the config it would read)."""

    def handler(args: argparse.Namespace) -> int:
        import importlib

        result: int = getattr(importlib.import_module(f"bot.commands.{module}"), func)(args)
        return result

    return handler


# The reader of stdout went away (`warden pnl --json | head -1`): what a program killed by
# SIGPIPE exits with in a shell (128 + 13), so a pipeline under `set -o pipefail` sees that the
# output was cut short; nothing else is printed, the command's own work is done.
BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(argv)
        # a closed pipe shows here, not at interpreter exit as "Exception ignored ..."
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _stdout_to_devnull()
        return BROKEN_PIPE


def _stdout_to_devnull() -> None:
    """What Python's documentation recommends for SIGPIPE (the `signal` module, "Note on
    SIGPIPE"): point stdout at devnull, so the flush at interpreter exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (already closed, replaced)
        pass
    finally:
        os.close(devnull)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None) == "":
        parser.error("--config: empty path")
    standalone = getattr(args, "standalone", None)
    if standalone is not None:
        try:
            return int(standalone(args))
        except (KeyboardInterrupt, EOFError):
            return 130
    redact = redactor()
    try:
        ctx = build_context(args)
        return asyncio.run(args.handler(ctx))
    except (ConfigError, StorageError) as exc:
        print(f"warden: {redact(str(exc))}", file=sys.stderr)
        return exit_codes.USAGE
    except KeyboardInterrupt:
        return 130
    except ExchangeError as exc:
        # an exchange that cannot be read is an expected condition, not a crash: one line
        print(f"warden: exchange error: {redact(f'{type(exc).__name__}: {exc}')}", file=sys.stderr)
        return exit_codes.REFUSED
    except BrokenPipeError:
        raise  # the reader went away: main exits quietly
    except Exception as exc:
        # the traceback goes through the logging redaction filter, never raw to the terminal
        logging.getLogger("warden").critical("internal error", exc_info=True)
        print(f"warden: internal error: {redact(f'{type(exc).__name__}: {exc}')}", file=sys.stderr)
        return exit_codes.REFUSED


if __name__ == "__main__":
    sys.exit(main())
