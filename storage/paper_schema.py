"""Schema of the paper exchange's tables (migration 3). Every row is keyed by exchange name.

Kept apart from ``paper_store`` so that migrating a database never imports the simulator.
"""

PAPER_SCHEMA = [
    """CREATE TABLE paper_account (
        exchange TEXT PRIMARY KEY,
        cash REAL NOT NULL,
        next_id INTEGER NOT NULL DEFAULT 1,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE paper_faults (
        exchange TEXT PRIMARY KEY,
        seed INTEGER NOT NULL,
        stop_silent_fail INTEGER NOT NULL,
        stop_silent_fail_rate REAL NOT NULL,
        entry_timeout_after_fill INTEGER NOT NULL,
        reject_rate REAL NOT NULL,
        latency_ms INTEGER NOT NULL,
        draws INTEGER NOT NULL DEFAULT 0,
        applied_config TEXT NOT NULL
    )""",
    """CREATE TABLE paper_market (
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        last REAL NOT NULL,
        updated_at REAL NOT NULL,
        timeframe TEXT,
        cursor INTEGER NOT NULL DEFAULT 0,
        candle_count INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (exchange, symbol)
    )""",
    """CREATE TABLE paper_candle (
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        idx INTEGER NOT NULL,
        ts REAL NOT NULL,
        open REAL NOT NULL,
        high REAL NOT NULL,
        low REAL NOT NULL,
        close REAL NOT NULL,
        volume REAL NOT NULL,
        PRIMARY KEY (exchange, symbol, idx)
    )""",
    """CREATE TABLE paper_position (
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        size REAL NOT NULL,
        entry_price REAL NOT NULL,
        PRIMARY KEY (exchange, symbol)
    )""",
    """CREATE TABLE paper_order (
        exchange TEXT NOT NULL,
        id TEXT NOT NULL,
        client_id TEXT,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        size REAL NOT NULL,
        filled REAL NOT NULL,
        average_price REAL,
        status TEXT NOT NULL,
        reduce_only INTEGER NOT NULL,
        fee REAL NOT NULL,
        ts REAL NOT NULL,
        stop_id TEXT,
        PRIMARY KEY (exchange, id)
    )""",
    """CREATE UNIQUE INDEX paper_order_client ON paper_order(exchange, client_id)
        WHERE client_id IS NOT NULL""",
    """CREATE TABLE paper_stop (
        exchange TEXT NOT NULL,
        id TEXT NOT NULL,
        client_id TEXT,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        size REAL NOT NULL,
        trigger_price REAL NOT NULL,
        state TEXT NOT NULL,
        fail_code TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        fill_order_id TEXT,
        PRIMARY KEY (exchange, id)
    )""",
    """CREATE UNIQUE INDEX paper_stop_client ON paper_stop(exchange, client_id)
        WHERE client_id IS NOT NULL""",
    "CREATE INDEX paper_stop_state ON paper_stop(exchange, state, updated_at)",
    """CREATE TABLE paper_trade (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        exchange TEXT NOT NULL,
        order_id TEXT NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        size REAL NOT NULL,
        price REAL NOT NULL,
        fee REAL NOT NULL,
        realized_pnl REAL NOT NULL,
        reduce_only INTEGER NOT NULL,
        stop_id TEXT,
        ts REAL NOT NULL
    )""",
    "CREATE INDEX paper_trade_exchange_ts ON paper_trade(exchange, ts)",
]
