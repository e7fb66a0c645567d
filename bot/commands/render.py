"""Plain-text and JSON rendering shared by CLI commands."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from storage.lease import LeaseHolder, Refusal


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def holder_json(h: LeaseHolder, now: float) -> dict[str, Any]:
    return {
        "scope": h.scope,
        "owner": h.owner,
        "purpose": h.purpose,
        "token": h.token,
        "acquired_at": iso(h.acquired_at),
        "heartbeat_at": iso(h.heartbeat_at),
        "expires_at": iso(h.expires_at),
        "age_seconds": round(h.age(now), 3),
        "expired": h.expires_at <= now,
    }


def refusal_json(r: Refusal) -> dict[str, Any]:
    return {
        "scope": r.scope,
        "at": iso(r.at),
        "refused_owner": r.owner,
        "refused_purpose": r.purpose,
        "holder_owner": r.holder_owner,
        "holder_purpose": r.holder_purpose,
        "holder_token": r.holder_token,
    }


def holder_line(h: LeaseHolder, now: float) -> str:
    state = "EXPIRED" if h.expires_at <= now else f"expires in {h.expires_at - now:.0f}s"
    return (
        f"{h.scope:<20} {h.purpose!r} by {h.owner}, held {h.age(now):.1f}s, "
        f"token {h.token}, {state}"
    )


def refusal_line(r: Refusal) -> str:
    return (
        f"{iso(r.at)} {r.scope}: refused {r.purpose!r} ({r.owner}); "
        f"held by {r.holder_purpose!r} ({r.holder_owner}, token {r.holder_token})"
    )
