"""The audit: the exchange (the truth) read against the agent's own journal.

It only reads. Each finding has a kind, a severity, the exchange and symbol, a one-line detail
and a suggested action. What the post-mortem's author did by hand (auditing every historical
stop placement, noticing a position twice the intended size) is what this does every day.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from trading import retry
from trading.journal import Intent, IntentKind, IntentStatus, Journal
from trading.models import Market, Position, PositionSide, StopOrder, StopState
from trading.port import ExchangePort


class Kind(StrEnum):
    SIZE_MISMATCH = "size_mismatch"
    UNPROTECTED_POSITION = "unprotected_position"
    STOP_SIZE_MISMATCH = "stop_size_mismatch"
    STOP_WRONG_SIDE = "stop_wrong_side"
    ORPHAN_STOP = "orphan_stop"
    FAILED_STOP_PLACEMENT = "failed_stop_placement"
    UNKNOWN_POSITION = "unknown_position"
    UNRESOLVED_ORDER = "unresolved_order"
    STALE_LEASE = "stale_lease"
    LEASE_REFUSAL = "lease_refusal"


class Level(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"  # evidence, not a problem: does not fail the audit


@dataclass(frozen=True)
class Finding:
    kind: Kind
    severity: Level
    exchange: str
    symbol: str
    detail: str
    action: str

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"], d["severity"] = self.kind.value, self.severity.value
        return d


def _signed(p: Position) -> float:
    return p.size if p.side is PositionSide.LONG else -p.size


def expected_sizes(intents: Iterable[Intent], fired: Iterable[StopOrder]) -> dict[str, float]:
    """Net signed size per symbol that the agent's own filled orders add up to.

    Entries add, closes subtract; a stop of the agent's that fired closes what it covered.
    Reduce-only orders never flip a position, so crossing zero stops at zero, and one that
    reduced a position the agent did not open (its guardian's stop or emergency close on an
    unknown position) leaves the agent's own size at zero.
    """
    events: list[tuple[float, str, float, bool]] = []
    for i in intents:
        if i.status is IntentStatus.FILLED and i.filled:
            events.append((i.updated_at, i.symbol, i.signed_fill, i.kind is not IntentKind.ENTRY))
    for s in fired:
        size = s.size if s.side.value == "buy" else -s.size
        events.append((s.updated_at, s.symbol, size, True))
    net: dict[str, float] = {}
    for _, symbol, delta, reducing in sorted(events, key=lambda e: e[0]):
        before = net.get(symbol, 0.0)
        after = before + delta
        if reducing and (before * after < 0 or before == 0):
            after = 0.0
        net[symbol] = after
    return net


async def audit_exchange(
    name: str,
    exchange: ExchangePort,
    journal: Journal,
    scope: str,
    since: float,
) -> list[Finding]:
    markets = await retry.read(exchange.markets)
    positions = await retry.read(exchange.positions)
    live = await retry.read(exchange.open_stops)
    history = await retry.read(lambda: exchange.stop_history(None, None))
    intents = await journal.intents(scope, limit=100_000)
    stop_ids: set[str] = set()
    for symbol in {*markets}:
        for rec in await journal.stops_for(scope, symbol, limit=10_000):
            stop_ids.add(rec.client_id)
    fired = [s for s in history if s.state is StopState.TRIGGERED and s.client_id in stop_ids]
    expected = expected_sizes(intents, fired)
    findings: list[Finding] = []

    def add(kind: Kind, level: Level, symbol: str, detail: str, action: str) -> None:
        findings.append(Finding(kind, level, name, symbol, detail, action))

    held = {p.symbol for p in positions}
    for p in positions:
        market = markets[p.symbol]
        exp = expected.get(p.symbol, 0.0)
        actual = _signed(p)
        if abs(exp) < market.size_step / 2:
            add(
                Kind.UNKNOWN_POSITION,
                Level.WARNING,
                p.symbol,
                f"{p.side.value} {p.size} at {p.entry_price} was not opened by Warden",
                "check who opened it; Warden guards it with a stop at risk.max_stop_percent",
            )
        elif (diff := abs(abs(actual) - abs(exp))) > market.size_step / 2 or actual * exp < 0:
            add(
                Kind.SIZE_MISMATCH,
                Level.CRITICAL,
                p.symbol,
                f"exchange {p.side.value} {p.size}, Warden's own fills add up to {abs(exp):g} "
                f"({'extra' if abs(actual) > abs(exp) else 'missing'} {diff:g})",
                "find the other executor (a second bot, a manual order); reduce to intended size",
            )
        findings.extend(_stop_findings(name, p, [s for s in live if s.symbol == p.symbol], market))
    for s in live:
        if s.symbol not in held:
            add(
                Kind.ORPHAN_STOP,
                Level.WARNING,
                s.symbol,
                f"live {s.side.value} stop {s.id} at {s.trigger_price} for {s.size}, no position",
                "cancel it (the guardian does on its next run)",
            )
    for s in history:
        if s.state is StopState.FAILED and s.updated_at >= since:
            who = "Warden's" if s.client_id in stop_ids else "a"
            add(
                Kind.FAILED_STOP_PLACEMENT,
                Level.WARNING,
                s.symbol,
                f"{who} stop {s.client_id or s.id} ({s.side.value} {s.size} at {s.trigger_price}) "
                f"was acknowledged but failed on the exchange (failCode {s.fail_code})",
                "Warden re-places and verifies; if this repeats, check margin and trigger rules",
            )
    for i in intents:
        if i.status in (IntentStatus.PENDING, IntentStatus.UNKNOWN):
            add(
                Kind.UNRESOLVED_ORDER,
                Level.CRITICAL,
                i.symbol,
                f"{i.kind.value} {i.side.value} {i.size} ({i.client_id}) outcome unknown",
                "start `warden run`: start-up reconciliation resolves it by client id",
            )
    return findings


def _stop_findings(name: str, p: Position, stops: list[StopOrder], market: Market) -> list[Finding]:
    out: list[Finding] = []
    right = [s for s in stops if s.side is p.side.exit_side and s.state is StopState.LIVE]
    wrong = [s for s in stops if s.side is not p.side.exit_side]
    for s in wrong:
        out.append(
            Finding(
                Kind.STOP_WRONG_SIDE,
                Level.CRITICAL,
                name,
                p.symbol,
                f"{s.side.value} stop {s.id} at {s.trigger_price} cannot close a {p.side.value}",
                "cancel it; the guardian places a correct one",
            )
        )
    if not right:
        out.append(
            Finding(
                Kind.UNPROTECTED_POSITION,
                Level.CRITICAL,
                name,
                p.symbol,
                f"{p.side.value} {p.size} at {p.entry_price} has no live stop",
                "the guardian places one on its next run; `warden status` to watch",
            )
        )
        return out
    for s in right:
        if not s.covers(p, market):
            out.append(
                Finding(
                    Kind.STOP_SIZE_MISMATCH,
                    Level.CRITICAL,
                    name,
                    p.symbol,
                    f"stop {s.id} covers {s.size}, position is {p.size}",
                    "the guardian replaces it with a full-size stop",
                )
            )
    return out
