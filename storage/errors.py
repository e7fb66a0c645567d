"""Storage errors, typed here so that nothing outside storage/ catches a driver's exceptions.

Both backends raise these for their own driver errors (``sqlite3.Error``, ``psycopg.Error``):
``StorageBusy`` when another writer held the write lock past the wait (SQLite's busy timeout,
PostgreSQL's lock timeout), ``StorageUnavailable`` when the server cannot be reached or the
connection broke, ``StorageError`` for the rest (disk full, damaged file, a bad statement).
"""


class StorageError(Exception):
    """The database cannot be used as asked (newer schema, unreadable file, ...)."""


class StorageBusy(StorageError):
    """Another process held the write lock for longer than this one waits for it."""


class StorageUnavailable(StorageError):
    """The database server cannot be reached, or the connection to it broke."""
