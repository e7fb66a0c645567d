"""Backtests: the live cycle (strategy -> executor -> stop keeper -> guardian -> paper exchange)
replayed over history on in-memory stores, as fast as it can go."""

from trading.backtest.engine import (
    AccountSpec,
    BacktestResult,
    SymbolData,
    backtest_settings,
    run_backtest,
)
from trading.backtest.lease import InProcessLease
from trading.backtest.memory_journal import MemoryJournal
from trading.backtest.memory_paper import MemoryPaperStore
from trading.backtest.metrics import RoundTrip, Summary

__all__ = [
    "AccountSpec",
    "BacktestResult",
    "InProcessLease",
    "MemoryJournal",
    "MemoryPaperStore",
    "RoundTrip",
    "Summary",
    "SymbolData",
    "backtest_settings",
    "run_backtest",
]
