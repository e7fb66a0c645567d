"""/status and /audit: read-only views. Neither takes nor waits for the execution lease, so
both answer while a cycle (or another process) holds it; neither writes to an exchange.
/audit is the reconciliation report of ``trading.audit`` (as `warden audit`)."""

from __future__ import annotations

import time
from collections import Counter

from bot.audit_run import failing, lease_findings
from bot.services import Account
from bot.telegram.render import ago, b, esc, money, num, utc
from bot.telegram.services import BotServices
from trading.accounting import owner_of
from trading.audit import Finding, Level, audit_exchange
from trading.errors import ExchangeError
from trading.models import StopState
from trading.protection import shown_stop


async def _verified_at(acct: Account, symbol: str, stop_id: str) -> float | None:
    for rec in await acct.journal.stops_for(acct.scope, symbol):
        if rec.exchange_id == stop_id:
            return rec.verified_at
    return None


async def _account_lines(acct: Account, now: float) -> list[str]:
    reason = await acct.journal.pause_reason(acct.scope)
    state = "trading" if reason is None else "⏸ PAUSED (no new entries)"
    if reason:
        state += f": {esc(reason)}"
    lines = [f"{b(acct.name)} · {state}"]
    try:
        positions = await acct.exchange.positions()
        stops = await acct.exchange.open_stops()
    except ExchangeError as exc:
        return [*lines, f"⚠️ cannot read the exchange: {esc(exc)}"]
    if not positions:
        lines.append("no positions")
    for p in positions:
        stop = shown_stop(p, stops)
        live = stop is not None and stop.state is StopState.LIVE
        lines.append(
            f"{'🛡' if live else '🚨'} {b(p.symbol)} {esc(p.side.value.upper())} {num(p.size)} "
            f"@ {num(p.entry_price)} · uPnL {esc(money(p.unrealized_pnl))}"
            f" · owner: {esc(owner_of(await acct.journal.position_owner(acct.scope, p.symbol)))}"
        )
        if stop is None:
            lines.append("   NO LIVE STOP")
            continue
        if not stop.placed_by_warden:
            size = "whole position" if stop.whole_position else num(stop.size)
            lines.append(
                f"   your own stop {num(stop.trigger_price)} ({esc(size)}) "
                f"{esc(stop.state.value)}, set on the venue; Warden leaves it in place"
            )
            continue
        verified = await _verified_at(acct, p.symbol, stop.id)
        lines.append(
            f"   stop {num(stop.trigger_price)} {esc(stop.state.value)}"
            f", verified live {esc(ago(verified, now))}"
        )
    return lines


async def status_text(svc: BotServices) -> str:
    now = time.time()
    lines = [f"<b>Warden status</b> · {esc(utc(now))}"]
    for acct in svc.accounts.values():
        lines += ["", *await _account_lines(acct, now)]
    holders = await svc.lease_store.holders()
    lines += ["", "<b>Leases</b>" + ("" if holders else ": none held")]
    for h in holders:
        expired = " EXPIRED" if h.expires_at <= now else ""
        lines.append(
            f"🔒 {esc(h.scope)}: {esc(h.purpose)} · {esc(h.owner)} · {h.age(now):.0f}s"
            f" · token {h.token}{expired}"
        )
    strategies = svc.strategies()
    lines += ["", "<b>Cycles</b>" + ("" if strategies else ": no strategies configured")]
    for exchange, runner in strategies:
        name = runner.run_spec.name
        last = await svc.cycles.last(name)
        last_text = "never"
        if last is not None:
            when = f"{utc(last.started_at)} {last.outcome} ({ago(last.started_at, now)})"
            last_text = esc(when)
        nxt = svc.next_run(exchange, runner)
        lines.append(
            f"{b(name)}: last {last_text} · next {esc(utc(nxt) if nxt else 'not scheduled')}"
        )
    return "\n".join(lines)


INFO_SHOWN = 8  # informational findings listed in /audit before the rest is counted
LEVEL_ICON = {Level.CRITICAL: "🚨", Level.WARNING: "⚠️", Level.INFO: "ℹ️"}


async def audit_text(svc: BotServices, days: float) -> str:
    """The audit (the exchange read against the journal; reads only) over the daemon's own
    accounts, plus the lease table. Informational findings are counted, not listed."""
    now = time.time()
    since = now - days * 86_400
    findings: list[Finding] = []
    errors: list[str] = []
    for name, acct in svc.accounts.items():
        try:
            findings += await audit_exchange(name, acct.exchange, acct.journal, acct.scope, since)
        except ExchangeError as exc:
            errors.append(f"{name}: cannot read the exchange: {exc}")
    findings += await lease_findings(svc.db, since)
    bad = failing(findings)
    info = [f for f in findings if not f.needs_action]
    head = f"<b>Audit</b> · {esc(utc(now))} · last {days:g} day(s) · reads only"
    lines = [head, "✅ clean" if not bad and not errors else f"{len(bad)} finding(s)"]
    for f in bad:
        where = f"{f.exchange} {f.symbol}".strip()
        lines.append(f"{LEVEL_ICON[f.severity]} {b(f.kind.value)} {esc(where)}: {esc(f.detail)}")
        lines.append(f"   → {esc(f.action)}")
    lines += [f"⚠️ {esc(e)}" for e in errors]
    if info:
        # repaired history and lease evidence: shown, never counted as a problem; capped so
        # a long period fits one message
        lines.append(f"{LEVEL_ICON[Level.INFO]} informational (nothing to do):")
        for f in info[:INFO_SHOWN]:
            where = f"{f.exchange} {f.symbol}".strip()
            lines.append(f"· {b(f.kind.value)} {esc(where)}: {esc(f.detail)}")
        if len(info) > INFO_SHOWN:
            more = Counter(f.kind.value for f in info[INFO_SHOWN:])
            counts = ", ".join(f"{n} {k}" for k, n in sorted(more.items()))
            lines.append(f"· and {esc(counts)} more (`warden audit` lists them)")
    return "\n".join(lines)
