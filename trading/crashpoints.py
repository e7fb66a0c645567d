"""Named crash points: fault injection that kills the process at a chosen spot of the
open/close/stop path, so tests and benchmarks can prove what a restart recovers.

Like the paper exchange's faults, this is a documented facility that does nothing unless asked
for. Set ``WARDEN_CRASH_AT`` in a process's environment to a point's name to have that process
SIGKILL itself (no cleanup, no ``finally``, no flushed buffers: a power cut) the first time it
reaches the point, or to ``name:N`` for the N-th time. The variable is read once, at import;
unset (the normal case) a crash point is one comparison.

The points, in the order an entry passes them:

- ``after_intent_stored``: the order's intent is in the journal, nothing was sent
- ``after_entry_sent``: the entry order was sent (answered or failed), its outcome not stored
- ``after_fill_recorded``: the entry's fill is in the journal, no stop placed yet
- ``after_stop_sent``: the exchange accepted a stop, the journal does not know its id yet
- ``during_verification``: a stop was placed and acknowledged, not yet read back
- ``during_emergency_close``: the emergency close order filled and its intent is settled,
  its exit, incident and alert not recorded
- ``after_emergency_record``: the emergency close's exit, incident and alert were recorded
  (one transaction), the process has not returned yet

Closes pass ``after_close_sent`` / ``after_emergency_close_sent`` (the same spot as
``after_entry_sent``) and ``after_intent_stored`` too: ``after_intent_stored:2`` is the
second order of the process, e.g. an emergency close after its entry.
"""

from __future__ import annotations

import os
import signal

ENV = "WARDEN_CRASH_AT"
POINTS = (
    "after_intent_stored",
    "after_entry_sent",
    "after_fill_recorded",
    "after_stop_sent",
    "during_verification",
    "during_emergency_close",
    "after_emergency_record",
    "after_close_sent",
    "after_emergency_close_sent",
)


def parse(value: str | None) -> tuple[str, int] | None:
    """``name`` or ``name:N`` -> (name, N); None when unset or blank. A malformed count is an
    error: a fault that silently never fires would make a test prove nothing."""
    if value is None or not value.strip():
        return None
    name, sep, count = value.strip().partition(":")
    if name not in POINTS:
        raise ValueError(f"{ENV}={value!r}: unknown crash point (known: {', '.join(POINTS)})")
    if not sep:
        return name, 1
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"{ENV}={value!r}: the count after ':' must be a positive integer")
    return name, int(count)


_target = parse(os.environ.get(ENV))
_seen = 0


def crash_point(name: str) -> None:
    """SIGKILL this process if ``WARDEN_CRASH_AT`` names this point (and its count is due)."""
    global _seen
    if _target is None or _target[0] != name:
        return
    _seen += 1
    if _seen >= _target[1]:
        os.kill(os.getpid(), signal.SIGKILL)


def arm(value: str | None) -> None:
    """Re-read the target (tests in one process); ``None`` disarms."""
    global _target, _seen
    _target, _seen = parse(value), 0
