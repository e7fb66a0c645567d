"""Secrets come from the environment and ``.env`` only, never from the TOML file.

The environment wins over ``.env``. Values are wrapped in ``SecretStr`` so an accidental
``repr`` or log line shows ``**********`` rather than the key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from dotenv import dotenv_values
from pydantic import SecretStr

from bot.config.errors import ConfigError
from trading.adapters.kinds import credential_variables

TELEGRAM_TOKEN = "TELEGRAM_BOT_TOKEN"


def secret_names() -> tuple[str, ...]:
    """Every secret Warden reads: the bot token and each exchange kind's credentials (the
    descriptors in trading.adapters.kinds name them)."""
    return (TELEGRAM_TOKEN, *credential_variables())


SECRET_NAMES = secret_names()
ALLOWED_USERS = "TELEGRAM_ALLOWED_USER_IDS"
# the PostgreSQL store's URL: a secret (it may carry the password), overriding [storage] url
DATABASE_URL = "WARDEN_DATABASE_URL"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def url_password(url: str) -> str | None:
    """The password in a libpq URL (user:password@host or ?password=...), or None."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return None
    if password:
        return unquote(password)
    found = parse_qs(parts.query).get("password")
    return found[0] if found else None


def _empty() -> dict[str, SecretStr]:
    return {}


@dataclass(frozen=True)
class Secrets:
    values: dict[str, SecretStr] = field(default_factory=_empty)
    telegram_allowed_user_ids: frozenset[int] = frozenset()

    def get(self, name: str) -> str | None:
        v = self.values.get(name)
        return v.get_secret_value() if v is not None else None

    def secret_strings(self) -> list[str]:
        """Every configured secret value, for the redaction filter (for the database URL also
        its password alone, however the URL is reformatted around it)."""
        found = [v.get_secret_value() for v in self.values.values() if v.get_secret_value()]
        password = url_password(self.get(DATABASE_URL) or "")
        if password:
            found.append(password)
        return found


def load_secrets(env_file: Path | None = None, environ: Mapping[str, str] | None = None) -> Secrets:
    env = os.environ if environ is None else environ
    explicit = env_file if env_file is not None else env.get("WARDEN_ENV_FILE") or None
    path = Path(explicit) if explicit is not None else Path(".env")
    merged: dict[str, str] = {}
    if explicit is not None and not path.exists():
        # a file named on purpose (--env-file, $WARDEN_ENV_FILE) that is not there is a mistake,
        # not "no secrets": only the default ./.env is optional
        raise ConfigError(f"secrets file {path}: not found")
    if explicit is not None or path.is_file():
        try:
            file_values = dotenv_values(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"secrets file {path}: cannot be read ({exc})") from None
        merged.update({k: v for k, v in file_values.items() if v is not None})
    names = (*secret_names(), DATABASE_URL)
    merged.update({k: v for k, v in env.items() if k in (*names, ALLOWED_USERS)})

    values = {k: SecretStr(merged[k].strip()) for k in names if merged.get(k, "").strip()}
    if DATABASE_URL in values and not values[DATABASE_URL].get_secret_value().startswith(
        POSTGRES_SCHEMES
    ):
        # not echoed: it is a secret
        raise ConfigError(f"{DATABASE_URL} (environment or {path}): not a postgresql:// URL")
    secrets = Secrets(values=values)
    users = _parse_user_ids(merged.get(ALLOWED_USERS, ""), str(path), secrets.secret_strings())
    return Secrets(values=values, telegram_allowed_user_ids=users)


# an entry longer than this is not echoed in the error: it is more likely a pasted key than a typo
_ECHO_MAX = 24


def _parse_user_ids(raw: str, source: str, secrets: list[str]) -> frozenset[int]:
    ids: set[int] = set()
    entries = raw.split(",")
    for n, part in enumerate(entries, start=1):
        part = part.strip()
        if not part:
            continue
        try:
            ids.add(int(part))
        except ValueError:
            # this message is printed before logging (and its redaction) is set up: a token
            # pasted into the wrong variable must not be echoed
            secret_like = len(part) > _ECHO_MAX or any(
                s in part or (len(part) >= 8 and part in s) for s in secrets
            )
            what = f"entry {n}" if secret_like else repr(part)
            raise ConfigError(
                f"{ALLOWED_USERS} (environment or {source}): {what} is not a numeric user id"
            ) from None
    return frozenset(ids)


_process: Secrets | None = None


def set_process_secrets(secrets: Secrets) -> None:
    """The secrets this process validated at start-up (with its --env-file), for the adapters."""
    global _process
    _process = secrets


def process_secrets() -> Secrets:
    return _process if _process is not None else load_secrets()
