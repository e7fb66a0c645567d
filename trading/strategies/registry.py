"""Strategy kinds by name: ``create("bollinger", {"period": 30})`` validates and builds one.

Every error names the parameter: an unknown key, a wrong type or a value out of range raises
``ParamError`` (a ``ValueError``) with ``.param`` set; an unknown kind raises ``UnknownKindError``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from trading.strategies.base import ParamError, ParamSpec, Strategy, param_specs
from trading.strategies.bollinger import Bollinger, BollingerParams
from trading.strategies.momentum_breakout import MomentumBreakout, MomentumBreakoutParams


class UnknownKindError(ValueError):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        super().__init__(f"unknown strategy kind {kind!r} (known: {', '.join(kinds())})")


@dataclass(frozen=True)
class StrategyKind:
    name: str
    params_type: type
    build: Callable[[Any], Strategy]
    summary: str

    @property
    def params(self) -> tuple[ParamSpec, ...]:
        return param_specs(self.params_type)


REGISTRY: dict[str, StrategyKind] = {
    k.name: k
    for k in (
        StrategyKind(
            "momentum_breakout",
            MomentumBreakoutParams,
            MomentumBreakout,
            "N-bar channel breakout, ATR or percent stop, optional opposite-channel exit",
        ),
        StrategyKind(
            "bollinger",
            BollingerParams,
            Bollinger,
            "Bollinger Bands, mean_reversion or breakout, configurable stop and exit",
        ),
    )
}


def kinds() -> tuple[str, ...]:
    return tuple(sorted(REGISTRY))


def get_kind(kind: str) -> StrategyKind:
    try:
        return REGISTRY[kind]
    except KeyError:
        raise UnknownKindError(kind) from None


def parse_params(kind: str, raw: Mapping[str, object] | None = None) -> Any:
    """The kind's frozen params dataclass from a table; defaults fill what is missing."""
    spec = get_kind(kind)
    raw = dict(raw or {})
    known = [f.name for f in dataclasses.fields(spec.params_type)]
    for key in raw:
        if key not in known:
            raise ParamError(kind, key, f"is unknown (known: {', '.join(sorted(known))})")
    return spec.params_type(**raw)


def create(kind: str, raw: Mapping[str, object] | None = None) -> Strategy:
    """A strategy of ``kind`` configured from ``raw`` (e.g. a ``[strategies.params]`` table)."""
    return get_kind(kind).build(parse_params(kind, raw))


def default_params(kind: str) -> dict[str, object]:
    return {p.name: p.default for p in get_kind(kind).params}
