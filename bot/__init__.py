"""The Warden process: CLI, configuration, logging, Telegram, scheduling, alert delivery."""
