"""/close and /open: confirmed with a button that expires, then done through the guarded
executor under the account lease (waiting a bounded time for it), like the CLI and the
scheduler. What the button says is exactly what is done: if the positions changed between the
question and the press, nothing is done and the user is told."""

from __future__ import annotations

import logging
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.services import Account
from bot.telegram import args as A
from bot.telegram.args import UsageError
from bot.telegram.confirm import Confirmations
from bot.telegram.render import b, esc, num
from bot.telegram.replies import Reply
from bot.telegram.services import BotServices
from trading.errors import ExchangeError
from trading.executor import BadRequest, ExecResult, RefusedError
from trading.lease import LeaseBusy, LeaseLost
from trading.logfmt import event
from trading.models import Market, Position, PositionSide

log = logging.getLogger("warden.telegram.actions")
CONFIRM, CANCEL = "cf", "cx"
NOT_RECONCILED = (
    "refused: <b>{name}</b> is not reconciled yet (start-up reconciliation pending or failed: "
    "see the alerts); entries wait for it; nothing was sent"
)


def buttons(token: str, verb: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(f"✅ {verb}", callback_data=f"{CONFIRM}:{token}"),
                InlineKeyboardButton("✖ Cancel", callback_data=f"{CANCEL}:{token}"),
            ]
        ]
    )


def _results(results: list[ExecResult]) -> str:
    lines = []
    for r in results:
        icon = "✅" if r.ok else "⚠️"
        lines.append(f"{icon} {b(r.symbol)}: {esc(r.outcome.value)}: {esc(r.detail)}")
        lines += [f"   · {esc(n)}" for n in r.notes]
    return "\n".join(lines)


def _pos_line(p: Position) -> str:
    return (
        f"• {esc(p.side.value.upper())} {num(p.size)} {b(p.symbol)} (entry {num(p.entry_price)}, "
        f"uPnL {p.unrealized_pnl:+,.2f})"
    )


def default_stop(market: Market, side: PositionSide, last: float, percent: float) -> float:
    """A stop ``percent`` away from the last price, rounded toward the price so it is never
    further away than the limit."""
    raw = Decimal(
        repr(last * (1 - percent / 100 if side is PositionSide.LONG else 1 + percent / 100))
    )
    step = Decimal(repr(market.price_step))
    rounding = ROUND_CEILING if side is PositionSide.LONG else ROUND_FLOOR
    return float((raw / step).to_integral_value(rounding) * step)


class TradeActions:
    def __init__(self, svc: BotServices, confirmations: Confirmations) -> None:
        self.svc = svc
        self.confirmations = confirmations

    async def _busy_text(self, acct: Account, exc: LeaseBusy, what: str, action: str) -> str:
        await acct.journal.record_refusal(acct.scope, what, action, str(exc), "telegram")
        return f"⏳ {b(acct.name)}: busy, held by {esc(exc.holder)}; nothing was done"

    # --- /close ---------------------------------------------------------------------------

    async def close(self, update: Update, args: list[str]) -> Reply:
        rest, chosen = A.take_exchange("close", args, self.svc.accounts)
        if len(rest) != 1:
            raise UsageError("close", "give one SYMBOL, or all")
        accounts = [self.svc.accounts[chosen]] if chosen else list(self.svc.accounts.values())
        target = rest[0]
        if target.lower() == "all":
            target = "all"
        else:
            symbols = {s for acct in accounts for s in await acct.exchange.markets()}
            target = A.resolve_symbol("close", target, symbols)
        plan: list[tuple[Account, list[Position]]] = []
        for acct in accounts:
            chosen_pos = [p for p in await acct.exchange.positions() if target in ("all", p.symbol)]
            if chosen_pos:
                plan.append((acct, chosen_pos))
        if not plan:
            return Reply(f"nothing to close: no open position for {b(target)}")
        lines = ["<b>Close at market (reduce-only)?</b>"]
        for acct, positions in plan:
            lines.append(f"{b(acct.name)}:")
            lines += [_pos_line(p) for p in positions]
        lines.append(f"Expires in {self.svc.settings.confirm_timeout_seconds:g} s.")
        summary = "\n".join(lines)

        async def act() -> str:
            return await self._do_close(plan)

        chat = update.effective_chat
        assert chat is not None
        pending = self.confirmations.add(summary, act, chat.id)
        return Reply(summary, buttons(pending.token, "Close"), pending)

    async def _do_close(self, plan: list[tuple[Account, list[Position]]]) -> str:
        out = []
        wait = self.svc.settings.lease_wait_seconds
        for acct, confirmed in plan:
            symbols = [p.symbol for p in confirmed]
            purpose = f"telegram close {', '.join(symbols)}"
            try:
                async with self.svc.leases.hold(acct.scope, purpose, wait) as lease:
                    now = {(p.symbol, p.side, p.size) for p in await acct.exchange.positions()}
                    gone = [p for p in confirmed if (p.symbol, p.side, p.size) not in now]
                    if gone:
                        out.append(
                            f"⚠️ {b(acct.name)}: positions changed since the question "
                            f"({', '.join(esc(p.symbol) for p in gone)}); nothing was done, "
                            "send /close again"
                        )
                        continue
                    results: list[ExecResult] = []
                    for symbol in symbols:
                        results += await acct.executor.close(lease, symbol, "manual", purpose)
            except LeaseBusy as exc:
                out.append(await self._busy_text(acct, exc, ",".join(symbols), "close"))
                continue
            except (LeaseLost, ExchangeError) as exc:
                out.append(f"⚠️ {b(acct.name)}: stopped: {esc(exc)}")
                continue
            event(log, "telegram.closed", scope=acct.scope, symbols=",".join(symbols))
            out.append(f"{b(acct.name)}:\n{_results(results)}")
        return "\n".join(out)

    # --- /open ----------------------------------------------------------------------------

    async def _account_for(self, symbol_text: str, chosen: str | None) -> tuple[Account, str]:
        accounts = [self.svc.accounts[chosen]] if chosen else list(self.svc.accounts.values())
        listing: dict[str, list[Account]] = {}
        for acct in accounts:
            for s in await acct.exchange.markets():
                listing.setdefault(s, []).append(acct)
        symbol = A.resolve_symbol("open", symbol_text, listing)
        owners = listing[symbol]
        if len(owners) > 1:
            names = ", ".join(a.name for a in owners)
            raise UsageError(
                "open", f"{symbol} is listed by several exchanges ({names}): add @EXCHANGE"
            )
        return owners[0], symbol

    async def open(self, update: Update, args: list[str]) -> Reply:
        rest, chosen = A.take_exchange("open", args, self.svc.accounts)
        if len(rest) < 2:
            raise UsageError("open", "missing SYMBOL and side" if not rest else "missing the side")
        if len(rest) < 3:
            raise UsageError("open", "missing SIZE")
        if len(rest) > 4:
            raise UsageError("open", "too many arguments")
        side = A.side("open", rest[1])
        size = A.positive_number("open", rest[2], "SIZE")
        stop = A.positive_number("open", rest[3], "STOP") if len(rest) == 4 else None
        acct, symbol = await self._account_for(rest[0], chosen)
        if not self.svc.reconciled(acct.name):
            return Reply(NOT_RECONCILED.format(name=esc(acct.name)))
        why = await acct.journal.pause_reason(acct.scope)
        if why is not None:
            return Reply(
                f"refused: trading on {b(acct.name)} is paused "
                f"({esc(why) or 'no reason given'}); /resume ends it; nothing was sent"
            )
        percent = self.svc.config.risk.max_stop_percent
        stop_note = ""
        if stop is None:
            market = (await acct.exchange.markets())[symbol]
            last = (await acct.exchange.ticker(symbol)).last
            stop = default_stop(market, side, last, percent)
            stop_note = f" (default: risk.max_stop_percent {percent:g}%)"
        try:
            _, last = await acct.executor.check_open(symbol, side, size, stop)
        except BadRequest as exc:
            raise UsageError("open", str(exc)) from None
        except RefusedError as exc:
            await acct.journal.record_refusal(acct.scope, symbol, "open", str(exc), "telegram")
            return Reply(f"refused: {esc(exc)}; nothing was sent")
        distance = abs(last - stop) / last * 100
        summary = "\n".join(
            [
                f"<b>Open {esc(side.value.upper())} {num(size)} {esc(symbol)}</b> on "
                f"{b(acct.name)} at market (last {num(last)})?",
                f"stop {num(stop)}{esc(stop_note)}: {distance:.2f}% away, "
                f"loss at the stop about {abs(last - stop) * size:,.2f} plus fees",
                f"Expires in {self.svc.settings.confirm_timeout_seconds:g} s.",
            ]
        )
        stop_price = stop

        async def act() -> str:
            return await self._do_open(acct, symbol, side, size, stop_price)

        chat = update.effective_chat
        assert chat is not None
        pending = self.confirmations.add(summary, act, chat.id)
        return Reply(summary, buttons(pending.token, "Open"), pending)

    async def _do_open(
        self, acct: Account, symbol: str, side: PositionSide, size: float, stop: float
    ) -> str:
        if not self.svc.reconciled(acct.name):
            return NOT_RECONCILED.format(name=esc(acct.name))
        wait = self.svc.settings.lease_wait_seconds
        try:
            async with self.svc.leases.hold(acct.scope, f"telegram open {symbol}", wait) as lease:
                result = await acct.executor.open(lease, symbol, side, size, stop, "telegram open")
        except LeaseBusy as exc:
            return await self._busy_text(acct, exc, symbol, "open")
        except (LeaseLost, ExchangeError) as exc:
            return f"⚠️ {b(acct.name)}: stopped: {esc(exc)}"
        event(log, "telegram.opened", scope=acct.scope, symbol=symbol, outcome=result.outcome)
        return f"{b(acct.name)}:\n{_results([result])}"
