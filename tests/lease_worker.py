"""A child process for tests/test_lease_processes.py: one real OS process using the lease.

Run as ``python -m tests.lease_worker MODE --db PATH ...`` (the name does not match pytest's
``test_*.py`` pattern, so it is never collected). Every mode opens its own ``Database`` on the
shared file, as a second Warden process would.

Modes:

``contend``  many acquire(wait) -> hold -> release -> pause cycles. While holding, the worker
             creates a marker file with ``O_CREAT | O_EXCL`` and removes it before releasing:
             if the marker already exists, two holders overlapped (no clock involved). Prints
             ``READY``, waits for ``--go`` to exist, then writes a JSON report to ``--out``;
             exit 1 on any overlap, busy or error.
``hold``     acquire, print ``ACQUIRED <token> <owner>``, then hold until killed or SIGTERM.
``fenced``   acquire, print ``ACQUIRED <token> <owner>``, then obey stdin commands:
             ``write`` runs ``ensure()`` and, only if it passes, appends a line to ``--writes``
             and prints ``WROTE <token>``; a ``LeaseLost`` prints ``REFUSED <message>``.
             ``status`` prints ``STATUS <lost reason or ok>``. ``quit`` (or EOF) releases and
             exits 0, or 3 when a write was ever refused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time

from storage.db import Database
from storage.held_lease import LeaseManager
from storage.lease import LeaseStore
from trading.lease import LeaseBusy, LeaseLost

EXIT_REFUSED = 3


def say(line: str) -> None:
    print(line, flush=True)


async def contend(args: argparse.Namespace, manager: LeaseManager) -> int:
    say("READY")
    while not os.path.exists(args.go):
        await asyncio.sleep(0.005)
    holds: list[list[int]] = []
    overlaps: list[str] = []
    busy: list[str] = []
    errors: list[str] = []
    for i in range(args.cycles):
        requested = time.monotonic_ns()
        try:
            held = await manager.acquire(args.scope, f"contend pid {os.getpid()} #{i}", args.wait)
        except LeaseBusy as exc:
            busy.append(str(exc))
            continue
        acquired = time.monotonic_ns()
        fd: int | None = None
        try:
            try:
                fd = os.open(args.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    with open(args.marker, encoding="ascii") as f:
                        other = f.read()
                except OSError:
                    other = "?"
                overlaps.append(f"token {held.token} pid {os.getpid()} found marker of {other}")
            else:
                os.write(fd, f"token {held.token} pid {os.getpid()}".encode("ascii"))
            start = time.monotonic_ns()
            await held.ensure()
            if args.hold_ms > 0:
                await asyncio.sleep(args.hold_ms / 1000)
            end = time.monotonic_ns()
            holds.append([held.token, start, end, acquired - requested])
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if fd is not None:
                os.close(fd)
                os.unlink(args.marker)
            await held.release()
        if args.pause_ms > 0:
            # time outside the lease, so that the others' retries find it free and the holds
            # interleave (without it one process would re-take it back to back)
            await asyncio.sleep(random.uniform(0, args.pause_ms) / 1000)
    report = {
        "pid": os.getpid(),
        "holds": holds,
        "overlaps": overlaps,
        "busy": busy,
        "errors": errors,
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f)
    os.replace(tmp, args.out)
    return 1 if overlaps or busy or errors else 0


async def hold(args: argparse.Namespace, manager: LeaseManager) -> int:
    held = await manager.acquire(args.scope, args.purpose, args.wait)
    say(f"ACQUIRED {held.token} {held.owner}")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await held.release()
    return 0


async def fenced(args: argparse.Namespace, manager: LeaseManager) -> int:
    held = await manager.acquire(args.scope, args.purpose, args.wait)
    say(f"ACQUIRED {held.token} {held.owner}")
    refused = False
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        command = line.strip()
        if command in ("", "quit"):
            break
        if command == "write":
            try:
                await held.ensure()
            except LeaseLost as exc:
                refused = True
                say(f"REFUSED {exc}")
                continue
            with open(args.writes, "a", encoding="ascii") as f:
                f.write(f"{os.getpid()} {held.token}\n")
            say(f"WROTE {held.token}")
        elif command == "status":
            say(f"STATUS {held.lost_reason or 'ok'}")
        else:
            say(f"UNKNOWN {command}")
    await held.release()
    return EXIT_REFUSED if refused else 0


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lease_worker")
    parser.add_argument("mode", choices=["contend", "hold", "fenced"])
    parser.add_argument("--db", required=True)
    parser.add_argument("--scope", default="paper:main")
    parser.add_argument("--purpose", default="lease worker")
    parser.add_argument("--ttl", type=float, default=30.0)
    parser.add_argument("--heartbeat", type=float, default=5.0)
    parser.add_argument("--wait", type=float, default=0.0)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--hold-ms", type=float, default=2.0)
    parser.add_argument("--pause-ms", type=float, default=0.0)
    parser.add_argument("--marker")
    parser.add_argument("--go")
    parser.add_argument("--out")
    parser.add_argument("--writes")
    args = parser.parse_args(argv)
    db = await Database.open(args.db)
    try:
        manager = LeaseManager(LeaseStore(db), ttl=args.ttl, heartbeat=args.heartbeat)
        mode = {"contend": contend, "hold": hold, "fenced": fenced}[args.mode]
        return await mode(args, manager)
    finally:
        await db.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
