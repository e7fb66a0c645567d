"""A persistent racer for ``benchmarks/soak.py``: one long-lived OS process that imports Warden
once and then, per trial, runs exactly what ``warden open ...`` runs.

    python -m benchmarks.soak_racer -- ARGV...

Reads commands from stdin, one per line: ``go TRIAL STOP`` runs the CLI's own ``bot.cli.main``
with ARGV, ``{stop}`` in it replaced by STOP (the price moves during a run: the conductor names
a valid stop level per trial), as `warden` would be given them (build the context from the
config, the account,
the execution lease, the executor's guarded open) and answers one JSON line on stdout:
``{"trial", "rc", "out", "err", "seconds", "cpu"}`` (the command's stdout and stderr as it
printed them, its exit code, its wall and CPU time). ``quit`` or EOF ends the process. Spawning
a fresh interpreter per `warden open` costs about a second of CPU in imports; this pays that
once per racer, not once per trial, and runs the same code after it.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time

from bot.cli import main as warden_main


def run_once(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = warden_main(argv)
        except SystemExit as exc:  # argparse's usage errors exit, as they would in `warden`
            rc = exc.code if isinstance(exc.code, int) else 2
    return rc, out.getvalue(), err.getvalue()


def serve(argv: list[str]) -> int:
    reply = sys.stdout  # the command's own prints go to the captured buffers, never here
    print(json.dumps({"ready": True}), file=reply, flush=True)
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "quit":
            break
        if command[0] != "go" or len(command) != 3:
            print(json.dumps({"error": f"unknown command {line.strip()!r}"}), file=reply)
            reply.flush()
            continue
        t0, c0 = time.monotonic(), time.process_time()
        rc, out, err = run_once([a.replace("{stop}", command[2]) for a in argv])
        doc = {
            "trial": int(command[1]),
            "rc": rc,
            "out": out,
            "err": err[-3000:],
            "seconds": time.monotonic() - t0,
            "cpu": time.process_time() - c0,
        }
        print(json.dumps(doc), file=reply, flush=True)
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    sys.exit(serve(args))
