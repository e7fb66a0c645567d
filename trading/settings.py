"""Settings the domain needs, as plain dataclasses (trading/ never reads the config file)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RiskLimits:
    max_stop_percent: float = 10.0
    max_leverage: float = 5.0
    max_open_positions: int = 2
    max_notional: float | None = None


@dataclass(frozen=True)
class StopPolicy:
    verify_delay: float = 2.0
    verify_attempts: int = 3
    # a position with no remembered stop level (opened outside Warden) is protected this far away
    default_stop_percent: float = 10.0
