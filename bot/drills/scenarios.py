"""The four drills. Numbers come from the post-mortem (shared incident report):
BTC long 0.00095 at about 69,060 with its stop 5.03% away; ETH short with its stop at 1,983.41
whose fallback market close filled at 2,006.02."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from bot.config.schema import Config
from bot.drills.harness import EXCHANGE, DrillEnv, DrillRun, drill_env
from bot.watchdog import Watchdog
from trading.models import PositionSide, StopState

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
BTC_SIZE = 0.00095
BTC_ENTRY = 69060.0
BTC_STOP = round(BTC_ENTRY * (1 - 0.0503), 1)
ETH_SIZE = 0.3
ETH_STOP = 1983.41
ETH_OVERRUN = 2006.02


def _child_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("WARDEN_DB", None)
    return env


async def _equity(env: DrillEnv) -> float:
    return (await env.paper.balance()).total


async def double_open(base: Config, run: DrillRun) -> None:
    async with drill_env(base) as env:
        start_equity = await _equity(env)
        cmd = [
            sys.executable,
            "-m",
            "bot",
            "--config",
            str(env.config_path),
            "--log-level",
            "ERROR",
            "open",
            BTC,
            "long",
            "--size",
            str(BTC_SIZE),
            "--stop",
            str(BTC_STOP),
            "--yes",
            "--json",
        ]
        run.step(
            f"two executors ('scheduled' and 'manual', separate processes) open long "
            f"{BTC_SIZE} {BTC} with stop {BTC_STOP} at the same moment"
        )
        procs = [
            await asyncio.create_subprocess_exec(
                *cmd,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=_child_env(),
            )
            for _ in range(2)
        ]
        outs = await asyncio.gather(*(p.communicate() for p in procs))
        codes = sorted(p.returncode or 0 for p in procs)
        for p, (out, err) in zip(procs, outs, strict=True):
            line = (err.decode().strip().splitlines() or [""])[-1]
            if p.returncode == 0:
                line = json.loads(out.decode())["results"][0]["detail"]
            run.step(f"  process exited {p.returncode}: {line}")
        run.check(
            codes[0] == 0 and codes[1] in (1, 75),
            f"one executor opened, the other was kept out (exit codes {codes})",
        )
        positions = await env.paper.positions()
        sizes = [p.size for p in positions if p.symbol == BTC]
        run.check(sizes == [BTC_SIZE], f"exactly one position of {BTC_SIZE} (exchange: {sizes})")
        stops = [s for s in await env.paper.open_stops(BTC) if s.state is StopState.LIVE]
        run.check(
            len(stops) == 1 and stops[0].size == BTC_SIZE,
            f"one live stop covering {BTC_SIZE} at {BTC_STOP}",
        )
        run.step(f"market falls through the stop: price -> {BTC_STOP - 40}")
        await env.paper.set_price(BTC, BTC_STOP - 40)
        left = [p for p in await env.paper.positions() if p.symbol == BTC]
        loss = start_equity - await _equity(env)
        run.figures["stop_out_loss"] = loss
        run.check(
            not left and 2.5 < loss < 4.5,
            f"stopped out for a loss of ${loss:.2f} (a doubled position lost $6.63)",
        )


async def silent_stop(base: Config, run: DrillRun) -> None:
    async with drill_env(base, faults={"stop_silent_fail": 1}) as env:
        acct = env.account
        run.step(
            f"fault armed: the next stop is acknowledged, then fails on the exchange "
            f"(failCode 1000); short {ETH_SIZE} {ETH} with stop {ETH_STOP}"
        )
        async with env.leases.hold(acct.scope, "drill silent-stop") as lease:
            res = await acct.executor.open(
                lease, ETH, PositionSide.SHORT, ETH_SIZE, ETH_STOP, "drill silent-stop"
            )
        for note in res.notes:
            run.step(f"  {note}")
        latency = res.detection_latency
        if latency is not None:
            run.figures["detection_latency"] = latency
        run.check(
            latency is not None,
            f"silent failure detected {latency if latency is None else round(latency, 2)}s "
            "after placement (read back from the exchange)",
        )
        run.check(res.outcome.value == "protected", f"re-placed and verified live ({res.detail})")
        history = await env.paper.stop_history(ETH)
        failed = [s for s in history if s.state is StopState.FAILED]
        run.check(
            len(failed) == 1 and failed[0].fail_code == "1000",
            "the failed placement is in the exchange's stop history with failCode 1000",
        )
        run.step(f"market rises through the stop: price -> {ETH_STOP + 8}")
        fired = await env.paper.set_price(ETH, ETH_STOP + 8)
        left = [p for p in await env.paper.positions() if p.symbol == ETH]
        fills = [t.fill.average_price for t in fired if t.fill is not None]
        run.check(not left and len(fills) == 1, "position closed by its stop")
        if fills:
            run.figures["stop_exit_price"] = fills[0]
            run.check(
                fills[0] < ETH_OVERRUN,
                f"exit at {fills[0]} (stop {ETH_STOP} plus slippage), not at {ETH_OVERRUN}",
            )


async def stop_overrun(base: Config, run: DrillRun) -> None:
    moved = asyncio.Event()
    holder: list[DrillEnv] = []

    async def market_jumps_while_verifying(seconds: float) -> None:
        await asyncio.sleep(seconds)
        if not moved.is_set() and holder:
            moved.set()
            await holder[0].paper.set_price(ETH, ETH_OVERRUN)
            run.step(f"  meanwhile the market jumps through the stop: price -> {ETH_OVERRUN}")

    async with drill_env(
        base, faults={"stop_silent_fail": 1}, sleep=market_jumps_while_verifying
    ) as env:
        holder.append(env)
        acct = env.account
        run.step(f"short {ETH_SIZE} {ETH} with stop {ETH_STOP}; the stop will fail silently")
        async with env.leases.hold(acct.scope, "drill stop-overrun") as lease:
            res = await acct.executor.open(
                lease, ETH, PositionSide.SHORT, ETH_SIZE, ETH_STOP, "drill stop-overrun"
            )
        for note in res.notes:
            run.step(f"  {note}")
        run.check(res.outcome.value == "emergency_closed", f"emergency close: {res.detail}")
        left = [p for p in await env.paper.positions() if p.symbol == ETH]
        run.check(not left, "no position left without a stop")
        incidents = [
            i for i in await acct.journal.incidents(acct.scope) if i.kind == "emergency_close"
        ]
        ok = bool(incidents) and incidents[0].attribution.value == "execution"
        cost = incidents[0].cost if incidents else 0.0
        run.figures["emergency_cost"] = cost
        run.check(
            ok and cost > 0,
            f"incident attributed to an execution fault, cost ${cost:.2f} beyond the stop",
        )


async def stop_removed(base: Config, run: DrillRun) -> None:
    async with drill_env(base) as env:
        acct = env.account
        stop = round(BTC_ENTRY * 0.95, 1)
        async with env.leases.hold(acct.scope, "drill stop-removed") as lease:
            res = await acct.executor.open(
                lease, BTC, PositionSide.LONG, 0.001, stop, "drill stop-removed"
            )
        run.check(res.outcome.value == "protected", f"opened: {res.detail}")
        interval = min(env.config.guardian.watchdog_seconds, 1.0)
        dog = Watchdog(acct, env.leases, interval)
        halt = asyncio.Event()
        task = asyncio.create_task(dog.run_forever(halt))
        try:
            await asyncio.sleep(interval / 2)  # remove it between two watchdog ticks
            live = await env.paper.open_stops(BTC)
            run.step(
                f"watchdog running every {interval:g}s; the stop {live[0].id} is canceled "
                "behind the agent's back (as from the exchange's web page)"
            )
            await env.paper.cancel_stop(BTC, live[0].id)
            removed = time.monotonic()
            detected = restored = None
            deadline = removed + 30 + 3 * interval + 4 * env.config.guardian.verify_delay_seconds
            while time.monotonic() < deadline and restored is None:
                if detected is None and await acct.journal.incidents(acct.scope):
                    detected = time.monotonic() - removed
                records = await acct.journal.stops_for(acct.scope, BTC, limit=1)
                if records and records[0].status.value == "verified" and records[0].id > 1:
                    restored = time.monotonic() - removed
                await asyncio.sleep(0.02)
        finally:
            halt.set()
            await task
        if detected is not None:
            run.figures["detection_latency"] = detected
        if restored is not None:
            run.figures["restore_latency"] = restored
        run.check(
            detected is not None,
            f"removed stop detected by the watchdog after "
            f"{detected if detected is None else round(detected, 2)}s",
        )
        run.check(
            restored is not None,
            f"a new stop placed and read back live "
            f"{restored if restored is None else round(restored, 2)}s after the removal",
        )
        incidents = await acct.journal.incidents(acct.scope)
        ext = [i for i in incidents if i.kind == "unprotected_position"]
        run.check(
            bool(ext) and ext[0].attribution.value == "external",
            "incident attributed as external (canceled outside Warden)",
        )


SCENARIOS = {
    "double-open": double_open,
    "silent-stop": silent_stop,
    "stop-overrun": stop_overrun,
    "stop-removed": stop_removed,
}
assert EXCHANGE
