"""`warden paper price SYMBOL PRICE`: move a paper market by hand (drills, tests, demos).
`warden paper faults [--set KEY=VALUE ...]`: show and change the fault injection in force.

This is the market moving, not the agent acting, so it takes no execution lease: a real market
does not wait for the agent either. Stops the move crosses fire and are printed. The faults live
in the database (shared by every process on it); the config only seeds them the first time.
"""

from __future__ import annotations

import sys
from typing import Any

from pydantic import ValidationError

from bot import exit_codes
from bot.commands.render import print_json
from bot.config import Config
from bot.config.schema import FaultsConfig
from bot.context import Context, open_db
from bot.exchanges import build_paper_exchange, paper_config, paper_settings
from storage.db import Database
from storage.errors import StorageError
from trading.errors import ExchangeError
from trading.paper.store import FaultDrift, FaultSettings, FaultState


async def price(ctx: Context) -> int:
    name = ctx.exchange_name(ctx.args.exchange)
    symbol: str = ctx.args.symbol
    table = ctx.config.exchanges[name]
    cfg = paper_config(table)
    if cfg is None:
        print(
            f"warden paper price: exchange {name} is {table.kind}, not a paper exchange; "
            "nothing was changed",
            file=sys.stderr,
        )
        return exit_codes.USAGE
    known = [m.symbol for m in cfg.markets]
    if symbol not in known:
        print(
            f"warden paper price: {symbol} is not a market of paper exchange {name} "
            f"(markets: {', '.join(known)}); nothing was changed",
            file=sys.stderr,
        )
        return exit_codes.USAGE
    async with open_db(ctx) as db:
        exchange = build_paper_exchange(ctx.config, name, db)
        try:
            triggered = await exchange.set_price(symbol, ctx.args.price)
            last = (await exchange.ticker(symbol)).last
        except ExchangeError as exc:
            print(f"warden paper price: {exc}; nothing was changed", file=sys.stderr)
            return exit_codes.USAGE
    print(f"{name} {symbol} last price {last}")
    if not triggered:
        print("no stop triggered")
    for t in triggered:
        s = t.stop
        if t.fill is not None:
            print(
                f"stop {s.id} triggered: {s.symbol} {s.side.value} {t.fill.filled} "
                f"trigger {s.trigger_price} filled at {t.fill.average_price}"
            )
        else:
            print(
                f"stop {s.id} {s.state.value}: {s.symbol} {s.side.value} trigger "
                f"{s.trigger_price}, no position to reduce"
            )
    return exit_codes.OK


# -- warden paper faults -------------------------------------------------------------------

INT_FAULTS = {name for name, field in FaultsConfig.model_fields.items() if field.annotation is int}


def parse_settings(pairs: list[str]) -> dict[str, int | float]:
    """``KEY=VALUE`` pairs, typed as the config declares them. ValueError names what is wrong;
    ranges are checked afterwards, on the whole set, by the config model."""
    known = list(FaultsConfig.model_fields)
    out: dict[str, int | float] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or key not in known:
            raise ValueError(
                f"--set {pair!r}: expected KEY=VALUE with KEY one of {', '.join(known)}"
            )
        try:
            value: int | float = int(text) if key in INT_FAULTS else float(text)
        except ValueError:
            kind = "a whole number" if key in INT_FAULTS else "a number"
            raise ValueError(f"--set {key}: {text!r} is not {kind}") from None
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            # the database stores 64-bit integers
            raise ValueError(f"--set {key}: {text!r} is out of range")
        out[key] = value
    return out


def _as_dict(f: FaultSettings) -> dict[str, int | float]:
    return {name: getattr(f, name) for name in FaultsConfig.model_fields}


async def fault_state(db: Database, name: str) -> FaultState | None:
    """The paper exchange's persisted faults, read without creating anything (None before the
    exchange was first used: the config then seeds it)."""
    from storage.paper_store import PaperStore

    try:
        async with PaperStore(db).read(name) as tx:
            return await tx.fault_state()
    except StorageError:  # a schema older than the paper tables
        return None


async def fault_drift_by_exchange(config: Config, db: Database) -> dict[str, list[FaultDrift]]:
    """For every paper exchange: where its config's faults differ from the database's (which
    are in force: the config only seeds them the first time)."""
    from trading.paper import fault_drift

    out: dict[str, list[FaultDrift]] = {}
    for name, table in config.exchanges.items():
        cfg = paper_config(table)
        if cfg is not None:
            state = await fault_state(db, name)
            drift = [] if state is None else fault_drift(state, paper_settings(cfg).faults)
            if drift:
                out[name] = drift
    return out


def drift_warning(name: str, drift: list[FaultDrift]) -> str:
    return (
        f"paper exchange {name}: fault injection in the database differs from the config, and "
        f"the database's values are in force: {'; '.join(d.line() for d in drift)}. Change them "
        f"with `warden paper faults --exchange {name} --set KEY=VALUE`"
    )


async def faults(ctx: Context) -> int:
    name = ctx.exchange_name(ctx.args.exchange)
    table = ctx.config.exchanges[name]
    cfg = paper_config(table)
    if cfg is None:
        print(
            f"warden paper faults: exchange {name} is {table.kind}, not a paper exchange; "
            "nothing was changed",
            file=sys.stderr,
        )
        return exit_codes.USAGE
    try:
        changes = parse_settings(ctx.args.set or [])
    except ValueError as exc:
        print(f"warden paper faults: {exc}; nothing was changed", file=sys.stderr)
        return exit_codes.USAGE
    configured = paper_settings(cfg).faults
    # never a new database: faults armed on a file no agent uses would inject nothing
    async with open_db(ctx, create=False) as db:
        state = await fault_state(db, name)
        if changes:
            base = _as_dict(state.current if state is not None else configured)
            try:
                merged = FaultsConfig.model_validate({**base, **changes})
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
                    for e in exc.errors()
                )
                print(f"warden paper faults: {problems}; nothing was changed", file=sys.stderr)
                return exit_codes.USAGE
            exchange = build_paper_exchange(ctx.config, name, db)

            def given(key: str) -> Any:
                return getattr(merged, key) if key in changes else None  # None: unchanged

            await exchange.set_faults(
                seed=given("seed"),
                stop_silent_fail=given("stop_silent_fail"),
                stop_silent_fail_rate=given("stop_silent_fail_rate"),
                entry_timeout_after_fill=given("entry_timeout_after_fill"),
                reject_rate=given("reject_rate"),
                latency_ms=given("latency_ms"),
            )
            state = await fault_state(db, name)
    from trading.paper import fault_drift

    drift = [] if state is None else fault_drift(state, configured)
    in_force = state.current if state is not None else configured
    if ctx.args.json:
        print_json(
            {
                "exchange": name,
                "database": ctx.database,
                "seeded": state is not None,
                "faults": _as_dict(in_force),
                "config": _as_dict(configured),
                "seeded_with": None if state is None else _as_dict(state.applied_config),
                "draws": 0 if state is None else state.draws,
                "changed": changes,
                "drift": [d.__dict__ for d in drift],
            }
        )
        return exit_codes.OK
    print(f"database: {ctx.database}")
    if state is None:
        print(f"paper exchange {name}: not used yet; the config's faults will seed it")
    else:
        print(f"paper exchange {name}: faults in force ({state.draws} random draw(s) so far)")
    for key, value in _as_dict(in_force).items():
        mark = "  (changed now)" if key in changes else ""
        print(f"  {key} = {value!r}{mark}")
    if drift:
        print("differs from the config (the database's values above are in force):")
        for d in drift:
            print(f"  {d.line()}")
    return exit_codes.OK
