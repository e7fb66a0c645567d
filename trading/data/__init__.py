"""Bundled SYNTHETIC candle data (see README.md): read with ``trading.marketdata.read_bundled``."""
