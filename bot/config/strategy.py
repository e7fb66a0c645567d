"""One ``[[strategies]]`` entry of the configuration.

    [[strategies]]
    name = "btc-breakout"
    kind = "momentum_breakout"        # momentum_breakout | bollinger
    exchange = "paper"                # a key of [exchanges]
    symbols = ["BTC/USDT:USDT"]
    timeframe = "30m"                 # 1m 5m 15m 30m 1h 4h 1d
    [strategies.params]               # checked by the kind: an unknown key is an error
    channel = 20
    [strategies.risk]                 # each key optional: falls back to the global [risk]
    sizing = "risk"                   # risk | fixed (fixed needs size, in base units)
    risk_per_trade = 0.01

The base model and the name pattern repeat ``schema.StrictModel`` / ``schema.Name`` on purpose:
``schema`` imports this module, so importing back would be a cycle (a test keeps them equal).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from trading.strategies.base import ParamError, Strategy
from trading.strategies.registry import UnknownKindError, create, parse_params

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")]
Symbol = Annotated[str, Field(pattern=r"^[A-Z0-9]+/[A-Z0-9]+:[A-Z0-9]+$")]
Timeframe = Literal["1m", "5m", "15m", "30m", "1h", "4h", "1d"]
StrategyKindName = Literal["momentum_breakout", "bollinger"]
ParamValue = bool | int | float | str


class _StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class StrategyRiskConfig(_StrictModel):
    """Per-strategy overrides of the global [risk]; an unset key uses the global value."""

    sizing: Literal["fixed", "risk"] | None = Field(
        None,
        description='risk: size from risk_per_trade and the stop distance; fixed: always "size"; '
        "unset: risk",
        examples=["risk"],
    )
    size: float | None = Field(
        None,
        gt=0,
        description='with sizing = "fixed": the order size in base units',
        examples=[0.001],
    )
    risk_per_trade: float | None = Field(
        None,
        gt=0,
        le=1,
        description='with sizing = "risk": fraction of equity lost at the stop; unset: [risk]',
        examples=[0.01],
    )
    max_leverage: float | None = Field(
        None, gt=0, le=125, description="unset: the global [risk] value", examples=[5.0]
    )
    max_notional: float | None = Field(
        None, gt=0, description="unset: the global [risk] value", examples=[5000.0]
    )
    max_open_positions: int | None = Field(
        None, ge=1, le=1000, description="unset: the global [risk] value", examples=[2]
    )

    @model_validator(mode="after")
    def _size_goes_with_fixed(self) -> StrategyRiskConfig:
        if self.sizing == "fixed" and self.size is None:
            raise ValueError('sizing = "fixed" needs size (in base units, e.g. size = 0.001)')
        if self.size is not None and self.sizing != "fixed":
            raise ValueError('size is only used with sizing = "fixed"')
        if self.sizing == "fixed" and self.risk_per_trade is not None:
            raise ValueError('risk_per_trade is only used with sizing = "risk"')
        return self


class StrategyConfig(_StrictModel):
    """One strategy: trades its symbols on one exchange, a cycle after each candle closes."""

    name: Name = Field(description="unique name: cycle records, alerts and --strategy use it")
    kind: StrategyKindName = Field(description="the strategy (its parameters: [strategies.params])")
    exchange: Name = Field(description="a key of [exchanges]")
    symbols: list[Symbol] = Field(min_length=1, description="unified swap symbols it trades")
    timeframe: Timeframe = Field("30m", description="candle size; a cycle runs after each close")
    params: dict[str, ParamValue] = Field(
        default_factory=dict, description="parameters of the kind; unset ones take their default"
    )
    risk: StrategyRiskConfig = Field(
        default_factory=StrategyRiskConfig, description="per-strategy risk overrides"
    )

    @field_validator("symbols")
    @classmethod
    def _unique_symbols(cls, symbols: list[str]) -> list[str]:
        twice = sorted({s for s in symbols if symbols.count(s) > 1})
        if twice:
            raise ValueError(f"symbol listed more than once: {', '.join(twice)}")
        return symbols

    @field_validator("params")
    @classmethod
    def _params_fit_the_kind(
        cls, params: dict[str, ParamValue], info: ValidationInfo
    ) -> dict[str, ParamValue]:
        kind = info.data.get("kind")
        if kind is None:  # the kind itself is invalid: that error is reported on its own
            return params
        try:
            parse_params(kind, params)
        except (ParamError, UnknownKindError) as exc:
            raise PydanticCustomError("strategy_param", "{detail}", {"detail": str(exc)}) from None
        return params

    def build_strategy(self) -> Strategy:
        """A strategy configured by this entry (params already validated above)."""
        return create(self.kind, self.params)
