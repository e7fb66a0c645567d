class StorageError(Exception):
    """The database cannot be used as asked (newer schema, unreadable file, ...)."""
