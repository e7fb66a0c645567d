"""The trading domain: models, exchange port and adapters, executor, stop guardian.

Nothing here imports ``bot`` or does SQL; persistence is reached through ports.
"""
