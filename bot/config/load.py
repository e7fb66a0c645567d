"""Find, read and validate the configuration file.

Resolution order: ``--config PATH``, then ``$WARDEN_CONFIG``, then ``./warden.toml``, then the
built-in defaults (paper exchange). ``$WARDEN_DB`` overrides ``[storage] path``; a relative
``[storage] path`` is resolved from the config file's folder (``$WARDEN_DB`` and the demo's
from the working folder).
"""

from __future__ import annotations

import difflib
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bot.config.demo import DEMO
from bot.config.errors import ConfigError
from bot.config.schema import Config
from trading.adapters.kinds import KINDS

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
    db_path = config.storage.path
    if env.get("WARDEN_DB"):
        db_path = env["WARDEN_DB"]  # as given: relative to the working folder, like any argument
    elif path is not None and db_path != ":memory:" and not Path(db_path).is_absolute():
        # a config file names its database relative to itself, so `warden --config
        # live/warden.toml status` reads live/warden.db whatever the working folder
        db_path = os.path.abspath(path.parent / db_path)
    if db_path != config.storage.path:
        storage = config.storage.model_copy(update={"path": db_path})
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


_KINDS = tuple(KINDS)  # the exchange kinds: trading.adapters.kinds


def _expand(tp: Any) -> list[Any]:
    """The concrete types behind ``Annotated``, ``X | None`` and unions."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _expand(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for a in typing.get_args(tp) if a is not type(None) for t in _expand(a)]
    return [tp]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _tagged(model: type[BaseModel], tag: int | str) -> bool:
    kind = model.model_fields.get("kind")
    return kind is not None and tag in typing.get_args(kind.annotation)


def _models_at(loc: tuple[int | str, ...]) -> list[type[BaseModel]]:
    """The config tables a location points into, following the schema (dict keys, list
    indexes and the exchange ``kind`` tag pydantic puts in the location)."""
    current: list[Any] = [Config]
    for item in loc:
        following: list[Any] = []
        for tp in (t for c in current for t in _expand(c)):
            origin = typing.get_origin(tp)
            if _is_model(tp) and isinstance(item, str) and item in tp.model_fields:
                following.append(tp.model_fields[item].annotation)
            elif _is_model(tp) and _tagged(tp, item):
                following.append(tp)
            elif origin is dict:
                following.append(typing.get_args(tp)[1])
            elif origin is list and isinstance(item, int):
                following.append(typing.get_args(tp)[0])
        current = following
    return [t for c in current for t in _expand(c) if _is_model(t)]


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    """`` (did you mean max_leverage?)`` for a misspelt key, from the keys of its table."""
    if not loc or not isinstance(loc[-1], str):
        return ""
    known = sorted({k for m in _models_at(loc[:-1]) for k in m.model_fields})
    close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


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
            msg = "unknown key" + _did_you_mean(tuple(err["loc"]))
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
