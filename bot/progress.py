"""A one-line progress bar on stderr for long commands (backtest, download).

Drawn only when the stream is a terminal, so pipes, logs and tests see nothing of it; redrawn
only when the shown percentage changes, so it costs nothing measurable in a tight loop.
"""

from __future__ import annotations

import sys
from typing import TextIO

WIDTH = 30


class ProgressBar:
    def __init__(
        self, label: str, unit: str, stream: TextIO | None = None, enabled: bool | None = None
    ) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._shown = -1
        self._drawn = False

    def update(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        percent = min(100, done * 100 // total)
        if percent == self._shown:
            return
        self._shown = percent
        filled = WIDTH * percent // 100
        bar = "#" * filled + "." * (WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {percent:3d}% {done:,}/{total:,} {self.unit}")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the bar's line (only if one was drawn)."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
