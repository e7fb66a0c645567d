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
    """Per-strategy overrides of the global [risk]; ``None`` means "use the global value"."""

    sizing: Literal["fixed", "risk"] | None = None
    size: float | None = Field(None, gt=0)  # base units, with sizing = "fixed"
    risk_per_trade: float | None = Field(None, gt=0, le=1)
    max_leverage: float | None = Field(None, gt=0, le=125)
    max_notional: float | None = Field(None, gt=0)
    max_open_positions: int | None = Field(None, ge=1, le=1000)

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
    name: Name
    kind: StrategyKindName
    exchange: Name
    symbols: list[Symbol] = Field(min_length=1)
    timeframe: Timeframe = "30m"
    params: dict[str, ParamValue] = Field(default_factory=dict)
    risk: StrategyRiskConfig = Field(default_factory=StrategyRiskConfig)

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
