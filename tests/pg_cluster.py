"""The test cluster is the drills' (``bot/drills/pg_cluster.py``): one implementation."""

from bot.drills.pg_cluster import (
    SERVER_USER,
    Cluster,
    ClusterUnavailable,
    find_bindir,
    running_cluster,
)

__all__ = ["SERVER_USER", "Cluster", "ClusterUnavailable", "find_bindir", "running_cluster"]
