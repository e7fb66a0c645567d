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
from bot.config.secrets import set_process_secrets
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
    def database(self) -> str:
        """The database this command uses, as an absolute path (":memory:" stays as it is)."""
        path = self.config.storage.path
        return path if path == ":memory:" else os.path.abspath(path)

    def database_origin(self) -> str:
        """Where the database path came from, for messages that name it."""
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
    level = getattr(args, "log_level", None) or config.logging.level
    fmt = "json" if getattr(args, "log_json", False) else config.logging.format
    log_cfg = config.logging
    setup_logging(
        level, fmt, secrets.secret_strings(), log_cfg.file, log_cfg.max_bytes, log_cfg.backups
    )
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
        db = await Database.open(ctx.config.storage.path, create=create)
    except DatabaseMissing as exc:
        raise DatabaseMissing(exc.path, missing_hint(ctx)) from None
    try:
        yield db
    finally:
        await db.close()
