"""Bad input (issue 8), CLI arguments: ``build_parser().parse_args`` and ``main()`` in this
process: exit codes 0, 1, 2 or 75 only, no exception, no order. Property-based (hypothesis,
derandomized; shared settings and generators in tests/rig_bad_input.py).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import ccxt.async_support  # noqa: F401  imported once for the session, as the adapters do
import pytest
from hypothesis import given
from hypothesis import strategies as st

import bot.config.secrets
from bot import cli
from tests import rig_bad_input
from tests.rig_bad_input import NUMBERISH, TRIED, fuzz

pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
_report_examples = rig_bad_input._report_examples  # the fixture, from tests/rig_bad_input.py


def _cli_spec() -> dict[str, tuple[list[tuple[str, bool]], int]]:
    """Each command of the real parser: its options (and whether each takes a value) and how
    many positional arguments it has."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    spec = {}
    for name, p in sub.choices.items():
        if name == "paper":  # one nested subcommand: `paper price SYMBOL PRICE`
            sub2 = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
            p = sub2.choices["price"]
        opts = [(a.option_strings[-1], a.nargs != 0) for a in p._actions if a.option_strings]
        spec[name] = (opts, sum(1 for a in p._actions if not a.option_strings))
    return spec


CLI_SPEC = _cli_spec()
SUBCOMMANDS = sorted(CLI_SPEC)
CLI_WORDS = [
    "paper",
    "price",
    "BTC/USDT:USDT",
    "ETH/USDT:USDT",
    "btc",
    "all",
    "long",
    "short",
    "DEBUG",
    "INFO",
    "0.001",
    "0.01",
    "66000",
    "60000",
    "2026-01-01",
    "yesterday",
    "silent-stop",
    "nosuch",
    "momo",
    *[w for w in NUMBERISH if w],
]
cli_value = st.sampled_from(CLI_WORDS) | st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=8
)
ALL_FLAGS = sorted({flag for opts, _ in CLI_SPEC.values() for flag, _ in opts} | {"--", "-"})
cli_token = st.sampled_from(ALL_FLAGS) | cli_value


@st.composite
def shaped_argv(draw: st.DrawFn, commands: list[str], leave_out: frozenset[str]) -> list[str]:
    """A command with its own options (values good or bad) and positionals, shuffled."""
    name = draw(st.sampled_from(commands))
    opts, positionals = CLI_SPEC[name]
    opts = [o for o in opts if o[0] not in leave_out]
    parts: list[list[str]] = [[draw(cli_value)] for _ in range(draw(st.integers(0, positionals)))]
    for flag, takes_value in draw(st.lists(st.sampled_from(opts), max_size=4)) if opts else []:
        parts.append([flag, draw(cli_value)] if takes_value else [flag])
    order = draw(st.permutations(range(len(parts))))
    head = [name, "price"] if name == "paper" else [name]
    return head + [w for i in order for w in parts[i]]


def argv_for(
    commands: list[str], leave_out: frozenset[str] = frozenset()
) -> st.SearchStrategy[list[str]]:
    anything = st.builds(
        lambda h, rest: [h, *rest],
        st.sampled_from(commands) | cli_token,
        st.lists(cli_token.filter(lambda t: t not in leave_out), max_size=6),
    )
    return st.one_of(anything, shaped_argv(commands, leave_out), shaped_argv(commands, leave_out))


@fuzz(300)
@given(argv=argv_for(SUBCOMMANDS))
def test_any_argv_parses_or_exits_2_and_help_exits_0(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    TRIED["cli parse"] += 1
    try:
        args = cli.build_parser().parse_args(argv)
    except SystemExit as exc:
        assert exc.code in (0, 2), (argv, exc.code)
        capsys.readouterr()
        return
    assert isinstance(args, argparse.Namespace) and args.command in CLI_SPEC


# commands that run here in-process: not `run` (it would not return), `drill`, `backtest` and
# `download` (long, or the network), nor `lock --hold` or the flags that write files
IN_PROCESS = ["status", "open", "close", "pause", "resume", "audit", "pnl", "doctor", "lock"]
IN_PROCESS += ["cycle", "paper"]
NOT_IN_PROCESS = frozenset({"--hold", "--csv", "--png", "--out", "--data", "--help", "-h"})
WARDEN_TOML = """
[storage]
path = "warden.db"
[exchanges.paper]
kind = "paper"
[risk]
max_notional = 0.000001   # every entry is refused by the risk limit: bad input never trades
"""


@contextlib.contextmanager
def in_process_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """main() sets up logging and the process secrets: put them back after each run."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal: open/close need --yes
    try:
        yield
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in handlers:
            root.addHandler(h)
        root.setLevel(level)
        bot.config.secrets._process = None


def paper_orders(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if "paper_order" not in tables:
            return 0
        return int(conn.execute("SELECT COUNT(*) FROM paper_order").fetchone()[0])
    finally:
        conn.close()


@fuzz(80)
@given(argv=argv_for(IN_PROCESS, NOT_IN_PROCESS))
def test_main_with_any_argv_exits_0_1_2_or_75_and_never_trades(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    TRIED["cli main"] += 1
    (tmp_path / "warden.toml").write_text(WARDEN_TOML, encoding="utf-8")
    argv = [a for a in argv if a not in NOT_IN_PROCESS]
    with in_process_cli(monkeypatch):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse: usage error (2)
            code = exc.code if isinstance(exc.code, int) else 2
    out = capsys.readouterr()
    assert code in (0, 1, 2, 75), (argv, code, out.err[-2000:])
    assert "internal error" not in out.err, (argv, out.err[-2000:])
    assert "Traceback" not in out.err, (argv, out.err[-2000:])
    assert paper_orders(tmp_path / "warden.db") == 0
