"""Schema: what an alert's picture is drawn from. An emergency close or a stop repair alert
names its account scope and symbol, so the position chart is drawn when the alert is delivered
(the price and the stop as they are then); every other alert leaves both empty (text only)."""

ALERT_CHART_STATEMENTS = [
    "ALTER TABLE alert_outbox ADD COLUMN chart_scope TEXT",
    "ALTER TABLE alert_outbox ADD COLUMN chart_symbol TEXT",
]
