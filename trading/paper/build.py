"""The paper kind's adapter factory (see trading.adapters.kinds): the paper exchange NAME on
its store. It needs no secrets; the argument is there because every factory is called alike."""

from __future__ import annotations

from trading.adapters.kinds import SecretGetter
from trading.paper.exchange import PaperExchange
from trading.paper.store import PaperSettings, PaperStore


def build_paper(
    name: str, *, secrets: SecretGetter, settings: PaperSettings, store: PaperStore
) -> PaperExchange:
    del secrets  # the simulator has no keys
    return PaperExchange(name, settings, store)
