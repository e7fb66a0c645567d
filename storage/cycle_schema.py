"""Schema of strategy cycle records: one row per cycle, including skipped ones."""

CYCLE_STATEMENTS = [
    """CREATE TABLE cycle (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        strategy TEXT NOT NULL,
        scope TEXT NOT NULL,
        trigger TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        outcome TEXT NOT NULL,
        decisions TEXT NOT NULL DEFAULT '',
        error TEXT
    )""",
    "CREATE INDEX cycle_strategy ON cycle(strategy, id)",
]
