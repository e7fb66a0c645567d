"""The forms a secret takes once written somewhere (as is, JSON-escaped, repr-escaped), for the
scans that look for a leaked secret: the secrets-scan and bad-input suites."""

from __future__ import annotations

import json


def forms(secret: str) -> set[str]:
    return {
        secret,
        json.dumps(secret)[1:-1],  # ASCII-escaped, as json.dumps writes by default
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
    }
