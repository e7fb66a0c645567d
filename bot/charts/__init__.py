"""Charts for a phone: position, P&L (equity) and backtest pictures, drawn by matplotlib (Agg).

``model`` holds the typed inputs (built from the domain by ``sources`` and ``series``), and
``position``, ``equity`` and ``backtest`` draw them: data in, a matplotlib Figure or PNG bytes
out, nothing else. matplotlib is imported inside the drawing functions only, so a process that
draws no chart (a daemon whose alerts are all text) never loads it; importing this package, the
models or the sources costs nothing.
"""
