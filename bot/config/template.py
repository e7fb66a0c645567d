"""The commented ``warden.toml`` that `warden init` writes, generated from the config model.

Every table of the model with every key at its default (an unset key commented out with an
example), each preceded by its description and range (``bot/config/reference.py`` reads them
from the pydantic fields), plus the exchange table for the chosen kind and a commented strategy.
"""

from __future__ import annotations

import textwrap
from typing import Any

from pydantic_core import PydanticUndefined

from bot.config.reference import (
    EXCHANGE_MODELS,
    WIDTH,
    ExchangeKind,
    Key,
    Table,
    default_of,
    model_tables,
    submodel,
    tables,
    toml_value,
)
from bot.config.schema import Config, PaperExchangeConfig
from trading.adapters.kinds import KINDS


def _comment(text: str, indent: str = "") -> list[str]:
    return [f"{indent}# {line}" for line in textwrap.wrap(text, WIDTH - 2 - len(indent))]


def _key_lines(key: Key, value: Any = PydanticUndefined, note: str = "") -> list[str]:
    text = key.description.rstrip(".")
    numeric = key.range.split(",")[0] if " x " in f" {key.range} " else ""
    if numeric:
        text += f" ({numeric})"
    if note:
        text += f". {note}"
    lines = _comment(text)
    chosen = key.value if value is PydanticUndefined else value
    if chosen is None or chosen is PydanticUndefined:
        example = key.example if key.example is not None else ""
        lines.append(f"# {key.name} = {toml_value(example)}")
    else:
        lines.append(f"{key.name} = {toml_value(chosen)}")
    return lines


def _table_lines(
    table: Table,
    header: str,
    values: dict[str, Any] | None = None,
    notes: dict[str, str] | None = None,
    skip: frozenset[str] = frozenset(),
) -> list[str]:
    values = values or {}
    notes = notes or {}
    lines = ["", *_comment(table.doc), header] if table.doc else ["", header]
    for key in table.keys:
        if key.name in skip:
            continue
        lines.extend(
            _key_lines(key, values.get(key.name, PydanticUndefined), notes.get(key.name, ""))
        )
    return lines


def _find(header: str) -> Table:
    return next(t for t in tables() if t.header == header)


def _exchange_lines(kind: ExchangeKind) -> list[str]:
    prefix = f"exchanges.{kind}"
    own = [t for t in model_tables("exchanges.NAME", EXCHANGE_MODELS[kind])]
    lines = _comment(
        "One table per exchange account; the name after 'exchanges.' is yours (here: "
        f"{kind!r}). Several accounts: several tables."
    )
    notes = {}
    values: dict[str, Any] = {"kind": kind}
    if KINDS[kind].capabilities.sandbox:
        values["sandbox"] = True
        notes["sandbox"] = (
            "warden init starts on the exchange's test environment: set false to trade real "
            "money, after the go-live checklist (README)"
        )
    for table in own:
        header = table.header.replace("exchanges.NAME", prefix)
        if table.header == "[[exchanges.NAME.markets]]":
            for i, market in enumerate(default_of(PaperExchangeConfig.model_fields["markets"])):
                shown = table if i == 0 else table.with_(doc="")
                lines.extend(_table_lines(shown, header, market.model_dump()))
        elif table.optional:
            lines.extend(["", *_comment(table.doc)])
            lines.append(f"# {header}")
            for key in table.keys:
                lines.extend(_comment_out(_key_lines(key)))
        else:
            lines.extend(_table_lines(table, header, values, notes))
    return lines


def _comment_out(lines: list[str]) -> list[str]:
    return [line if line.startswith("#") else f"# {line}" for line in lines]


SAMPLE_SYMBOL = {"paper": "BTC/USDT:USDT", "okx": "BTC/USDT:USDT", "hyperliquid": "BTC/USDC:USDC"}


def _strategy_lines(kind: ExchangeKind) -> list[str]:
    table = _find("[[strategies]]")
    lines = [
        "",
        *_comment(
            "Strategies: none is configured, so `warden run` only guards positions (every "
            "position gets a verified stop). To trade, uncomment and adapt:"
        ),
        "# [[strategies]]",
    ]
    sample = {
        "name": "btc_momentum",
        "kind": "momentum_breakout",
        "exchange": kind,
        "symbols": [SAMPLE_SYMBOL[kind]],
        "timeframe": "30m",
    }
    for key in table.keys:
        lines.extend(_comment_out(_key_lines(key, sample.get(key.name, key.value))))
    lines.append("# [strategies.params]                  # see docs/configuration.md")
    lines.append("# channel = 20")
    return lines


def config_template(exchange: ExchangeKind = "paper", telegram: bool = False) -> str:
    """A commented warden.toml: every key at its default, the exchange table for ``exchange``."""
    lines = [
        f"# warden.toml written by `warden init` (exchange: {exchange}, "
        f"telegram: {'on' if telegram else 'off'}).",
        "# Every key shows its default; a commented key is unset. Reference: docs/configuration.md",
        "# Secrets (exchange keys, bot token, allowed user ids) never go here: they are in .env.",
        "# Check this file with `warden doctor`.",
    ]
    for name, field in Config.model_fields.items():
        sub, is_list = submodel(field.annotation)
        if sub is None or is_list:  # exchanges and strategies follow
            continue
        if name == "telegram" and not telegram:
            lines.extend(
                [
                    "",
                    *_comment(
                        "[telegram]: Telegram control is off (no TELEGRAM_BOT_TOKEN in .env). "
                        "Run `warden init --telegram --force`, or see docs/configuration.md."
                    ),
                ]
            )
            continue
        for table in model_tables(name, sub):
            lines.extend(_table_lines(table, table.header))
    lines.append("")
    lines.extend(_exchange_lines(exchange))
    lines.extend(_strategy_lines(exchange))
    return "\n".join(lines) + "\n"
