"""The daemon's resident memory after an hour of accelerated replay (target: under 150 MB).

`warden run` (a real process) replays the bundled data with both built-in strategies and fault
injection, at a fast pace, for as many candles as an hour of the demo's pace (1.5 s a candle:
2,400 candles per symbol; the bundled files hold 2,880). Its RSS is sampled from /proc every
0.5 s. Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.docsection import machine_line, write_section

SECTION = "memory-bench"
CONFIG = """
[guardian]
verify_delay_seconds = 0.05
watchdog_seconds = 5.0
[logging]
level = "WARNING"
[exchanges.paper]
kind = "paper"
[exchanges.paper.faults]
seed = 7
stop_silent_fail = 1
stop_silent_fail_rate = 0.15
[exchanges.paper.replay]
data = "bundled"
seconds_per_candle = {pace}
warmup_candles = 120
[[strategies]]
name = "btc_momentum"
kind = "momentum_breakout"
exchange = "paper"
symbols = ["BTC/USDT:USDT"]
[[strategies]]
name = "eth_bollinger"
kind = "bollinger"
exchange = "paper"
symbols = ["ETH/USDT:USDT"]
"""


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cycles_done(db: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM cycle").fetchone()[0])
    except sqlite3.Error:
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candles", type=int, default=2400)
    parser.add_argument("--pace", type=float, default=0.02, help="seconds per candle")
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "warden.toml").write_text(CONFIG.format(pace=args.pace))
        env = dict(os.environ, PYTHONPATH=str(root))
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        try:
            # two strategies: one cycle record each per candle
            while cycles_done(cwd / "warden.db") < 2 * args.candles:
                if proc.poll() is not None:
                    print("warden run exited early", file=sys.stderr)
                    return 1
                samples.append((time.monotonic() - started, rss_mb(proc.pid)))
                time.sleep(0.5)
            final = rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
        cycles = cycles_done(cwd / "warden.db")
    elapsed = time.monotonic() - started
    peak = max(r for _, r in samples)
    first_min = [r for t, r in samples if t >= 10][:1] or [samples[-1][1]]
    print(
        f"{cycles} cycles in {elapsed:.0f}s; RSS after warm-up {first_min[0]:.1f} MB, "
        f"peak {peak:.1f} MB, final {final:.1f} MB"
    )
    body = "\n".join(
        [
            "## Daemon memory (`benchmarks/memory_bench.py`)",
            "",
            machine_line(),
            "`warden run` as a real process on the paper exchange, both built-in strategies, "
            f"fault injection on, replaying {args.candles} candles per symbol (an hour of the "
            f"demo's 1.5 s pace) at {args.pace} s a candle; RSS from /proc every 0.5 s. "
            "Target: under 150 MB.",
            "",
            "| cycles | seconds | RSS after 10 s (MB) | peak RSS (MB) | final RSS (MB) |",
            "|---|---|---|---|---|",
            f"| {cycles} | {elapsed:.0f} | {first_min[0]:.1f} | {peak:.1f} | {final:.1f} |",
            "",
            f"Target under 150 MB: {'met' if peak < 150 else 'MISSED'}. Paper mode never imports "
            "ccxt (about 105 MB on its own); a real-exchange daemon adds it once.",
        ]
    )
    write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
