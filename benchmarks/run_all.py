"""Run every benchmark of the project; each rewrites its own section of docs/benchmarks.md.

python benchmarks/run_all.py            # all (about 20 minutes on 2 cores)
python benchmarks/run_all.py lease memory
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "lease": "lease_bench.py",
    "detection": "detection_bench.py",
    "cycle": "cycle_bench.py",
    "open-overhead": "open_overhead_bench.py",
    "backtest": "backtest_bench.py",
    "telegram": "telegram_bench.py",
    "memory": "memory_bench.py",
    "reliability": "reliability.py",
    "reliability-outage": "reliability_outage.py",
}


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHMARKS)
    unknown = [n for n in chosen if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
        return 2
    failed = []
    for name in chosen:
        script = HERE / BENCHMARKS[name]
        if not script.exists():
            print(f"== {name}: {script.name} missing", flush=True)
            failed.append(name)
            continue
        print(f"== {name} ({script.name})", flush=True)
        started = time.monotonic()
        rc = subprocess.call([sys.executable, str(script)])
        print(f"== {name}: exit {rc} after {time.monotonic() - started:.0f}s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
