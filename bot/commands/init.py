"""`warden init [--dir PATH] [--exchange KIND] [--telegram] [--yes] [--force]`.

Writes a commented ``warden.toml`` (generated from the config model: ``bot/config/reference.py``)
and a ``.env`` with mode 600. On a terminal it asks what the flags leave open, and the secrets
with getpass (never echoed); without a terminal, or with --yes, it takes the flags and defaults
and writes empty placeholders for the secrets. It never overwrites without --force, and runs
before any configuration exists (no config file is read, no database is opened).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import get_args

from bot import exit_codes
from bot.config.reference import ExchangeKind
from bot.config.schema import Config
from bot.config.secrets import ALLOWED_USERS, TELEGRAM_TOKEN
from bot.config.template import config_template
from trading.adapters.kinds import KINDS as EXCHANGE_KINDS

KINDS: tuple[ExchangeKind, ...] = get_args(ExchangeKind)
TELEGRAM_SECRETS = ((TELEGRAM_TOKEN, "Telegram bot token from @BotFather"),)


def secrets_for(exchange: str) -> tuple[tuple[str, str], ...]:
    """The .env entries (variable, description) the exchange kind's descriptor names."""
    return tuple((c.variable, c.description) for c in EXCHANGE_KINDS[exchange].credentials)


Ask = Callable[[str], str]


def _choose_exchange(ask: Ask) -> ExchangeKind:
    while True:
        answer = ask(f"exchange ({' / '.join(KINDS)}) [paper]: ").strip().lower() or "paper"
        for kind in KINDS:
            if answer == kind:
                return kind
        print(f"  one of: {', '.join(KINDS)}")


def _yes(ask: Ask, question: str) -> bool:
    return ask(f"{question} [y/N]: ").strip().lower() in ("y", "yes")


def _user_ids(ask: Ask) -> str:
    while True:
        raw = ask("Telegram user ids allowed to command it (comma-separated numbers): ")
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        if all(p.lstrip("-").isdigit() for p in parts):
            return ",".join(parts)
        print("  numeric ids only, e.g. 123456789 (ask @userinfobot for yours)")


def _quote(value: str) -> str:
    """A .env value python-dotenv reads back verbatim (single quotes: no escapes inside)."""
    if "'" in value or "\n" in value:
        raise ValueError("a secret containing ' or a newline cannot be written to .env")
    return f"'{value}'" if value else ""


def env_text(entries: list[tuple[str, str, str]]) -> str:
    """``entries``: (name, description, value); empty values are placeholders to fill in."""
    lines = [
        "# Secrets for Warden, written by `warden init`. Keep this file mode 600; never commit it.",
        "# The environment wins over this file. Everything that is not a secret is in warden.toml.",
    ]
    for name, description, value in entries:
        lines.extend(["", f"# {description}", f"{name}={_quote(value)}"])
    if not entries:
        lines.extend(
            ["", "# The paper exchange needs no keys. Telegram: `warden init --telegram`."]
        )
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str) -> None:
    """Created with mode 600 from the first byte (never world-readable, even briefly)."""
    tmp = path.with_name(f".{path.name}.init-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o600)  # the umask may have narrowed it further; never wider
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_public(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.init-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _answers(args: argparse.Namespace) -> tuple[ExchangeKind, bool, list[tuple[str, str, str]]]:
    """The exchange, Telegram on/off and the .env entries: from the flags, the terminal (when
    there is one and --yes was not given), else the defaults with empty secrets."""
    interactive = sys.stdin.isatty() and not args.yes
    exchange: ExchangeKind = args.exchange or (_choose_exchange(input) if interactive else "paper")
    telegram: bool = args.telegram or (interactive and _yes(input, "Telegram control?"))
    wanted = [*secrets_for(exchange), *(TELEGRAM_SECRETS if telegram else ())]
    entries = [
        (name, description, getpass.getpass(f"{description}: ").strip() if interactive else "")
        for name, description in wanted
    ]
    if telegram:
        ids = _user_ids(input) if interactive else ""
        entries.append((ALLOWED_USERS, "Telegram user ids allowed to command it", ids))
    return exchange, telegram, entries


def run(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    toml_path, env_path = folder / "warden.toml", folder / ".env"
    if folder.exists() and not folder.is_dir():
        print(f"warden: --dir {folder}: not a folder", file=sys.stderr)
        return exit_codes.USAGE
    existing = [p for p in (toml_path, env_path) if p.exists()]
    if existing and not args.force:
        names = " and ".join(str(p) for p in existing)
        verb = "exists" if len(existing) == 1 else "exist"
        print(f"warden: {names} {verb}: nothing written (--force replaces)", file=sys.stderr)
        return exit_codes.USAGE
    exchange, telegram, entries = _answers(args)
    toml_text = config_template(exchange, telegram)
    Config.model_validate(tomllib.loads(toml_text))  # the template is always valid: prove it
    try:
        env = env_text(entries)
        folder.mkdir(parents=True, exist_ok=True)
        _write_public(toml_path, toml_text)
        _write_private(env_path, env)
    except (ValueError, OSError) as exc:
        print(f"warden: {exc}", file=sys.stderr)
        return exit_codes.USAGE

    empty = [name for name, _d, value in entries if not value]
    sandbox = ", sandbox on" if EXCHANGE_KINDS[exchange].capabilities.sandbox else ""
    print(f"wrote {toml_path} (exchange {exchange}{sandbox})")
    print(f"wrote {env_path} (mode 600" + (f"; fill in {', '.join(empty)}" if empty else "") + ")")
    print(f"check it: warden --config {toml_path} --env-file {env_path} doctor")
    return exit_codes.OK
