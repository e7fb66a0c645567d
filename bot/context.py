"""What every command starts from: validated config, secrets, logging, the database."""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.config import Config, Secrets, load_config, load_secrets, resolve_config_path
from bot.config.errors import ConfigError
from bot.config.secrets import DATABASE_URL, set_process_secrets, url_password
from bot.logs import Redactor, setup_logging
from storage.db import Database, DatabaseMissing
from storage.held_lease import LeaseManager
from storage.lease import LeaseStore


@dataclass
class Context:
    config: Config
    config_source: str
    secrets: Secrets
    args: argparse.Namespace

    def exchange_name(self, requested: str | None) -> str:
        names = list(self.config.exchanges)
        if requested is None:
            if len(names) == 1:
                return names[0]
            raise ConfigError(
                f"several exchanges are configured ({', '.join(names)}): choose one with --exchange"
            )
        if requested not in self.config.exchanges:
            raise ConfigError(
                f"--exchange {requested}: not configured (configured: {', '.join(names)})"
            )
        return requested

    @property
    def database_url(self) -> str | None:
        """The PostgreSQL URL in use ($WARDEN_DATABASE_URL, else [storage] url), or None for
        the SQLite file. A secret: never print it, print ``database``."""
        return self.secrets.get(DATABASE_URL) or self.config.storage.url

    @property
    def database_target(self) -> str:
        """What ``Database.open`` is given: the URL, or the file's absolute path."""
        return self.database_url or self.database

    @property
    def database(self) -> str:
        """The database this command uses, for people: the file's absolute path (":memory:"
        stays as it is), or the PostgreSQL URL with its password masked."""
        url = self.database_url
        if url is not None:
            from storage.pg_url import mask_url

            return mask_url(url)
        path = self.config.storage.path
        return path if path == ":memory:" else os.path.abspath(path)

    def database_origin(self) -> str:
        """Where the database path came from, for messages that name it."""
        if self.secrets.get(DATABASE_URL):
            return f"${DATABASE_URL}"
        if self.config.storage.url:
            return f"[storage] url in {self.config_source}"
        if os.environ.get("WARDEN_DB"):
            return "$WARDEN_DB"
        if self.config_source.startswith("<"):
            return "the built-in demo (no config file)"
        return f"[storage] path in {self.config_source}"

    def lease_manager(self, db: Database) -> LeaseManager:
        return LeaseManager(
            LeaseStore(db),
            ttl=self.config.lease.ttl_seconds,
            heartbeat=self.config.lease.heartbeat_seconds,
        )


def build_context(args: argparse.Namespace) -> Context:
    """Validate everything before anything starts: a bad config or secret raises ConfigError."""
    env_file = getattr(args, "env_file", None)
    secrets = load_secrets(Path(env_file) if env_file else None)
    path = resolve_config_path(getattr(args, "config", None))
    try:
        config = load_config(path)
    except ConfigError as exc:
        # config errors echo offending values and are printed before logging (and its redaction)
        # is set up: a key pasted into warden.toml by mistake must not be repeated on stderr
        raise ConfigError(Redactor(secrets.secret_strings())(str(exc))) from None
    if (secrets.get(DATABASE_URL) or config.storage.url) and os.environ.get("WARDEN_DB"):
        raise ConfigError(
            "$WARDEN_DB names an SQLite file while a PostgreSQL database is configured "
            f"({'$' + DATABASE_URL if secrets.get(DATABASE_URL) else '[storage] url'}): "
            "unset one of them"
        )
    # a password written into [storage] url is masked in logs like a secret
    config_password = url_password(config.storage.url or "")
    redacted = [*secrets.secret_strings(), *([config_password] if config_password else [])]
    level = getattr(args, "log_level", None) or config.logging.level
    fmt = "json" if getattr(args, "log_json", False) else config.logging.format
    log_cfg = config.logging
    setup_logging(level, fmt, redacted, log_cfg.file, log_cfg.max_bytes, log_cfg.backups)
    set_process_secrets(secrets)
    return Context(config, str(path) if path else "<built-in defaults>", secrets, args)


def missing_hint(ctx: Context) -> str:
    return (
        f"the path comes from {ctx.database_origin()}: check it, or start the agent with that "
        "configuration (`warden run`) to create it"
    )


@asynccontextmanager
async def open_db(ctx: Context, *, create: bool = True) -> AsyncIterator[Database]:
    """The configured database. Commands that only read pass ``create=False``: a missing file
    is then an error naming the path (DatabaseMissing, exit 2) and nothing is created, so a
    wrong folder or config never shows an empty account as if all were well."""
    try:
        db = await Database.open(ctx.database_target, create=create)
    except DatabaseMissing as exc:
        raise DatabaseMissing(exc.path, missing_hint(ctx)) from None
    try:
        yield db
    finally:
        await db.close()
