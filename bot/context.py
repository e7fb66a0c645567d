"""What every command starts from: validated config, secrets, logging, the database."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.config import Config, Secrets, load_config, load_secrets, resolve_config_path
from bot.config.errors import ConfigError
from bot.config.secrets import set_process_secrets
from bot.logs import Redactor, setup_logging
from storage.db import Database
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


@asynccontextmanager
async def open_db(ctx: Context) -> AsyncIterator[Database]:
    db = await Database.open(ctx.config.storage.path)
    try:
        yield db
    finally:
        await db.close()
