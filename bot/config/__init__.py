"""Configuration: one TOML file validated at start-up, plus secrets from the environment."""

from bot.config.errors import ConfigError
from bot.config.load import load_config, resolve_config_path
from bot.config.schema import Config
from bot.config.secrets import Secrets, load_secrets

__all__ = ["Config", "ConfigError", "Secrets", "load_config", "load_secrets", "resolve_config_path"]
