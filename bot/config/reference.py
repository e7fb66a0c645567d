"""The configuration reference, generated from the config model (``bot/config/schema.py``).

    python -m bot.config.reference > docs/configuration.md

The same walk writes the commented ``warden.toml`` of ``warden init`` (``bot/config/template.py``):
every key with its type, default, range and description comes from the pydantic fields, so the
documentation and the template cannot drift from what the validator accepts.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from bot.config.schema import (
    Config,
    HyperliquidExchangeConfig,
    OkxExchangeConfig,
    PaperExchangeConfig,
)
from bot.config.secrets import ALLOWED_USERS, TELEGRAM_TOKEN
from bot.config.strategy import StrategyConfig
from trading.adapters.kinds import KINDS
from trading.strategies.registry import REGISTRY

ExchangeKind = Literal["paper", "okx", "hyperliquid"]
EXCHANGE_MODELS: dict[str, type[BaseModel]] = {
    "paper": PaperExchangeConfig,
    "okx": OkxExchangeConfig,
    "hyperliquid": HyperliquidExchangeConfig,
}
WIDTH = 98


@dataclass(frozen=True)
class Key:
    name: str
    type: str
    value: Any  # the default; PydanticUndefined when the key is required, None when unset
    range: str
    description: str
    example: Any = None

    @property
    def required(self) -> bool:
        return self.value is PydanticUndefined

    def default_text(self) -> str:
        if self.required:
            return "required"
        if self.value is None:
            return "unset"
        return toml_value(self.value)


@dataclass(frozen=True)
class Table:
    header: str  # e.g. "[lease]", "[[exchanges.NAME.markets]]"
    doc: str
    keys: tuple[Key, ...]
    optional: bool = False  # the table itself may be left out (then: off)
    title: str = ""  # the heading, when the header alone is ambiguous

    def with_(self, **changes: Any) -> Table:
        return dataclasses.replace(self, **changes)


# --- reading the model -------------------------------------------------------------------------


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML rendering for {value!r}")


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(annotation)):
            return args[0], True
    return annotation, False


def type_name(annotation: Any) -> str:
    annotation, _ = _strip_optional(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return type_name(typing.get_args(annotation)[0])
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in typing.get_args(annotation))
    if origin is list:
        return f"array of {type_name(typing.get_args(annotation)[0])}"
    if origin is dict:
        return "table"
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if annotation in names:
        return names[annotation]
    return getattr(annotation, "__name__", str(annotation))


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


def range_text(metadata: list[Any], annotation: Any) -> str:
    lo = hi = ""
    parts: list[str] = []
    for m in metadata:
        if isinstance(m, annotated_types.Gt):
            lo = f"{_num(m.gt)} <"  # type: ignore[arg-type]
        elif isinstance(m, annotated_types.Ge):
            lo = f"{_num(m.ge)} <="  # type: ignore[arg-type]
        elif isinstance(m, annotated_types.Lt):
            hi = f"< {_num(m.lt)}"  # type: ignore[arg-type]
        elif isinstance(m, annotated_types.Le):
            hi = f"<= {_num(m.le)}"  # type: ignore[arg-type]
        elif isinstance(m, annotated_types.MinLen) and m.min_length > 0:
            base, _ = _strip_optional(annotation)
            is_list = typing.get_origin(base) in (list, dict)
            parts.append(f"at least {m.min_length}" if is_list else "not empty")
        elif getattr(m, "pattern", None):
            parts.append(f"pattern `{m.pattern}`")
    if lo and not hi:  # "x > 0" reads better than "0 < x"
        op, value = lo.split()[1], lo.split()[0]
        parts.insert(0, f"x {'>' if op == '<' else '>='} {value}")
    elif lo or hi:
        parts.insert(0, " ".join(p for p in (lo, "x", hi) if p))
    return ", ".join(parts)


def submodel(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds (directly, optionally or as a list) and whether it is a list."""
    annotation, _ = _strip_optional(annotation)
    if typing.get_origin(annotation) is list:
        inner = typing.get_args(annotation)[0]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner, True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def default_of(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        made = field.default_factory()  # type: ignore[call-arg]
        return made if isinstance(made, list | dict) else None
    return field.default


def _key(name: str, field: FieldInfo) -> Key:
    example = field.examples[0] if field.examples else None
    return Key(
        name=name,
        type=type_name(field.annotation),
        value=default_of(field),
        range=range_text(list(field.metadata), field.annotation),
        description=field.description or "",
        example=example,
    )


def _doc(model: type[BaseModel]) -> str:
    doc = model.__dict__.get("__doc__") or ""
    return " ".join(doc.split())


def model_tables(prefix: str, model: type[BaseModel], *, array: bool = False) -> Iterator[Table]:
    """The table of ``model`` (its plain keys) and, after it, the tables it nests."""
    header = f"[[{prefix}]]" if array else f"[{prefix}]"
    keys = []
    nested: list[tuple[str, FieldInfo]] = []
    for name, field in model.model_fields.items():
        sub, _ = submodel(field.annotation)
        if sub is not None or (model is StrategyConfig and name == "params"):
            nested.append((name, field))
        else:
            keys.append(_key(name, field))
    yield Table(header, _doc(model), tuple(keys))
    for name, field in nested:
        if model is StrategyConfig and name == "params":
            yield from strategy_param_tables()
            continue
        sub, is_list = submodel(field.annotation)
        assert sub is not None
        for i, table in enumerate(model_tables(f"{prefix}.{name}", sub, array=is_list)):
            if i == 0:
                # the field's own description says what the nested table is for
                doc = (
                    f"{field.description[:1].upper()}{field.description[1:]}. "
                    if (field.description)
                    else ""
                )
                optional = _strip_optional(field.annotation)[1]
                table = table.with_(doc=doc + table.doc, optional=optional)
            yield table


def strategy_param_tables() -> Iterator[Table]:
    for kind in sorted(REGISTRY):
        spec = REGISTRY[kind]
        keys = tuple(
            Key(
                name=p.name,
                type=(
                    " | ".join(json.dumps(c) for c in p.choices) if p.choices else type_name(p.type)
                ),
                value=p.default,
                range=(
                    f"{_num(p.min)} <= x <= {_num(p.max)}"
                    if p.min is not None and p.max is not None
                    else ""
                ),
                description="",
            )
            for p in spec.params
        )
        title = f'[strategies.params] for kind = "{kind}"'
        yield Table("[strategies.params]", spec.summary + ".", keys, title=title)


def tables() -> list[Table]:
    """Every table a warden.toml can hold, in the order of the model."""
    out: list[Table] = []
    for name, field in Config.model_fields.items():
        sub, is_list = submodel(field.annotation)
        if sub is not None:
            out.extend(model_tables(name, sub, array=is_list))
        elif name == "exchanges":
            for kind, model in EXCHANGE_MODELS.items():
                for table in model_tables("exchanges.NAME", model):
                    out.append(table.with_(title=f'{table.header} with kind = "{kind}"'))
        else:
            raise TypeError(f"Config.{name}: no reference rendering for {field.annotation}")
    return out


def all_fields() -> Iterator[tuple[str, FieldInfo]]:
    """Every field of every model reachable from Config (for the description test)."""
    seen: set[type[BaseModel]] = set()

    def walk(prefix: str, model: type[BaseModel]) -> Iterator[tuple[str, FieldInfo]]:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            yield f"{prefix}{name}", field
            sub, _ = submodel(field.annotation)
            if sub is not None:
                yield from walk(f"{prefix}{name}.", sub)

    yield from walk("", Config)
    for kind, model in EXCHANGE_MODELS.items():
        yield from walk(f"exchanges.{kind}.", model)


# --- markdown ------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else "-"


def markdown() -> str:
    lines = [
        "# Configuration reference",
        "",
        "<!-- generated by `python -m bot.config.reference > docs/configuration.md` from the",
        "     config model in bot/config/schema.py; a test fails when this file is stale -->",
        "",
        "Warden reads one TOML file: `--config PATH`, else `$WARDEN_CONFIG`, else `./warden.toml`,",
        "else the built-in demo. Every key is optional unless marked *required*; unknown keys,",
        "wrong types (a string is never read as a number) and values out of range stop start-up",
        "with an error naming the key (exit 2). `warden init` writes a commented file with every",
        "key below; `warden doctor` checks one.",
        "",
        "Environment: `$WARDEN_CONFIG` (the file), `$WARDEN_DB` (overrides `[storage] path`),",
        "`$WARDEN_ENV_FILE` (the secrets file, default `./.env`).",
        "",
        "## Secrets",
        "",
        "Never in the TOML file: in the environment or the `.env` file (chmod 600; the",
        "environment wins). They are masked in every log line, stored text and alert.",
        "",
        "| variable | used by |",
        "| --- | --- |",
    ]
    lines.append(f"| `{TELEGRAM_TOKEN}` | Telegram control (with {ALLOWED_USERS}) |")
    for kind in KINDS.values():
        for cred in kind.credentials:
            used = f'an `[exchanges.*]` table with kind = "{kind.name}"'
            lines.append(f"| `{cred.variable}` | {used} |")
    lines.append(
        f"| `{ALLOWED_USERS}` | comma-separated numeric Telegram user ids allowed to act |"
    )
    lines.append("")
    for table in tables():
        title = table.title or table.header
        lines.append("## " + title.replace(table.header, f"`{table.header}`", 1))
        lines.append("")
        if table.doc:
            lines.extend([*textwrap.wrap(table.doc, WIDTH), ""])
        if table.optional:
            lines.extend(["Optional table: leave it out to switch this off.", ""])
        if not table.keys:
            continue
        lines.append("| key | type | default | range | description |")
        lines.append("| --- | --- | --- | --- | --- |")
        for k in table.keys:
            default = "*required*" if k.required else f"`{k.default_text()}`"
            if k.value is None:
                default = "unset"
            lines.append(
                f"| `{k.name}` | {_cell(k.type)} | {_cell(default)} | {_cell(k.range)} "
                f"| {_cell(k.description)} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    print(markdown(), end="")


if __name__ == "__main__":
    main()
