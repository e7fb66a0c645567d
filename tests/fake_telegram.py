"""A local fake of the Telegram Bot API (aiohttp), for running the real python-telegram-bot
client against: the tests point ``base_url`` at ``http://127.0.0.1:PORT/bot``.

It serves the methods Warden uses, records every call (method, parameters, arrival time), holds
a queue of updates that getUpdates hands out (honouring ``offset`` and, briefly, ``timeout``),
remembers the messages it "sent" so a test can press their buttons, and fails on demand: HTTP
500, or 429 with ``parameters.retry_after``, for N calls or for a time window.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_ID = 424242
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "Warden", "username": "warden_test_bot"}
JSON_FIELDS = ("reply_markup", "commands", "allowed_updates", "entities", "link_preview_options")
MAX_POLL = 0.5  # getUpdates holds at most this long (the client asks for longer)


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float  # time.perf_counter() on arrival
    status: int = 200
    result: Any = None  # what the fake answered


@dataclass
class Failure:
    status: int  # 500 or 429
    methods: frozenset[str] | None  # None: every method but getUpdates
    count: int | None  # calls left to fail, None: until ``until``
    until: float | None  # time.monotonic() deadline
    retry_after: int = 1
    chats: frozenset[int] | None = None  # only calls to these chats fail

    def applies(self, method: str, chat_id: int | None) -> bool:
        if self.chats is not None and chat_id not in self.chats:
            return False
        if self.methods is None:
            return method != "getUpdates"
        return method in self.methods

    def live(self) -> bool:
        if self.until is not None and time.monotonic() >= self.until:
            return False
        return self.count is None or self.count > 0


def _plain(text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", text))


@dataclass
class FakeTelegram:
    token: str
    calls: list[Call] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    messages: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    port: int = 0
    _updates: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _msg_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> FakeTelegram:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    # --- what a test does -----------------------------------------------------------------------

    def fail(
        self,
        status: int = 500,
        *,
        count: int | None = None,
        seconds: float | None = None,
        methods: Iterable[str] | None = ("sendMessage",),
        retry_after: int = 1,
        chats: Iterable[int] | None = None,
    ) -> None:
        until = time.monotonic() + seconds if seconds is not None else None
        names = frozenset(methods) if methods is not None else None
        only = frozenset(chats) if chats is not None else None
        self.failures.append(Failure(status, names, count, until, retry_after, only))

    def push(self, update: dict[str, Any]) -> int:
        update_id = next(self._ids)
        self._updates.append({"update_id": update_id, **update})
        self._notify()
        return update_id

    def command(self, user_id: int, text: str, chat_id: int | None = None) -> int:
        """A user sends a text message (a command when it starts with /)."""
        cmd = text.split()[0] if text.startswith("/") else ""
        message: dict[str, Any] = {
            "message_id": next(self._msg_ids),
            "date": int(time.time()),
            "chat": _chat(chat_id if chat_id is not None else user_id),
            "from": _user(user_id),
            "text": text,
        }
        if cmd:
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(cmd)}]
        return self.push({"message": message})

    def press(self, user_id: int, chat_id: int, message_id: int, data: str) -> int:
        """A user presses an inline button of a message the bot sent."""
        msg = self.messages[(chat_id, message_id)]
        query = {
            "id": f"cq{next(self._ids)}",
            "from": _user(user_id),
            "chat_instance": f"ci{chat_id}",
            "message": msg,
            "data": data,
        }
        return self.push({"callback_query": query})

    def sent(self, method: str = "sendMessage", chat_id: int | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.method == method
            and c.status == 200
            and (chat_id is None or int(c.params.get("chat_id", 0)) == chat_id)
        ]

    def delivered(self, chat_id: int | None = None) -> list[Call]:
        """Messages and photos sent, in order."""
        return [
            c
            for c in self.calls
            if c.method in ("sendMessage", "sendPhoto")
            and c.status == 200
            and (chat_id is None or int(c.params.get("chat_id", 0)) == chat_id)
        ]

    def texts(self, chat_id: int | None = None) -> list[str]:
        return [_plain(str(c.params.get("text", ""))) for c in self.sent("sendMessage", chat_id)]

    async def wait_for(self, predicate: Callable[[list[Call]], Any], timeout: float = 10.0) -> Any:
        """Wait until ``predicate(calls)`` is truthy and return its value."""
        deadline = time.monotonic() + timeout
        while True:
            changed = self._changed
            result = predicate(self.calls)
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                methods = [c.method for c in self.calls[-20:]]
                raise AssertionError(f"timed out; last calls: {methods}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)

    async def next_message(self, chat_id: int, after: int, timeout: float = 10.0) -> Call:
        """The first successful sendMessage to ``chat_id`` after the first ``after`` calls."""

        def found(calls: list[Call]) -> Call | None:
            for c in calls[after:]:
                ok = c.method == "sendMessage" and c.status == 200
                if ok and int(c.params["chat_id"]) == chat_id:
                    return c
            return None

        result: Call = await self.wait_for(found, timeout)
        return result

    async def next_photo(self, chat_id: int, after: int, timeout: float = 10.0) -> Call:
        """The first successful sendPhoto to ``chat_id`` after the first ``after`` calls."""

        def found(calls: list[Call]) -> Call | None:
            for c in calls[after:]:
                ok = c.method == "sendPhoto" and c.status == 200
                if ok and int(c.params["chat_id"]) == chat_id:
                    return c
            return None

        result: Call = await self.wait_for(found, timeout)
        return result

    def caption(self, call: Call) -> str:
        """A sendPhoto's caption as the user reads it (tags removed)."""
        return _plain(str(call.params.get("caption", "")))

    # --- the server -----------------------------------------------------------------------------

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            raw: dict[str, Any] = await request.json()
        else:
            form = await request.post()
            raw = {}
            for k, v in form.items():
                raw[k] = v.file.read() if isinstance(v, web.FileField) else v
        for k in JSON_FIELDS:
            if isinstance(raw.get(k), str):
                raw[k] = json.loads(raw[k])
        raw.update(request.query)
        return raw

    def _failure(self, method: str, params: dict[str, Any]) -> Failure | None:
        self.failures = [f for f in self.failures if f.live()]
        chat_id = int(params["chat_id"]) if "chat_id" in params else None
        for f in self.failures:
            if f.applies(method, chat_id):
                if f.count is not None:
                    f.count -= 1
                return f
        return None

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        call = Call(method, params, time.perf_counter())
        self.calls.append(call)
        self._notify()
        if request.match_info["token"] != self.token:
            call.status = 401
            return _error(401, "Unauthorized")
        failure = self._failure(method, params)
        if failure is not None:
            call.status = failure.status
            if failure.status == 429:
                return _error(
                    429,
                    f"Too Many Requests: retry after {failure.retry_after}",
                    {"retry_after": failure.retry_after},
                )
            return _error(failure.status, "Internal Server Error")
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            call.status = 404
            return _error(404, "Not Found: method not found")
        call.result = await handler(params)
        return web.json_response({"ok": True, "result": call.result})

    # --- methods ----------------------------------------------------------------------------

    async def _m_getMe(self, p: dict[str, Any]) -> Any:
        return {**BOT_USER, "can_join_groups": False, "can_read_all_group_messages": False}

    async def _m_deleteWebhook(self, p: dict[str, Any]) -> Any:
        return True

    async def _m_setMyCommands(self, p: dict[str, Any]) -> Any:
        return True

    async def _m_getUpdates(self, p: dict[str, Any]) -> Any:
        offset = int(p.get("offset", 0) or 0)
        limit = int(p.get("limit", 100) or 100)
        timeout = min(float(p.get("timeout", 0) or 0), MAX_POLL)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        while not self._updates and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return self._updates[:limit]

    def _message(self, p: dict[str, Any], **extra: Any) -> dict[str, Any]:
        chat_id = int(p["chat_id"])
        msg = {
            "message_id": next(self._msg_ids),
            "date": int(time.time()),
            "chat": _chat(chat_id),
            "from": BOT_USER,
            **extra,
        }
        if p.get("reply_markup"):
            msg["reply_markup"] = p["reply_markup"]
        self.messages[(chat_id, msg["message_id"])] = msg
        return msg

    async def _m_sendMessage(self, p: dict[str, Any]) -> Any:
        return self._message(p, text=_plain(str(p["text"])))

    async def _m_sendPhoto(self, p: dict[str, Any]) -> Any:
        photo = [{"file_id": "photo1", "file_unique_id": "u1", "width": 640, "height": 480}]
        extra: dict[str, Any] = {"photo": photo}
        if p.get("caption"):
            extra["caption"] = _plain(str(p["caption"]))
        return self._message(p, **extra)

    def _edit(self, p: dict[str, Any]) -> dict[str, Any]:
        key = (int(p["chat_id"]), int(p["message_id"]))
        msg = self.messages[key]
        if p.get("reply_markup"):
            msg["reply_markup"] = p["reply_markup"]
        else:
            msg.pop("reply_markup", None)
        return msg

    async def _m_editMessageText(self, p: dict[str, Any]) -> Any:
        msg = self._edit(p)
        msg["text"] = _plain(str(p["text"]))
        return msg

    async def _m_editMessageReplyMarkup(self, p: dict[str, Any]) -> Any:
        return self._edit(p)

    async def _m_answerCallbackQuery(self, p: dict[str, Any]) -> Any:
        return True


def _user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}


def _chat(chat_id: int) -> dict[str, Any]:
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": f"user{chat_id}"}
    return {"id": chat_id, "type": "group", "title": f"group{chat_id}"}


def _error(code: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code)
