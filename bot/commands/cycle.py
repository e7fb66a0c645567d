"""`warden cycle --once [--strategy NAME]`: the manual run of the post-mortem, made safe: it
goes through the same lease as the scheduler and exits 75 when the account is busy."""

from __future__ import annotations

import sys
import time

from bot import exit_codes
from bot.commands.render import print_json
from bot.config.errors import ConfigError
from bot.config.schema import ReplayConfig
from bot.context import Context, open_db
from bot.cycles import CycleRunner, build_runs
from bot.exchanges import replay_of
from bot.services import build_account
from storage.cycle_store import CycleStore
from trading.port import ExchangePort


async def run(ctx: Context) -> int:
    config = ctx.config
    wanted = ctx.args.strategy
    pairs = list(zip(build_runs(config), config.strategies, strict=True))
    if wanted is not None:
        pairs = [(r, sc) for r, sc in pairs if sc.name == wanted]
        if not pairs:
            names = ", ".join(sc.name for sc in config.strategies) or "none"
            raise ConfigError(f"--strategy {wanted}: not configured (strategies: {names})")
    if not pairs:
        raise ConfigError("no [[strategies]] configured: nothing to cycle")
    code = exit_codes.OK
    results = []
    async with open_db(ctx) as db:
        leases = ctx.lease_manager(db)
        cycles = CycleStore(db)
        for run_spec, sc in pairs:
            ex = config.exchanges[sc.exchange]
            acct = build_account(config, sc.exchange, db)
            recorded = replay_of(ex)
            runner = CycleRunner(
                run_spec,
                acct,
                leases,
                cycles,
                config.scheduler.cycle_timeout_seconds,
                live_clock=recorded is None,
            )
            started = time.time()
            try:
                if recorded is not None:
                    # a fresh database has no candles yet: load them as `warden run` does (a
                    # database that already replays them keeps its place)
                    await _prepare_replay(acct.exchange, recorded, sc.symbols, sc.timeframe)
                outcome = await runner.run("manual")
            finally:
                await acct.exchange.close()
            report = outcome.report
            results.append(
                {
                    "strategy": sc.name,
                    "status": outcome.status,
                    "outcome": report.outcome if report else outcome.status,
                    "detail": report.summary() if report else outcome.detail,
                    "seconds": round(time.time() - started, 3),
                }
            )
            if outcome.status == "busy":
                print(
                    f"warden cycle: {sc.name}: busy: lease held by {outcome.detail}",
                    file=sys.stderr,
                )
                code = exit_codes.BUSY
            elif outcome.status != "done" or (report and report.errors):
                code = max(code, exit_codes.REFUSED) if code != exit_codes.BUSY else code
    if ctx.args.json:
        print_json({"cycles": results})
    else:
        for r in results:
            print(f"{r['strategy']}: {r['outcome']} ({r['seconds']}s): {r['detail']}")
    return code


async def _prepare_replay(
    exchange: ExchangePort, replay: ReplayConfig, symbols: list[str], timeframe: str
) -> None:
    from bot import replay as replay_data
    from trading.paper.exchange import PaperExchange

    assert isinstance(exchange, PaperExchange)
    await replay_data.prepare(exchange, replay, {s: timeframe for s in symbols})
