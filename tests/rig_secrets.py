"""Every form a secret can take once written somewhere (as is, quoted, URL-encoded, base64, ...),
for the scans that look for a leaked secret: the secrets-scan and bad-input suites."""

from __future__ import annotations

import json


def forms(secret: str) -> set[str]:
    return {
        secret,
        json.dumps(secret)[1:-1],  # ASCII-escaped, as json.dumps writes by default
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
    }
