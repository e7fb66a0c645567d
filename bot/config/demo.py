"""The embedded default: what `warden run` does on a fresh machine with no config file.

The paper exchange replays the bundled (synthetic) candles at a candle every 1.5 s, both
built-in strategies trade it, and fault injection is on, so a newcomer sees a silent stop
failure caught and repaired. No keys, no network.
"""

from __future__ import annotations

from typing import Any

DEMO: dict[str, Any] = {
    # its own file: a later `warden init` + `warden run` in the same folder (./warden.db) must
    # start clean, not inherit the demo's positions and fault injection
    "storage": {"path": "./warden-demo.db"},
    "guardian": {"verify_delay_seconds": 0.5, "watchdog_seconds": 10.0},
    "exchanges": {
        "paper": {
            "kind": "paper",
            "faults": {"seed": 7, "stop_silent_fail": 1, "stop_silent_fail_rate": 0.15},
            "replay": {"data": "bundled", "seconds_per_candle": 1.5, "warmup_candles": 120},
        }
    },
    "strategies": [
        {
            "name": "btc_momentum",
            "kind": "momentum_breakout",
            "exchange": "paper",
            "symbols": ["BTC/USDT:USDT"],
            "timeframe": "30m",
        },
        {
            "name": "eth_bollinger",
            "kind": "bollinger",
            "exchange": "paper",
            "symbols": ["ETH/USDT:USDT"],
            "timeframe": "30m",
            "params": {"mode": "mean_reversion"},
        },
    ],
}
