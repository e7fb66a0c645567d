"""The paper exchange's settings and the persistence port it needs (storage implements it).

trading/ never reads the config file nor runs SQL: the bot turns its config into these
dataclasses, and ``storage.paper_store`` implements ``PaperStore`` on the shared database.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, fields
from typing import Protocol

from trading.models import Candle, Market, Order, OrderSide, OrderStatus, StopOrder, StopState

from .engine import PaperPosition


@dataclass(frozen=True)
class PaperMarketSettings:
    symbol: str  # unified, e.g. BTC/USDT:USDT
    price: float  # initial last price, used once when the market first appears
    min_size: float  # base units
    size_step: float  # base units
    price_step: float
    contract_size: float = 1.0  # reported in Market; sizes are always base units

    def market(self) -> Market:
        base, _, rest = self.symbol.partition("/")
        quote = rest.partition(":")[0] or rest
        return Market(
            symbol=self.symbol,
            base=base,
            quote=quote,
            contract_size=self.contract_size,
            min_size=self.min_size,
            size_step=self.size_step,
            price_step=self.price_step,
        )


@dataclass(frozen=True)
class FaultSettings:
    """Fault budgets and rates. Counts are budgets consumed by the calls they affect."""

    seed: int = 0
    stop_silent_fail: int = 0
    stop_silent_fail_rate: float = 0.0
    entry_timeout_after_fill: int = 0
    reject_rate: float = 0.0
    latency_ms: int = 0

    def __post_init__(self) -> None:
        for name in ("stop_silent_fail", "entry_timeout_after_fill", "latency_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"faults: {name} must be >= 0 (got {getattr(self, name)})")
        for name in ("stop_silent_fail_rate", "reject_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"faults: {name} must be between 0 and 1 (got {value})")


@dataclass(frozen=True)
class FaultState:
    """What the database holds: the live budgets, the config they were last seeded from, and
    how many random draws were made (randomness is ``Random(f"{seed}:{draws}")``)."""

    current: FaultSettings
    applied_config: FaultSettings
    draws: int = 0

    @classmethod
    def seeded(cls, config: FaultSettings) -> FaultState:
        return cls(current=config, applied_config=config)

    def config_changes(self, config: FaultSettings) -> list[str]:
        """How ``config`` differs from the config that created this exchange.

        The database is the exchange: config values only seed it, once, when it is created.
        Later config edits are not applied (another process with an older or different config
        must not re-arm or disarm budgets behind a running drill); they are reported so the
        caller can warn. Budgets change at run time through ``PaperExchange.set_faults``.
        """
        return [
            f"{f.name}={getattr(config, f.name)!r} (exchange created with "
            f"{getattr(self.applied_config, f.name)!r})"
            for f in fields(FaultSettings)
            if getattr(config, f.name) != getattr(self.applied_config, f.name)
        ]


BUDGETS = ("stop_silent_fail", "entry_timeout_after_fill")  # counts spent by the calls they hit


@dataclass(frozen=True)
class FaultDrift:
    """One fault setting where the config file and the database disagree. The database's
    value (``in_force``) is the one the exchange uses."""

    name: str
    config: float
    in_force: float
    seeded_with: float

    def line(self) -> str:
        return (
            f"{self.name}: config {self.config!r}, in force {self.in_force!r} "
            f"(database seeded with {self.seeded_with!r})"
        )


def fault_drift(state: FaultState, config: FaultSettings) -> list[FaultDrift]:
    """Where ``config`` does not describe the faults in force.

    A rate, the seed or the latency differs whenever the database's value is not the config's
    (the config only seeds the exchange once; ``warden paper faults --set`` changes it later).
    A budget differs when more is armed than the config says, or when the config was changed
    after seeding and the value in force is not the config's; a budget merely spent (in force
    below the config, as seeded) is not drift.
    """
    out = []
    for f in fields(FaultSettings):
        cfg, now, seeded = (
            getattr(x, f.name) for x in (config, state.current, state.applied_config)
        )
        budget = f.name in BUDGETS
        if (now > cfg or (cfg != seeded and now != cfg)) if budget else cfg != now:
            out.append(FaultDrift(f.name, cfg, now, seeded))
    return out


@dataclass(frozen=True)
class PaperSettings:
    starting_balance: float = 10_000.0
    taker_fee: float = 0.0005
    slippage_bps: float = 5.0
    leverage: float = 5.0
    markets: tuple[PaperMarketSettings, ...] = ()
    faults: FaultSettings = field(default_factory=FaultSettings)
    currency: str = "USDT"


@dataclass(frozen=True)
class Trade:
    """One fill, kept so realised P&L can be computed later."""

    order_id: str
    symbol: str
    side: OrderSide
    size: float
    price: float
    fee: float
    realized_pnl: float  # before fees
    reduce_only: bool
    ts: float
    stop_id: str | None = None  # set when a stop's trigger made this fill


@dataclass(frozen=True)
class ReplayState:
    timeframe: str | None
    cursor: int  # candles closed so far
    count: int  # candles loaded


class PaperTx(Protocol):
    """One transaction on one paper exchange's rows (every row is keyed by exchange name)."""

    # account and faults
    async def cash(self) -> float | None: ...
    async def create_account(self, cash: float, at: float) -> None: ...
    async def set_cash(self, cash: float) -> None: ...
    async def next_id(self) -> str: ...
    async def fault_state(self) -> FaultState | None: ...
    async def save_fault_state(self, state: FaultState) -> None: ...

    # prices and positions
    async def add_market(self, symbol: str, price: float, at: float) -> None: ...
    async def prices(self) -> dict[str, float]: ...
    async def set_price(self, symbol: str, price: float, at: float) -> None: ...
    async def positions(self) -> dict[str, PaperPosition]: ...
    async def save_position(self, symbol: str, position: PaperPosition | None) -> None: ...

    # orders, stops, trades
    async def client_id_owner(self, client_id: str) -> str | None: ...
    async def insert_order(self, order: Order, stop_id: str | None = None) -> None: ...
    async def find_order(
        self, symbol: str | None, order_id: str | None, client_id: str | None
    ) -> Order | None: ...
    async def orders(self, symbol: str | None, status: OrderStatus) -> list[Order]: ...
    async def set_order_status(self, order_id: str, status: OrderStatus) -> None: ...
    async def insert_stop(self, stop: StopOrder) -> None: ...
    async def find_stop(
        self, symbol: str | None, stop_id: str | None, client_id: str | None
    ) -> StopOrder | None: ...
    async def stops(
        self, symbol: str | None, *, live: bool, since: float | None = None
    ) -> list[StopOrder]: ...
    async def end_stop(
        self, stop_id: str, state: StopState, at: float, fill_order_id: str | None = None
    ) -> None: ...
    async def insert_trade(self, trade: Trade) -> None: ...
    async def trades(self, symbol: str | None, since: float | None) -> list[Trade]: ...

    # candle replay
    async def replace_candles(
        self, symbol: str, timeframe: str, candles: list[Candle], cursor: int
    ) -> None: ...
    async def replay_state(self, symbol: str) -> ReplayState: ...
    async def set_cursor(self, symbol: str, cursor: int) -> None: ...
    async def candle_range(self, symbol: str, start: int, stop: int) -> list[Candle]: ...
    async def closed_candles(
        self, symbol: str, cursor: int, since: float | None, limit: int
    ) -> list[Candle]: ...


class PaperStore(Protocol):
    def write(self, exchange: str) -> AbstractAsyncContextManager[PaperTx]:
        """A write transaction holding the database's write lock from its start."""
        ...

    def read(self, exchange: str) -> AbstractAsyncContextManager[PaperTx]:
        """A consistent snapshot; its writes (if any) are rolled back."""
        ...
