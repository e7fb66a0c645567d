"""Trading strategies: pure functions of closed candles (and the open position) to a decision.

``create(kind, params)`` builds one from a config table; ``Strategy.decide(candles, position)``
answers ``enter`` (side + stop), ``exit`` or ``hold``, always with a reason.
"""

from trading.strategies.base import Action, Decision, ParamError, Strategy
from trading.strategies.bollinger import Bollinger, BollingerParams
from trading.strategies.momentum_breakout import MomentumBreakout, MomentumBreakoutParams
from trading.strategies.registry import (
    REGISTRY,
    UnknownKindError,
    create,
    default_params,
    kinds,
    parse_params,
)

__all__ = [
    "REGISTRY",
    "Action",
    "Bollinger",
    "BollingerParams",
    "Decision",
    "MomentumBreakout",
    "MomentumBreakoutParams",
    "ParamError",
    "Strategy",
    "UnknownKindError",
    "create",
    "default_params",
    "kinds",
    "parse_params",
]
