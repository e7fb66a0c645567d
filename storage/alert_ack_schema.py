"""Schema: alert delivery rounds and acknowledgements (migration 5). Kept apart from
``alert_ack_store`` so that migrating never imports a repository (no import cycle)."""

ALERT_ACK_STATEMENTS = [
    # round 0 is the first delivery, round n the n-th repeat of an unacknowledged alert
    """CREATE TABLE alert_delivery (
        alert_id INTEGER NOT NULL REFERENCES alert_outbox(id),
        chat_id INTEGER NOT NULL,
        round INTEGER NOT NULL,
        message_id INTEGER,
        sent_at REAL NOT NULL,
        PRIMARY KEY (alert_id, chat_id, round)
    )""",
    # acked_by is the Telegram user id, or 0 when the alert's condition ended (resolved or
    # raised again) before anybody acknowledged it
    """CREATE TABLE alert_ack (
        alert_id INTEGER PRIMARY KEY REFERENCES alert_outbox(id),
        acked_at REAL NOT NULL,
        acked_by INTEGER NOT NULL
    )""",
]
