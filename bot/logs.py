"""Logging: one line per event with key=value context (or JSON lines), secrets masked.

Use ``trading.logfmt.event(logger, "lease.acquired", scope=..., token=...)``; the text
formatter renders ``lease.acquired scope=okx:main token=7``; the JSON formatter puts the
fields in the object.
Redaction runs on the final text of every record, tracebacks included, so a secret that slips
into an exception message from a library is masked too.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
import time
from collections.abc import Iterable
from typing import Any

from bot.config.errors import ConfigError
from trading.logfmt import event

__all__ = ["Redactor", "event", "redactor", "setup_logging"]

MASK = "***"
MIN_SECRET_LEN = 4
# the password of any PostgreSQL URL (user:password@), even one that is not a configured
# secret (a URL quoted by a driver or a library): a database password never reaches a log
_URL_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]+@")


def _render_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\n'):
        return json.dumps(text)
    return text


class Redactor:
    """Masks every configured secret value wherever it appears in a text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        new = {s for s in secrets if s and len(s) >= MIN_SECRET_LEN}
        # longest first, so a secret containing another is masked whole
        self._secrets = sorted(set(self._secrets) | new, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if "postgres" in text:
            text = _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text)
        return text


class KeyValueFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"{ts}.{int(record.msecs):03d}Z",
            record.levelname,
            record.name,
            self.redact(record.getMessage()),
        ]
        fields: dict[str, Any] = getattr(record, "fields", {}) or {}
        # values are redacted before quoting: json.dumps escapes '"', '\\' and non-ASCII, and a
        # secret holding one of those would no longer match in the final text
        parts.extend(f"{k}={_render_value(self.redact(str(v)))}" for k, v in fields.items())
        line = " ".join(parts)
        if record.exc_info:
            exc = self.redact(self.formatException(record.exc_info)).replace("\n", "\n    ")
            line += "\n    " + exc
        return self.redact(line)


class JsonFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "event": self.redact(record.getMessage()),
        }
        fields: dict[str, Any] = getattr(record, "fields", {}) or {}
        # strings are redacted before JSON encoding escapes them (see KeyValueFormatter)
        for k, v in fields.items():
            obj[k] = v if isinstance(v, int | float | bool | type(None)) else self.redact(str(v))
        if record.exc_info:
            obj["exc"] = self.redact(self.formatException(record.exc_info))
        return self.redact(json.dumps(obj, ensure_ascii=False))


_redactor = Redactor()


def redactor() -> Redactor:
    """The process-wide redactor: alerts and stored error texts go through it as well."""
    return _redactor


def _rotating_file(path: str, max_bytes: int, backups: int) -> logging.Handler:
    """``[logging] file``: the same lines as stderr, rotated by size (FILE.1 is the newest)."""
    try:
        return logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
    except OSError as exc:
        raise ConfigError(f"logging.file {path}: cannot be opened ({exc.strerror})") from None


def setup_logging(
    level: str = "INFO",
    fmt: str = "text",
    secrets: Iterable[str] = (),
    file: str | None = None,
    max_bytes: int = 10_000_000,
    backups: int = 5,
) -> None:
    _redactor.add(secrets)
    # one formatter for every handler: a rotated file is redacted exactly like stderr
    formatter = JsonFormatter(_redactor) if fmt == "json" else KeyValueFormatter(_redactor)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file is not None:
        handlers.append(_rotating_file(file, max_bytes, backups))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        if isinstance(h, logging.FileHandler):
            h.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
    # these libraries log request URLs at DEBUG/INFO, and Telegram's URL carries the bot token
    for noisy in ("httpx", "httpcore", "telegram.ext", "apscheduler", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
