"""The project's own fake Discord: REST API and gateway websocket on 127.0.0.1, for the real
discord.py.

discord.py is pointed at it by two settings of ingress-discord, DISCORD_API_BASE_URL
(`fake.api_url`, which sets `discord.http.Route.BASE`) and DISCORD_GATEWAY_URL (`fake.gateway_url`,
which sets `DiscordWebSocket.DEFAULT_GATEWAY`); the token is `fake.token`.

It runs in a thread with its own event loop; every public method is synchronous and thread-safe,
so both in-process async tests and end-to-end tests (the broker's processes connect over
loopback) drive it the same way::

    with FakeDiscord() as discord:
        env = discord.env                               # the three settings above
        discord.wait_connected()                        # a client identified (READY sent)
        sent = discord.user_message(discord.channel_id, "alice", "fix it", mention=True)
        thread = discord.wait_thread(sent["id"])        # the bot opened a thread on it
        discord.bot_messages(thread["id"])

Gateway: HELLO, IDENTIFY → READY (+ GUILD_CREATE), heartbeat → ACK, RESUME → replay of what was
missed + RESUMED (or `invalid session` when `drop(resume=False)` said so), MESSAGE_CREATE,
THREAD_CREATE, INTERACTION_CREATE. `drop()` aborts every connection; `hold()` refuses new ones
until `release()`; events dispatched while no session is connected are kept for a RESUME and lost
on an invalidated session, as on Discord.

REST (under /api/v10): users/@me, oauth2/applications/@me, gateway/bot, channel messages
create (JSON or multipart with files) / edit / list (before, after, limit), threads from a
message (code 160004 for a second one), typing, reactions, interaction callbacks, follow-ups
(webhooks), application commands. Every answer carries X-RateLimit-* headers; `rate_limit()`
makes the next calls answer 429 with `retry_after` (and the `Via` header discord.py expects from
Discord's edge), and message edits are limited like Discord's (5 per 5 s per channel) unless
`edit_limit=None`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

TOKEN = "fake-discord-bot-token.abc.def"
BOT_ID = "1000000000000000001"
APP_ID = "1000000000000000002"
GUILD_ID = "1000000000000000003"
CHANNEL_TYPE_TEXT, CHANNEL_TYPE_DM, CHANNEL_TYPE_THREAD = 0, 1, 11
HEARTBEAT_MS = 2000
THREAD_ALREADY_CREATED = 160004


@dataclass
class _Session:
    session_id: str
    seq: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)  # every dispatched frame, for RESUME
    ws: web.WebSocketResponse | None = None


class FakeDiscord:
    def __init__(self, *, token: str = TOKEN, edit_limit: tuple[int, float] | None = (5, 5.0)) -> None:
        self.token = token
        self.bot_id = BOT_ID
        self.application_id = APP_ID
        self.guild_id = GUILD_ID
        self.edit_limit = edit_limit
        self._ids = itertools.count(int(time.time() * 1000) << 22)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._lock = threading.RLock()
        self.users: dict[str, dict[str, Any]] = {}
        self.roles: dict[str, list[str]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.attachments: dict[str, bytes] = {}
        self.interactions: dict[str, dict[str, Any]] = {}
        self.commands: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.reactions: dict[str, list[str]] = {}
        self.typing: list[str] = []
        self.identifies = 0
        self.resumes = 0
        self.invalidated = 0
        self._sessions: dict[str, _Session] = {}
        self._transports: dict[int, asyncio.Transport] = {}
        self._send_locks: dict[int, asyncio.Lock] = {}
        self._sending: set[asyncio.Future[None]] = set()
        self._live: list[_Session] = []  # every session events go to (Discord sends to each)
        self._unresumable: set[str] = set()
        self._held = False
        self._limited: list[tuple[str | None, float]] = []
        self._edits: dict[str, deque[float]] = {}
        self.channel_id = self._add_channel("general", CHANNEL_TYPE_TEXT)
        self.other_channel_id = self._add_channel("random", CHANNEL_TYPE_TEXT)
        self.add_user("alice")
        self.add_user("bob")

    # ---- lifecycle ------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def env(self) -> dict[str, str]:
        return {
            "DISCORD_BOT_TOKEN": self.token,
            "DISCORD_API_BASE_URL": self.api_url,
            "DISCORD_GATEWAY_URL": self.gateway_url,
        }

    def start(self) -> FakeDiscord:
        self._thread = threading.Thread(target=self._serve, name="fake-discord", daemon=True)
        self._thread.start()
        if not self._started.wait(15):
            raise RuntimeError("fake Discord did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(15)
        self._loop = None

    def __enter__(self) -> FakeDiscord:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._start_server())
        self._started.set()
        loop.run_forever()
        loop.close()

    async def _start_server(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/cdn/{attachment}/{name}", self._cdn)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        for session in self._sessions.values():
            if session.ws is not None:
                with contextlib.suppress(Exception):
                    await session.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run `func` on the fake's loop (it may dispatch gateway frames) and return its result."""
        assert self._loop is not None, "not started"

        async def invoke() -> Any:
            return func(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result(15)

    # ---- people, channels -------------------------------------------------------------------------

    def _next_id(self) -> str:
        return str(next(self._ids))

    def _add_channel(self, name: str, kind: int, **extra: Any) -> str:
        channel_id = self._next_id()
        channel = {"id": channel_id, "type": kind, "name": name, **extra}
        if kind != CHANNEL_TYPE_DM:
            channel["guild_id"] = self.guild_id
        self.channels[channel_id] = channel
        self.messages[channel_id] = []
        return channel_id

    def add_user(self, name: str, *, roles: list[str] | None = None) -> str:
        with self._lock:
            user_id = self._next_id()
            self.users[name] = {
                "id": user_id,
                "username": name,
                "global_name": name.title(),
                "discriminator": "0",
                "avatar": None,
                "bot": False,
            }
            self.roles[user_id] = list(roles or [])
            return user_id

    def add_channel(self, name: str) -> str:
        """Another text channel of the guild (before `start()`: READY's guild lists it)."""
        with self._lock:
            return self._add_channel(name, CHANNEL_TYPE_TEXT)

    def user_id(self, name: str) -> str:
        return str(self.users[name]["id"])

    def dm_channel(self, name: str) -> str:
        """The DM channel of a user with the bot (made on first use)."""
        with self._lock:
            for channel in self.channels.values():
                if channel["type"] == CHANNEL_TYPE_DM and channel.get("recipient") == name:
                    return str(channel["id"])
            return self._add_channel(f"dm-{name}", CHANNEL_TYPE_DM, recipient=name)

    # ---- driving ------------------------------------------------------------------------------------

    def user_message(
        self,
        channel_id: str,
        user: str,
        text: str,
        *,
        mention: bool = False,
        attachments: list[tuple[str, bytes, str]] | None = None,
    ) -> dict[str, Any]:
        """A person's message (stored, then MESSAGE_CREATE); `attachments`: (name, bytes, type)."""
        return dict(self._call(self._user_message, channel_id, user, text, mention, attachments or []))

    def _user_message(
        self, channel_id: str, user: str, text: str, mention: bool, attachments: list[tuple[str, bytes, str]]
    ) -> dict[str, Any]:
        author = self.users[user]
        content = f"<@{self.bot_id}> {text}" if mention else text
        files = []
        for name, content_bytes, mimetype in attachments:
            attachment_id = self._next_id()
            self.attachments[attachment_id] = content_bytes
            files.append(
                {
                    "id": attachment_id,
                    "filename": name,
                    "size": len(content_bytes),
                    "content_type": mimetype,
                    "url": f"http://127.0.0.1:{self.port}/cdn/{attachment_id}/{name}",
                    "proxy_url": f"http://127.0.0.1:{self.port}/cdn/{attachment_id}/{name}",
                }
            )
        message = self._store(
            channel_id,
            author,
            content,
            mentions=[self._bot_user()] if mention else [],
            attachments=files,
        )
        self._dispatch("MESSAGE_CREATE", self._with_member(message, author))
        return message

    def click(self, channel_id: str, message_id: str, custom_id: str, user: str) -> str:
        """A press of a button of one of the bot's messages (an ephemeral follow-up's too);
        returns the interaction id."""
        return str(self._call(self._click, channel_id, message_id, custom_id, user))

    def _click(self, channel_id: str, message_id: str, custom_id: str, user: str) -> str:
        message = self._find(channel_id, message_id) or self._find_followup(message_id)
        assert message is not None, f"no message {message_id} in {channel_id}"
        return self._interaction(
            3, channel_id, user, {"custom_id": custom_id, "component_type": 2}, message=message
        )

    def slash(self, channel_id: str, user: str, subcommand: str) -> str:
        """`/codex <subcommand>` in a channel; returns the interaction id."""
        data = {
            "id": self._next_id(),
            "name": "codex",
            "type": 1,
            "options": [{"name": subcommand, "type": 1}],
        }
        return str(self._call(self._interaction, 2, channel_id, user, data))

    def _interaction(
        self,
        kind: int,
        channel_id: str,
        user: str,
        data: dict[str, Any],
        message: dict[str, Any] | None = None,
    ) -> str:
        interaction_id = self._next_id()
        token = f"ix-{uuid.uuid4().hex}"
        author = self.users[user]
        channel = self.channels[channel_id]
        payload: dict[str, Any] = {
            "id": interaction_id,
            "application_id": self.application_id,
            "type": kind,
            "token": token,
            "version": 1,
            "channel_id": channel_id,
            "channel": {"id": channel_id, "type": channel["type"]},
            "data": data,
            "locale": "en-US",
            "app_permissions": "0",
            "attachment_size_limit": 10 * 1024 * 1024,
            "entitlements": [],
            "authorizing_integration_owners": {},
        }
        if channel["type"] == CHANNEL_TYPE_DM:
            payload["user"] = author
        else:
            payload["guild_id"] = self.guild_id
            payload["member"] = self._member(author)
        if message is not None:
            payload["message"] = message
        self.interactions[interaction_id] = {"token": token, "callbacks": [], "followups": [], "user": user}
        self._dispatch("INTERACTION_CREATE", payload)
        return interaction_id

    def rate_limit(self, times: int, *, retry_after: float = 0.05, method: str | None = None) -> None:
        """The next `times` REST calls (of `method`, e.g. "PATCH", when given) answer 429."""
        with self._lock:
            self._limited.extend([(method, retry_after)] * times)

    def drop(self, *, resume: bool = True) -> None:
        """Abort every gateway connection; `resume=False`: the next RESUME is refused (op 9)."""
        self._call(self._drop, resume)

    def _drop(self, resume: bool) -> None:
        if not resume:
            self._unresumable |= {s.session_id for s in self._live}
        for transport in self._transports.values():
            transport.abort()
        self._transports.clear()
        for session in self._sessions.values():
            session.ws = None

    def hold(self) -> None:
        """Refuse new gateway connections (HTTP 503) until `release()`."""
        with self._lock:
            self._held = True

    def release(self) -> None:
        with self._lock:
            self._held = False

    # ---- inspecting -----------------------------------------------------------------------------------

    def channel_messages(self, channel_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(m) for m in self.messages.get(channel_id, [])]

    def bot_messages(self, channel_id: str) -> list[dict[str, Any]]:
        return [m for m in self.channel_messages(channel_id) if m["author"]["id"] == self.bot_id]

    def thread(self, message_id: str) -> dict[str, Any] | None:
        """The thread opened on a message (its id is the message's id), if there is one."""
        with self._lock:
            found = self.channels.get(message_id)
            return dict(found) if found and found["type"] == CHANNEL_TYPE_THREAD else None

    def interaction(self, interaction_id: str) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self.interactions[interaction_id]))

    def connected(self) -> bool:
        return self.connections() > 0

    def connections(self) -> int:
        """Gateway sessions connected right now (one per bot process)."""
        with self._lock:
            return sum(1 for s in self._live if s.ws is not None)

    def count(self, method: str, path_part: str = "", status: int | None = None) -> int:
        with self._lock:
            return sum(
                1
                for c in self.calls
                if c["method"] == method
                and path_part in c["path"]
                and (status is None or c["status"] == status)
            )

    def wait_connected(self, timeout_s: float = 30.0, identifies: int = 1, count: int = 1) -> None:
        self._wait(
            lambda: self.connections() >= count and self.identifies >= identifies,
            timeout_s,
            "a gateway session",
        )

    def wait_thread(self, message_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        self._wait(lambda: self.thread(message_id) is not None, timeout_s, f"a thread on {message_id}")
        found = self.thread(message_id)
        assert found is not None
        return found

    @staticmethod
    def _wait(probe: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not probe():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)

    # ---- stored objects -------------------------------------------------------------------------------

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "username": "codex",
            "global_name": "Codex",
            "discriminator": "0",
            "avatar": None,
            "bot": True,
        }

    def _member(self, user: dict[str, Any]) -> dict[str, Any]:
        return {
            "user": user,
            "roles": list(self.roles.get(str(user["id"]), [])),
            "nick": None,
            "joined_at": "2026-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
        }

    def _with_member(self, message: dict[str, Any], author: dict[str, Any]) -> dict[str, Any]:
        channel = self.channels[message["channel_id"]]
        if channel["type"] == CHANNEL_TYPE_DM:
            return dict(message)
        member = {k: v for k, v in self._member(author).items() if k != "user"}
        return {**message, "guild_id": self.guild_id, "member": member}

    def _store(self, channel_id: str, author: dict[str, Any], content: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            if channel_id not in self.channels:
                raise KeyError(channel_id)
            message = {
                "id": self._next_id(),
                "channel_id": channel_id,
                "author": author,
                "content": content,
                "timestamp": "2026-01-01T00:00:00+00:00",
                "edited_timestamp": None,
                "tts": False,
                "mention_everyone": False,
                "mentions": [],
                "mention_roles": [],
                "attachments": [],
                "embeds": [],
                "components": [],
                "pinned": False,
                "type": 0,
                "flags": 0,
                "edits": 0,
                **fields,
            }
            self.messages[channel_id].append(message)
            return message

    def _find(self, channel_id: str, message_id: str) -> dict[str, Any] | None:
        for message in self.messages.get(channel_id, []):
            if message["id"] == message_id:
                return message
        return None

    def _find_followup(self, message_id: str) -> dict[str, Any] | None:
        for found in self.interactions.values():
            for message in found["followups"]:
                if message["id"] == message_id:
                    return dict(message)
        return None

    # ---- gateway ---------------------------------------------------------------------------------------

    def _dispatch(self, kind: str, data: dict[str, Any], only: _Session | None = None) -> None:
        """Send one event to every live session (kept for a RESUME while one is disconnected)."""
        for session in [only] if only is not None else list(self._live):
            self._dispatch_to(session, kind, data)

    def _dispatch_to(self, session: _Session, kind: str, data: dict[str, Any]) -> None:
        session.seq += 1
        frame = {"op": 0, "t": kind, "s": session.seq, "d": data}
        session.sent.append(frame)
        if session.ws is not None:
            task = asyncio.ensure_future(self._send(session.ws, frame))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        # one lock per connection, and asyncio's locks are FIFO: frames leave in dispatch order
        async with self._send_locks.setdefault(id(ws), asyncio.Lock()):
            with contextlib.suppress(Exception):
                await ws.send_str(json.dumps(frame))

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if self._held:
            return web.Response(status=503, text="held")
        ws = web.WebSocketResponse(heartbeat=None, autoping=True)
        await ws.prepare(request)
        if request.transport is not None:
            self._transports[id(ws)] = request.transport
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_MS}}))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            op, data = frame.get("op"), frame.get("d") or {}
            if op == 1:
                await ws.send_str(json.dumps({"op": 11}))
            elif op == 2:
                await self._identify(ws, data)
            elif op == 6:
                await self._resume(ws, data)
        self._transports.pop(id(ws), None)
        for session in self._sessions.values():
            if session.ws is ws:
                session.ws = None
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        session = _Session(session_id=uuid.uuid4().hex, ws=ws)
        self._sessions[session.session_id] = session
        self._live.append(session)
        self.identifies += 1
        ready = {
            "v": 10,
            "user": self._bot_user(),
            "guilds": [{"id": self.guild_id, "unavailable": True}],
            "session_id": session.session_id,
            "resume_gateway_url": self.gateway_url,
            "application": {"id": self.application_id, "flags": 0},
            "shard": [0, 1],
            "private_channels": [],
            "relationships": [],
        }
        self._dispatch("READY", ready, only=session)
        self._dispatch("GUILD_CREATE", self._guild(), only=session)

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        session = self._sessions.get(str(data.get("session_id")))
        refused = session is None or session.session_id in self._unresumable or session not in self._live
        if refused or data.get("token") != self.token:
            self.invalidated += 1
            if session is not None and session in self._live:
                self._live.remove(session)  # what is dispatched until the next IDENTIFY is lost
            await ws.send_str(json.dumps({"op": 9, "d": False}))
            return
        self.resumes += 1
        session.ws = ws
        for frame in session.sent:
            if frame["s"] > int(data.get("seq") or 0):
                await ws.send_str(json.dumps(frame))
        self._dispatch("RESUMED", {}, only=session)

    def _guild(self) -> dict[str, Any]:
        channels = [c for c in self.channels.values() if c["type"] == CHANNEL_TYPE_TEXT]
        threads = [c for c in self.channels.values() if c["type"] == CHANNEL_TYPE_THREAD]
        return {
            "id": self.guild_id,
            "name": "Fake guild",
            "icon": None,
            "owner_id": self.user_id("alice"),
            "roles": [],
            "emojis": [],
            "stickers": [],
            "features": [],
            "channels": [{**c, "position": i, "permission_overwrites": []} for i, c in enumerate(channels)],
            "threads": threads,
            "members": [],
            "voice_states": [],
            "presences": [],
            "member_count": len(self.users) + 1,
            "large": False,
            "unavailable": False,
            "joined_at": "2026-01-01T00:00:00+00:00",
        }

    # ---- REST ------------------------------------------------------------------------------------------

    def _limit_headers(self, route: str) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": "49",
            "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
            "X-RateLimit-Reset-After": "1.000",
            "X-RateLimit-Bucket": f"fake-{abs(hash(route)) % 10_000}",
        }

    def _too_many(self, route: str, retry_after: float) -> web.Response:
        headers = {
            **self._limit_headers(route),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "Retry-After": f"{retry_after:.3f}",
            "X-RateLimit-Scope": "user",
            "Via": "1.1 google",
        }
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
        return _json(body, 429, headers)

    def _take_limit(self, method: str, channel: str | None, route: str) -> float | None:
        with self._lock:
            for index, (wanted, retry_after) in enumerate(self._limited):
                if wanted is None or wanted == method:
                    del self._limited[index]
                    return retry_after
            if method == "PATCH" and channel and self.edit_limit is not None and "/messages/" in route:
                count, window = self.edit_limit
                edits = self._edits.setdefault(channel, deque())
                now = time.monotonic()
                while edits and now - edits[0] > window:
                    edits.popleft()
                if len(edits) >= count:
                    return round(window - (now - edits[0]), 3) + 0.001
                edits.append(now)
        return None

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        parts = path.strip("/").split("/")
        route = f"{request.method} {path}"
        webhook = parts[0] in ("interactions", "webhooks")
        if not webhook and request.headers.get("Authorization") != f"Bot {self.token}":
            response = _json({"message": "401: Unauthorized", "code": 0}, 401, {})
            self._log(request.method, path, 401)
            return response
        channel = parts[1] if parts[0] == "channels" and len(parts) > 1 else None
        retry_after = self._take_limit(request.method, channel, path)
        if retry_after is not None:
            self._log(request.method, path, 429)
            return self._too_many(route, retry_after)
        try:
            status, body = await self._handle(request, parts)
        except KeyError as exc:
            status, body = 404, {"message": f"Unknown {exc}", "code": 10003}
        self._log(request.method, path, status)
        headers = self._limit_headers(route)
        if status == 204:
            return web.Response(status=204, headers=headers)
        return _json(body, status, headers)

    def _log(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.calls.append({"method": method, "path": path, "status": status, "at": time.time()})

    async def _handle(self, request: web.Request, parts: list[str]) -> tuple[int, Any]:
        method = request.method
        if parts == ["users", "@me"]:
            return 200, self._bot_user()
        if parts == ["oauth2", "applications", "@me"]:
            return 200, self._app_info()
        if parts == ["gateway", "bot"]:
            return 200, {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        if parts[0] == "applications" and parts[-1] == "commands" and method == "PUT":
            self.commands = await request.json()
            return 200, [
                {**c, "id": self._next_id(), "application_id": self.application_id} for c in self.commands
            ]
        if parts[0] == "interactions" and parts[-1] == "callback":
            return self._callback(parts[1], parts[2], await request.json())
        if parts[0] == "webhooks" and method == "POST":
            return self._followup(parts[2], await request.json())
        if parts[0] == "channels":
            return await self._channels(request, parts)
        return 404, {"message": "404: Not Found", "code": 0}

    def _app_info(self) -> dict[str, Any]:
        return {
            "id": self.application_id,
            "name": "Codex",
            "description": "",
            "icon": None,
            "bot_public": False,
            "bot_require_code_grant": False,
            "owner": {**self.users["alice"]},
            "verify_key": "0" * 64,
            "flags": 0,
        }

    def _callback(self, interaction_id: str, token: str, body: dict[str, Any]) -> tuple[int, Any]:
        with self._lock:
            found = self.interactions.get(interaction_id)
            if found is None or found["token"] != token:
                return 404, {"message": "Unknown interaction", "code": 10062}
            if found["callbacks"]:
                return 400, {"message": "Interaction has already been acknowledged.", "code": 40060}
            found["callbacks"].append(body)
        return 204, None

    def _followup(self, token: str, body: dict[str, Any]) -> tuple[int, Any]:
        with self._lock:
            for found in self.interactions.values():
                if found["token"] == token:
                    if not found["callbacks"]:  # as on Discord: no follow-up before the ack
                        return 404, {"message": "Unknown Webhook", "code": 10015}
                    message = {"id": self._next_id(), "content": body.get("content", ""), **body}
                    found["followups"].append(message)
                    return 200, message
        return 404, {"message": "Unknown Webhook", "code": 10015}

    async def _channels(self, request: web.Request, parts: list[str]) -> tuple[int, Any]:
        method, channel_id = request.method, parts[1]
        if channel_id not in self.channels:
            return 404, {"message": "Unknown Channel", "code": 10003}
        rest = parts[2:]
        if rest == ["typing"] and method == "POST":
            self.typing.append(channel_id)
            return 204, None
        if rest == ["messages"] and method == "POST":
            return self._create_message(channel_id, *(await self._message_body(request)))
        if rest == ["messages"] and method == "GET":
            return 200, self._list(channel_id, request.query)
        if len(rest) == 2 and rest[0] == "messages" and method == "PATCH":
            return self._edit(channel_id, rest[1], await request.json())
        if len(rest) == 3 and rest[0] == "messages" and rest[2] == "threads" and method == "POST":
            return self._start_thread(channel_id, rest[1], await request.json())
        if len(rest) == 5 and rest[2] == "reactions":
            message = self._find(channel_id, rest[1])
            if message is None:
                return 404, {"message": "Unknown Message", "code": 10008}
            with self._lock:
                marks = self.reactions.setdefault(rest[1], [])
                if method == "PUT":
                    marks.append(rest[3])
                elif rest[3] in marks:
                    marks.remove(rest[3])
            return 204, None
        return 404, {"message": "404: Not Found", "code": 0}

    async def _message_body(self, request: web.Request) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if not request.content_type.startswith("multipart/"):
            return await request.json(), []
        body: dict[str, Any] = {}
        files: list[dict[str, Any]] = []
        reader = await request.multipart()
        async for part in reader:
            if part.name == "payload_json":  # type: ignore[union-attr]
                body = json.loads(await part.text())  # type: ignore[union-attr]
            else:
                content = await part.read()  # type: ignore[union-attr]
                attachment_id = self._next_id()
                self.attachments[attachment_id] = bytes(content)
                name = part.filename or "file"  # type: ignore[union-attr]
                files.append(
                    {
                        "id": attachment_id,
                        "filename": name,
                        "size": len(content),
                        "url": f"http://127.0.0.1:{self.port}/cdn/{attachment_id}/{name}",
                        "proxy_url": f"http://127.0.0.1:{self.port}/cdn/{attachment_id}/{name}",
                    }
                )
        return body, files

    def _create_message(
        self, channel_id: str, body: dict[str, Any], files: list[dict[str, Any]]
    ) -> tuple[int, Any]:
        content = str(body.get("content") or "")
        if len(content) > 2000:
            return 400, {"message": "Invalid Form Body", "code": 50035, "errors": {"content": "too long"}}
        if not content and not files and not body.get("components"):
            return 400, {"message": "Cannot send an empty message", "code": 50006}
        nonce = body.get("nonce")
        with self._lock:
            if nonce and body.get("enforce_nonce"):
                for message in self.messages[channel_id]:
                    if message.get("nonce") == nonce and message["author"]["id"] == self.bot_id:
                        return 200, message
            message = self._store(
                channel_id,
                self._bot_user(),
                content,
                components=body.get("components") or [],
                attachments=files,
                nonce=nonce,
            )
        self._dispatch("MESSAGE_CREATE", self._with_member(message, self._bot_user()))
        return 200, message

    def _edit(self, channel_id: str, message_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        with self._lock:
            message = self._find(channel_id, message_id)
            if message is None:
                return 404, {"message": "Unknown Message", "code": 10008}
            if len(str(body.get("content") or "")) > 2000:
                return 400, {"message": "Invalid Form Body", "code": 50035}
            if "content" in body:
                message["content"] = body["content"]
            if "components" in body:
                message["components"] = body["components"]
            message["edits"] += 1
            message["edited_timestamp"] = "2026-01-01T00:00:01+00:00"
            return 200, dict(message)

    def _list(self, channel_id: str, query: Any) -> list[dict[str, Any]]:
        limit = min(int(query.get("limit", 50)), 100)
        with self._lock:
            found = list(self.messages[channel_id])
        if "after" in query:
            found = [m for m in found if int(m["id"]) > int(query["after"])][:limit]
        elif "before" in query:
            found = [m for m in found if int(m["id"]) < int(query["before"])][-limit:]
        else:
            found = found[-limit:]
        return [dict(m) for m in reversed(found)]  # newest first, as Discord answers

    def _start_thread(self, channel_id: str, message_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        with self._lock:
            if self._find(channel_id, message_id) is None:
                return 404, {"message": "Unknown Message", "code": 10008}
            if message_id in self.channels:
                return 400, {"message": "A thread has already been created for this message", "code": 160004}
            thread = {
                "id": message_id,
                "type": CHANNEL_TYPE_THREAD,
                "guild_id": self.guild_id,
                "parent_id": channel_id,
                "name": str(body.get("name") or "thread"),
                "owner_id": self.bot_id,
                "thread_metadata": {
                    "archived": False,
                    "auto_archive_duration": int(body.get("auto_archive_duration") or 1440),
                    "archive_timestamp": "2026-01-01T00:00:00+00:00",
                    "locked": False,
                },
                "message_count": 0,
                "member_count": 1,
            }
            self.channels[message_id] = thread
            self.messages[message_id] = []
        self._dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return 201, thread

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        content = self.attachments.get(request.match_info["attachment"])
        if content is None:
            return web.Response(status=404)
        return web.Response(body=content, content_type="application/octet-stream")


def _json(body: Any, status: int, headers: dict[str, str]) -> web.Response:
    """JSON with the bare `application/json` type: discord.py parses a body only when it is exactly that."""
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers={**headers, "Content-Type": "application/json"}
    )
