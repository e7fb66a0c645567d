"""PostgreSQL URLs for people: the password masked. No driver import (SQLite users load this)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

MASK = "***"


def mask_url(url: str) -> str:
    """The URL with its password (user:password@ or ?password=) replaced by ``***``:
    ``postgresql://warden:***@host/db``."""
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None
    except ValueError:
        return "postgresql://" + MASK
    if has_password:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        parts = parts._replace(netloc=f"{user}:{MASK}@{hostport}")
    if "password" in parse_qs(parts.query):
        parts = parts._replace(
            query=re.sub(r"(^|&)password=[^&]*", rf"\1password={MASK}", parts.query)
        )
    return urlunsplit(parts)


def strip_url(text: str, url: str) -> str:
    """A driver message without the URL's password (libpq may echo connection details)."""
    text = text.replace(url, mask_url(url))
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        password = None
    candidates = [password, unquote(password) if password else None]
    candidates += parse_qs(parts.query).get("password", []) if "://" in url else []
    for secret in candidates:
        if secret:
            text = text.replace(secret, MASK)
    return re.sub(r"password=\S+", f"password={MASK}", text)
