"""Structured log events: ``event(log, "lease.acquired", scope=..., token=...)``.

The fields travel on the record; the process's formatter renders them as key=value (or JSON).
"""

from __future__ import annotations

import logging
from typing import Any


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    logger.log(level, name, extra={"fields": fields})
