"""Settings of the Telegram bot. The ``[telegram]`` config table maps onto these fields one to
one; the bot token and the allowed user ids are secrets and come from the environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config.schema import TelegramConfig

TELEGRAM_API = "https://api.telegram.org/bot"


@dataclass(frozen=True)
class TelegramSettings:
    # a self-hosted Bot API server (or the tests' fake) is used by pointing this elsewhere;
    # the token is appended to it, e.g. http://127.0.0.1:8081/bot -> .../bot<token>/getMe
    api_base_url: str = TELEGRAM_API
    # the file URL is derived from api_base_url (".../bot" -> ".../file/bot") unless given
    api_base_file_url: str | None = None
    # how long a /close or /open confirmation button stays valid
    confirm_timeout_seconds: float = 60.0
    # how long a confirmed /close or /open waits for the account's execution lease
    lease_wait_seconds: float = 30.0
    # an unacknowledged critical alert is sent again this often
    realert_seconds: float = 300.0
    # when not empty, updates are accepted only from these chats (and still only from
    # allowed users); alerts then go to these chats instead of the users' private chats
    allowed_chat_ids: frozenset[int] = field(default_factory=frozenset)
    # long-polling timeout of getUpdates
    poll_timeout: float = 10.0
    # alert delivery: exponential backoff after a failure (a 429 waits its retry_after)
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 60.0
    # a command older than this (sent while Warden was offline) is not executed
    stale_command_seconds: float = 120.0
    # python-telegram-bot's AIORateLimiter (needs the rate-limiter extra): throttles every
    # call to Telegram's published limits (1 message/s per private chat)
    rate_limit: bool = False

    def file_url(self) -> str:
        if self.api_base_file_url is not None:
            return self.api_base_file_url
        base = self.api_base_url.rstrip("/")
        if base.endswith("/bot"):
            return base[: -len("/bot")] + "/file/bot"
        return base + "/file/bot"

    def recipients(self, allowed_users: frozenset[int]) -> list[int]:
        """Where alerts go: the allowed chats when configured, else each user's private chat."""
        return sorted(self.allowed_chat_ids or allowed_users)


def settings_from_config(cfg: TelegramConfig) -> TelegramSettings:
    data = cfg.model_dump()
    data["allowed_chat_ids"] = frozenset(cfg.allowed_chat_ids)
    return TelegramSettings(**data)
