"""The daemon's daily jobs: the P&L summary and the scheduled audit push alerts to the outbox."""

from __future__ import annotations

from pathlib import Path

from bot.config.schema import Config
from bot.daemon import Daemon
from storage.db import Database
from storage.outbox import Outbox
from trading.models import OrderSide

BTC = "BTC/USDT:USDT"


def config(tmp_path: Path) -> Config:
    return Config.model_validate(
        {
            "storage": {"path": str(tmp_path / "w.db")},
            "guardian": {"verify_delay_seconds": 0.05},
            "scheduler": {"daily_summary_hour": 20, "audit_hour": 6},
        }
    )


async def test_daily_summary_and_scheduled_audit_become_alerts(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    db = await Database.open(cfg.storage.path)
    daemon = Daemon(cfg, db)
    try:
        paper = daemon.accounts["paper"].exchange
        # a position nobody guards yet, opened outside Warden: the audit must say so
        await paper.place_market_order(BTC, OrderSide.BUY, 0.001, "byhand1")

        await daemon._scheduled_audit()
        await daemon._daily_summary()

        texts = [a.text for a in await Outbox(db).due(100)]
        audit = [t for t in texts if t.startswith("audit:")]
        assert any("unknown_position" in t for t in audit), texts
        assert any("unprotected_position" in t for t in audit), texts
        summary = [t for t in texts if not t.startswith("audit:")]
        assert summary and "BTC/USDT:USDT" in summary[-1], texts

        # a lasting finding is re-raised at its interval, not on every run
        await daemon._scheduled_audit()
        again = [a.text for a in await Outbox(db).due(100) if a.text.startswith("audit:")]
        assert len(again) == len(audit)

        # the jobs are scheduled at the configured UTC hours
        await daemon.start()
        assert daemon.scheduler is not None
        jobs = {j.id: j for j in daemon.scheduler.get_jobs()}
        assert "daily-summary" in jobs and "hour='20'" in str(jobs["daily-summary"].trigger)
        assert "audit" in jobs and "hour='6'" in str(jobs["audit"].trigger)
    finally:
        await daemon.stop()
        await db.close()
