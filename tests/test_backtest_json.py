"""`warden backtest --json` speaks `warden pnl --json`'s words: win_rate a fraction, the journal's
exit reasons, closed and open trade counts named so (issue 13, "numbers agree")."""

from __future__ import annotations

import json
import re

import pytest

from bot.cli import main
from trading.accounting import SummaryRow

REASON = re.compile(r"^(stop_loss|signal|manual|external|emergency\(.+\))$")


def _backtest(capsys: pytest.CaptureFixture[str], *args: str) -> dict:  # type: ignore[type-arg]
    assert main(["backtest", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("faults", [False, True], ids=["clean", "faults"])
def test_backtest_json_uses_the_pnl_vocabulary(
    capsys: pytest.CaptureFixture[str], faults: bool
) -> None:
    doc = _backtest(capsys, "--to", "2026-01-20", *(["--faults"] if faults else []))
    trades = doc["trades"]
    closed = [t for t in trades if t["exit_at"] is not None]
    still_open = [t for t in trades if t["exit_at"] is None]
    assert closed, "the bundled data trades"
    for t in closed:
        assert REASON.match(t["exit_reason"]), t
    for t in still_open:
        assert (t["exit_reason"], t["exit_price"]) == (None, None), t
    assert {t["exit_reason"] for t in closed} >= {"stop_loss", "signal"}

    pnl_words = {"trades", "wins", "losses", "win_rate", "closed_trades"}
    row = SummaryRow("paper", "s", 2, 1, 1.0, 1.2, 0.2, 0.0, 0.0, 0.0, 0.0)
    assert pnl_words <= set(row.as_json())  # the words warden pnl --json uses
    for summary, name in [(doc["total"], None), *((s, s["name"]) for s in doc["strategies"])]:
        mine_closed = [t for t in closed if name in (None, t["strategy"])]
        mine_open = [t for t in still_open if name in (None, t["strategy"])]
        assert pnl_words <= set(summary)
        assert summary["trades"] == summary["closed_trades"] == len(mine_closed)
        assert summary["open_trades"] == len(mine_open)
        wins = sum(1 for t in mine_closed if t["pnl"] > 0)
        assert (summary["wins"], summary["losses"]) == (wins, len(mine_closed) - wins)
        assert 0.0 <= summary["win_rate"] <= 1.0
        assert summary["win_rate"] == pytest.approx(wins / len(mine_closed), abs=1e-6)


def test_a_backtest_without_a_closed_trade_has_no_win_rate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    doc = _backtest(capsys, "--from", "2026-01-01", "--to", "2026-01-01T02:00")
    assert doc["total"]["closed_trades"] == 0
    assert doc["total"]["win_rate"] is None
