"""The paper exchange: Warden's embedded default exchange, a simulator behind the ExchangePort.

State lives in the shared SQLite database (``storage.paper_store``), so several processes trade
on one simulated account, as they would on one real account.
"""

from trading.paper.core import AdvanceResult, TriggeredStop
from trading.paper.engine import PaperPosition
from trading.paper.exchange import PaperExchange
from trading.paper.store import (
    FaultDrift,
    FaultSettings,
    FaultState,
    PaperMarketSettings,
    PaperSettings,
    PaperStore,
    PaperTx,
    ReplayState,
    Trade,
    fault_drift,
)

__all__ = [
    "AdvanceResult",
    "FaultDrift",
    "FaultSettings",
    "FaultState",
    "PaperExchange",
    "PaperMarketSettings",
    "PaperPosition",
    "PaperSettings",
    "PaperStore",
    "PaperTx",
    "ReplayState",
    "Trade",
    "TriggeredStop",
    "fault_drift",
]
