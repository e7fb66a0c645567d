"""The audit: the exchange (the truth) read against the agent's own journal.

It only reads. Each finding has a kind, a severity, the exchange and symbol, a one-line detail
and a suggested action. What the post-mortem's author did by hand (auditing every historical
stop placement, noticing a position twice the intended size) is what this does every day.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from trading import retry
from trading.journal import Intent, IntentKind, IntentStatus, Journal
from trading.models import Market, Position, PositionSide, StopOrder, StopState
from trading.port import ExchangePort
from trading.protection import classify, describe


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
    TRADER_STOP = "trader_stop"  # a stop the trader set in the venue's UI (info)


class Level(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"  # evidence, not a problem: does not fail the audit


@dataclass(frozen=True)
class Repair:
    """A failed stop placement's history: when the exchange failed it, when the position was
    protected again (a later stop on the same side read back live, or the position closed)."""

    failed_at: float
    repaired_at: float | None  # None: never repaired
    unprotected_seconds: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "failed_at": _iso(self.failed_at),
            "repaired_at": _iso(self.repaired_at),
            "unprotected_seconds": None
            if self.unprotected_seconds is None
            else round(self.unprotected_seconds, 3),
        }


@dataclass(frozen=True)
class Finding:
    kind: Kind
    severity: Level
    exchange: str
    symbol: str
    detail: str
    action: str
    repair: Repair | None = None  # failed_stop_placement only

    @property
    def needs_action(self) -> bool:
        """Informational findings (history already repaired, evidence the lease worked) do
        not fail the audit; every other one needs the owner now."""
        return self.severity is not Level.INFO

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        del d["repair"]
        d["kind"], d["severity"] = self.kind.value, self.severity.value
        d["needs_action"] = self.needs_action
        if self.repair is not None:
            d.update(self.repair.as_json())
        return d


def _iso(ts: float | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


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
    verified: dict[str, float] = {}  # client id -> when Warden read that stop back live
    for symbol in {*markets}:
        for rec in await journal.stops_for(scope, symbol, limit=10_000):
            stop_ids.add(rec.client_id)
            if rec.verified_at is not None:
                verified[rec.client_id] = rec.verified_at
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
        if s.symbol not in held and not s.placed_by_warden:
            add(
                Kind.TRADER_STOP,
                Level.INFO,
                s.symbol,
                f"your own stop {s.id} ({describe(s)}), no position: Warden leaves it in place",
                "nothing: Warden never cancels a stop it did not place; cancel it on the venue "
                "if you no longer want it",
            )
        elif s.symbol not in held:
            add(
                Kind.ORPHAN_STOP,
                Level.WARNING,
                s.symbol,
                f"live {s.side.value} stop {s.id} at {s.trigger_price} for {s.size}, no position",
                "cancel it (the guardian does on its next run)",
            )
    for s in history:
        if s.state is StopState.FAILED and s.updated_at >= since:
            findings.append(
                _failed_stop(name, s, s.client_id in stop_ids, [*live, *history], verified, intents)
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


_WAS_IN_EFFECT = (StopState.LIVE, StopState.TRIGGERED, StopState.CANCELED)


def repaired_at(
    failed: StopOrder,
    stops: Iterable[StopOrder],
    verified: dict[str, float],
    intents: Iterable[Intent],
) -> float | None:
    """When the position a failed stop was meant to protect was safe again, or None.

    Safe again means a later stop of the same symbol and closing side was in effect (live now,
    or it triggered or was canceled, which only a stop that was live can be: a failed one ends
    FAILED), dated by Warden's own read-back when it has one; or a close of that symbol filled
    after the failure (the position no longer needed the stop).

    "Later" is the venue's own creation time of each stop (``StopOrder.created_at``): OKX algo
    records carry ``cTime``/``uTime`` and Hyperliquid orders ``timestamp``/``statusTimestamp``,
    as ccxt's recorded live answers show (ccxt/ccxt ts/src/test/static/response/okx.json,
    fetchOpenOrders with ordType conditional; hyperliquid.json, fetchOrders).
    """
    start = failed.created_at or failed.updated_at
    times: list[float] = []
    for s in stops:
        same = s.id != failed.id and s.symbol == failed.symbol and s.side is failed.side
        if same and s.created_at >= start and s.state in _WAS_IN_EFFECT:
            # live from its creation on (a later read-back showed it in effect); the
            # journal's read-back time is the LAST pass that saw it, renewed every run,
            # which would stretch the unprotected time to the latest watchdog pass
            when = s.created_at or verified.get(s.client_id or "", start)
            times.append(max(when, start))
    for i in intents:
        if (
            i.kind is not IntentKind.ENTRY
            and i.status is IntentStatus.FILLED
            and (i.symbol, i.side) == (failed.symbol, failed.side)
            and i.updated_at >= start
        ):
            times.append(i.updated_at)
    return min(times, default=None)


def _failed_stop(
    name: str,
    s: StopOrder,
    wardens: bool,
    stops: list[StopOrder],
    verified: dict[str, float],
    intents: list[Intent],
) -> Finding:
    """A stop acknowledged then failed on the exchange: history (info) once it was repaired,
    a finding that needs the owner while it never was."""
    who = "Warden's" if wardens else "a"
    what = (
        f"{who} stop {s.client_id or s.id} ({s.side.value} {s.size} at {s.trigger_price}) "
        f"was acknowledged but failed on the exchange (failCode {s.fail_code}) at "
        f"{_iso(s.updated_at)}"
    )
    fixed = repaired_at(s, stops, verified, intents)
    if fixed is None:
        return Finding(
            Kind.FAILED_STOP_PLACEMENT,
            Level.WARNING,
            name,
            s.symbol,
            f"{what}; never repaired (no later live stop, no close)",
            "`warden status`: if the position is open, start `warden run` (the guardian places "
            "a stop); if this repeats, check margin and trigger rules",
            Repair(s.updated_at, None, None),
        )
    unprotected = max(0.0, fixed - (s.created_at or s.updated_at))
    return Finding(
        Kind.FAILED_STOP_PLACEMENT,
        Level.INFO,
        name,
        s.symbol,
        f"{what}; repaired at {_iso(fixed)} ({unprotected:.1f}s unprotected)",
        "none: repaired; if this repeats, check margin and trigger rules",
        Repair(s.updated_at, fixed, unprotected),
    )


def _stop_findings(name: str, p: Position, stops: list[StopOrder], market: Market) -> list[Finding]:
    out: list[Finding] = []
    prot = classify(p, stops, market)
    ours = [s for s in stops if s.placed_by_warden]
    for s in prot.theirs_fit:
        out.append(
            Finding(
                Kind.TRADER_STOP,
                Level.INFO,
                name,
                p.symbol,
                f"your own stop {s.id} ({describe(s)}) protects the {p.side.value} {p.size}",
                "nothing: it counts as the position's protection; Warden adds no second stop",
            )
        )
    for s, why in prot.theirs_unfit:
        out.append(
            Finding(
                Kind.TRADER_STOP,
                Level.INFO,
                name,
                p.symbol,
                f"your own stop {s.id} ({describe(s)}) does not protect the {p.side.value} "
                f"{p.size}: {why}",
                "nothing: Warden leaves it in place and guards the position with its own stop",
            )
        )
    right = [
        *(s for s in ours if s.side is p.side.exit_side and s.state is StopState.LIVE),
        *prot.theirs_fit,
    ]
    wrong = [s for s in ours if s.side is not p.side.exit_side]
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
        if s.placed_by_warden and not s.covers(p, market):
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
