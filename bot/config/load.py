"""Find, read and validate the configuration file.

Resolution order: ``--config PATH``, then ``$WARDEN_CONFIG``, then ``./warden.toml``, then the
built-in defaults (paper exchange). ``$WARDEN_DB`` overrides ``[storage] path``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.config.demo import DEMO
from bot.config.errors import ConfigError
from bot.config.schema import Config

DEFAULT_FILE = Path("warden.toml")
BUILTIN = "<built-in defaults: paper demo>"


def resolve_config_path(
    cli_path: str | None, environ: Mapping[str, str] | None = None
) -> Path | None:
    env = os.environ if environ is None else environ
    if cli_path:
        return Path(cli_path)
    if env.get("WARDEN_CONFIG"):
        return Path(env["WARDEN_CONFIG"])
    if DEFAULT_FILE.is_file():
        return DEFAULT_FILE
    return None


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    source = str(path) if path is not None else BUILTIN
    data: dict[str, Any] = DEMO
    if path is not None:
        data = _read_toml(path)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    if env.get("WARDEN_DB"):
        storage = config.storage.model_copy(update={"path": env["WARDEN_DB"]})
        config = config.model_copy(update={"storage": storage})
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot be read ({exc.strerror})") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None


_KINDS = ("paper", "okx", "hyperliquid")


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for i, item in enumerate(loc):
        # pydantic puts the union tag in the location (exchanges.x.paper.fee); users never wrote it
        if i == 2 and loc[0] == "exchanges" and item in _KINDS:
            continue
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"config file {source}: {exc.error_count()} error(s)"]
    for err in exc.errors():
        key = _key_path(tuple(err["loc"]))
        etype = err["type"]
        if etype == "extra_forbidden":
            msg = "unknown key"
        elif etype == "missing":
            msg = "required key is missing"
        elif etype == "union_tag_not_found":
            key += ".kind"
            msg = "required key is missing (one of: " + ", ".join(_KINDS) + ")"
        elif etype == "union_tag_invalid":
            # the input here is the whole exchange table: echo only the tag, never the table
            # (it may hold a key pasted there by mistake)
            tag = (err.get("ctx") or {}).get("tag", "?")
            key += ".kind"
            msg = f"must be one of: {', '.join(_KINDS)} (got {tag!r})"
        else:
            msg = err["msg"]
            if "input" in err and not isinstance(err["input"], dict | list):
                msg += f" (got {err['input']!r})"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)
