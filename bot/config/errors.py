class ConfigError(Exception):
    """A configuration or secrets problem; the message names the key and the source."""
