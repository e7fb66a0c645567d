"""The bot's commands: what each one does and how it is registered (also for setMyCommands)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from telegram import BotCommand, Update
from telegram.ext import CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.charts.model import EquityChartData
from bot.charts.sources import DEFAULT_HOURS, MAX_HOURS, strategy_timeframes
from bot.services import Account
from bot.telegram import args as A
from bot.telegram.actions import TradeActions
from bot.telegram.app import TgApp
from bot.telegram.args import UsageError
from bot.telegram.callbacks import Callbacks, refresh_markup
from bot.telegram.chart import position_png
from bot.telegram.pnl import pnl_summary
from bot.telegram.render import b, esc, num
from bot.telegram.replies import Command, Reply, Result, command
from bot.telegram.services import BotServices
from bot.telegram.status import audit_text, status_text

# (command, description for setMyCommands)
COMMANDS = [
    ("status", "positions, stops, pause, leases, cycles"),
    ("close", "close a position or all (asks to confirm)"),
    ("open", "open a position with a stop (asks to confirm)"),
    ("audit", "the exchange read against the journal"),
    ("pnl", "realised P&L and the equity chart"),
    ("chart", "a symbol's chart: price, entry, stop, fills"),
    ("cycle", "run a strategy cycle now"),
    ("pause", "no new entries (stops stay guarded)"),
    ("resume", "allow entries again"),
    ("help", "what each command does"),
]
ChartFn = Callable[[EquityChartData | None], Awaitable[bytes | None]]


def bot_commands() -> list[BotCommand]:
    return [BotCommand(name, text) for name, text in COMMANDS]


class SimpleCommands:
    def __init__(self, svc: BotServices, chart: ChartFn | None) -> None:
        self.svc = svc
        self.equity_chart = chart

    async def status(self, update: Update, args: list[str]) -> Result:
        A.no_args("status", args)
        return Reply(await status_text(self.svc), markup=refresh_markup())

    async def audit(self, update: Update, args: list[str]) -> Result:
        return await audit_text(self.svc, A.days("audit", args) or A.AUDIT_DAYS)

    async def pnl(self, update: Update, args: list[str]) -> Result:
        summary = await pnl_summary(self.svc, A.days("pnl", args))
        photo = await self.equity_chart(summary.chart) if self.equity_chart else None
        return Reply(summary.html, photo=photo)

    async def _chart_account(self, text: str, chosen: str | None) -> tuple[Account, str]:
        accounts = [self.svc.accounts[chosen]] if chosen else list(self.svc.accounts.values())
        listing: dict[str, list[Account]] = {}
        for acct in accounts:
            for s in await acct.exchange.markets():
                listing.setdefault(s, []).append(acct)
        symbol = A.resolve_symbol("chart", text, listing)
        owners = listing[symbol]
        if len(owners) > 1:
            # the exchange that holds the position, when exactly one does
            holding = [a for a in owners if await a.exchange.positions(symbol)]
            if len(holding) != 1:
                names = ", ".join(a.name for a in owners)
                raise UsageError(
                    "chart", f"{symbol} is listed by several exchanges ({names}): add @EXCHANGE"
                )
            owners = holding
        return owners[0], symbol

    async def chart(self, update: Update, args: list[str]) -> Result:
        rest, chosen = A.take_exchange("chart", args, self.svc.accounts)
        if not 1 <= len(rest) <= 2:
            raise UsageError("chart", "give a SYMBOL, and optionally HOURS")
        hours = A.hours("chart", rest[1], MAX_HOURS) if len(rest) == 2 else DEFAULT_HOURS
        acct, symbol = await self._chart_account(rest[0], chosen)
        frames = strategy_timeframes(self.svc.config, acct.name, symbol)
        photo = await position_png(acct, symbol, hours, frames)
        return Reply(f"{b(acct.name)} {b(symbol)} · last {num(hours)} h (UTC)", photo=photo)

    async def cycle(self, update: Update, args: list[str]) -> Result:
        runners = self.svc.strategies()
        names = [r.run_spec.name for _, r in runners]
        if len(args) > 1:
            raise UsageError("cycle", "give at most one STRATEGY")
        if args:
            if args[0] not in names:
                raise UsageError(
                    "cycle",
                    f"unknown strategy {args[0]!r} (configured: {', '.join(names) or 'none'})",
                )
            runners = [(e, r) for e, r in runners if r.run_spec.name == args[0]]
        if not runners:
            return "no strategies configured: nothing to cycle"
        lines = []
        for _exchange, runner in runners:
            started = time.time()
            outcome = await runner.run("telegram")
            name = b(runner.run_spec.name)
            if outcome.status == "busy":
                lines.append(f"⏳ {name}: busy, held by {esc(outcome.detail)}; skipped")
            elif outcome.report is not None:
                lines.append(
                    f"{name}: {esc(outcome.report.outcome)} ({time.time() - started:.1f} s): "
                    f"{esc(outcome.report.summary() or 'nothing to report')}"
                )
            else:
                lines.append(f"⚠️ {name}: {esc(outcome.status)}: {esc(outcome.detail)}")
        return "\n".join(lines)

    def _scope(self, command: str, args: list[str]) -> str:
        if len(args) > 1:
            raise UsageError(command, "give at most one EXCHANGE")
        if not args:
            return "*"
        name = args[0].removeprefix("@")
        if name not in self.svc.accounts:
            configured = ", ".join(self.svc.accounts)
            raise UsageError(command, f"unknown exchange {name!r} (configured: {configured})")
        return self.svc.scope_of(name)

    async def pause(self, update: Update, args: list[str]) -> Result:
        scope = self._scope("pause", args)
        await self.svc.journal.set_paused(scope, True, "telegram /pause")
        where = "all exchanges" if scope == "*" else esc(scope)
        return f"⏸ paused {where}: no new entries; stops keep being guarded"

    async def resume(self, update: Update, args: list[str]) -> Result:
        scope = self._scope("resume", args)
        await self.svc.journal.set_paused(scope, False, "")
        where = "all exchanges" if scope == "*" else esc(scope)
        still = scope != "*" and await self.svc.journal.is_paused("*")
        tail = " (but all exchanges are still paused: /resume)" if still else ""
        return f"▶️ resumed {where}{tail}"

    async def help(self, update: Update, args: list[str]) -> Result:
        s = self.svc.settings
        lines = ["<b>Warden</b> commands"]
        lines += [f"<code>{esc(A.USAGE[name])}</code> {esc(text)}" for name, text in COMMANDS]
        lines += [
            "",
            f"/close and /open ask first; the button expires after "
            f"{num(s.confirm_timeout_seconds)} s and then waits up to "
            f"{num(s.lease_wait_seconds)} s for the account's lease.",
            "/open without STOP uses a stop at risk.max_stop_percent "
            f"({num(self.svc.config.risk.max_stop_percent)}%) from the last price, shown before "
            "you confirm.",
            "SYMBOL may be short: btc, BTCUSDT or BTC/USDT:USDT.",
            f"/chart draws the last {num(DEFAULT_HOURS)} h unless HOURS is given; /status has a "
            "Refresh button that updates the message in place.",
        ]
        return "\n".join(lines)

    async def unknown(self, update: Update, args: list[str]) -> Result:
        return "unknown command; /help lists them"


def register(
    app: TgApp,
    svc: BotServices,
    trade: TradeActions,
    callbacks: Callbacks,
    chart: ChartFn | None,
) -> None:
    simple = SimpleCommands(svc, chart)
    table: dict[str, Command] = {
        "status": simple.status,
        "close": trade.close,
        "open": trade.open,
        "audit": simple.audit,
        "pnl": simple.pnl,
        "chart": simple.chart,
        "cycle": simple.cycle,
        "pause": simple.pause,
        "resume": simple.resume,
        "help": simple.help,
        "start": simple.help,
    }
    for name, fn in table.items():
        app.add_handler(CommandHandler(name, command(name, fn)))
    app.add_handler(CallbackQueryHandler(callbacks))
    app.add_handler(MessageHandler(filters.COMMAND, command("unknown", simple.unknown)))
