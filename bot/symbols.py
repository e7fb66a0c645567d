"""Symbols as people type them: ``BTC/USDT:USDT``, ``btc``, ``BTCUSDT`` or ``btc-usdt-swap``.

One parser for every front end (the CLI and Telegram), so a shorthand that works in one works in
the other. It only ever picks among the symbols the exchange lists; an ambiguous or unknown text
is an error naming the candidates, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


class SymbolError(ValueError):
    """What was typed matches no listed symbol, or several."""


def _norm(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def _forms(symbol: str) -> set[str]:
    base, _, rest = symbol.partition("/")
    quote, _, settle = rest.partition(":")
    return {_norm(base), _norm(base + quote), _norm(base + quote + settle)}


def resolve_symbol(text: str, symbols: Iterable[str]) -> str:
    """A listed symbol from what was typed; raises SymbolError saying why not."""
    known = sorted(set(symbols))
    for s in known:
        if s.upper() == text.upper():
            return s
    typed = _norm(text)
    matches = [s for s in known if typed and typed in _forms(s)]
    if not matches and typed.endswith("SWAP"):
        # OKX's own instrument id (BTC-USDT-SWAP) is what users copy from its web pages
        bare = typed.removesuffix("SWAP")
        matches = [s for s in known if bare and bare in _forms(s)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise SymbolError(f"{text} matches several symbols: {', '.join(matches)}")
    raise SymbolError(f"unknown symbol {text} (known: {', '.join(known) or 'none'})")
