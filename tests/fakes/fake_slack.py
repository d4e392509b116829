"""The project's own fake Slack: Web API over HTTP and the Socket Mode websocket, on 127.0.0.1.

Real slack-sdk / slack-bolt code talks to it unchanged: point the WebClient's `base_url` at
`fake.api_url` (it ends in `/api/`), give it the fake's tokens, and Socket Mode finds the
websocket through `apps.connections.open`. Every Web API call is recorded.

In-process (threaded server, own event loop; every method is thread-safe and synchronous)::

    with FakeSlack() as slack:                      # or slack = FakeSlack().start(); slack.stop()
        env = {"SLACK_API_URL": slack.api_url, "SLACK_BOT_TOKEN": slack.bot_token,
               "SLACK_APP_TOKEN": slack.app_token}
        slack.add_user("U1", "alice", display_name="Alice")
        slack.wait_connected()                       # a Socket Mode client said hello
        sent = slack.user_message("C1", "U1", f"<@{slack.bot_user_id}> fix it")
        slack.wait_acked(sent.event_ids[0])         # the app acked the envelope
        slack.messages(channel="C1", thread_ts=sent.ts, from_bot=True)

As a process, for end-to-end tests that run every service as a process::

    python -m tests.fakes.fake_slack --port 8765 [--ack-timeout-s 3] [--max-retries 3]

prints one JSON line `{"api_url": ..., "port": ..., "bot_token": ..., "app_token": ..., ...}` when
ready and serves until SIGTERM/SIGINT. `tests.fakes.fake_slack_client.FakeSlackClient(base_url)`
offers the same driving and inspecting methods over the control endpoints below, and
`start_fake_slack_process()` there spawns the process for you.

Driving (Python method — control endpoint, JSON body = the method's keyword arguments):
  add_user(user_id, name, display_name=, real_name=, email=, is_bot=)      POST /_fake/users
  add_file(name, content: bytes, mimetype=) -> Slack file dict              POST /_fake/files
        (HTTP: `content_base64`); its `url_private` serves the bytes to the bot token only
  user_message(channel, user, text, thread_ts=, channel_type=, files=, team=)
        -> Sent(ts, event_ids, envelope_ids): stores the message and pushes the `message`
        event, plus `app_mention` when the text mentions the bot outside DMs (like Slack,
        each with its own event_id)                                          POST /_fake/messages
  push_event(event, event_id=) -> envelope_id (raw Events API event)        POST /_fake/events
  resend(event_id) -> envelope_id: the same event again, next retry_attempt  POST /_fake/resend
  seed_message(channel, user, text, thread_ts=) -> ts (stored, no event)    POST /_fake/seed
  click_button(channel, user, message_ts, action_id, value, thread_ts=) -> envelope_id
        (block_actions; `message_ts` must be a stored message)               POST /_fake/actions
  submit_view(user, view) -> envelope_id (view_submission)                  POST /_fake/views
  slash_command(channel, user, command, text=, thread_ts=) -> envelope_id (a `slash_commands`
        envelope; event id `command:<trigger>`; the ack's payload is in envelopes()) POST /_fake/commands
  disconnect(reason=) (Socket Mode `disconnect` message)                     POST /_fake/disconnect
  drop_connections() (closes every websocket abruptly)                       POST /_fake/drop
  fail(method, error=, status=, retry_after=, times=1, needed=)             POST /_fake/failures
        the next `times` calls of `method` fail (times=None: until cleared). error
        "ratelimited" answers HTTP 429 with Retry-After (default 1 s).
  refuse_streaming(error="unknown_method")  chat.startStream always fails
  clear_failures()                                                           DELETE /_fake/failures
  configure(ack_timeout_s=, max_retries=, echo_bot_messages=, spread_connections=, granted_scopes=)
        (granted_scopes: the bot token's scopes, then sent as the `x-oauth-scopes` header of
        every Web API answer to it, as Slack does; unset: no header)
                                                                             POST /_fake/config

Inspecting (GET, query = keyword arguments):
  calls(method=) -> [{"method", "args", "ok", "error", "at"}]               GET /_fake/calls
  messages(channel=, thread_ts=, from_bot=) -> stored messages, oldest first GET /_fake/messages
        (each: ts, channel, user, text, blocks, thread_ts, bot_id, deleted, edits, files)
  envelopes(event_id=) -> [{"envelope_id", "event_id", "kind", "attempt", "acked", "acked_at",
        "connection"}] ("connection": number of the Socket Mode connection it was sent on)
                                                                             GET /_fake/envelopes
  acked(event_id) / deliveries(event_id)  (helpers over envelopes)
  uploads() -> [{"file_id", "filename", "title", "content"(bytes; HTTP: content_base64),
        "channel", "thread_ts", "initial_comment", "alt_txt", "snippet_type"}] GET /_fake/uploads
  streams() -> {ts: {"channel", "thread_ts", "text", "chunks", "stopped", "recipient_*"}}
                                                                             GET /_fake/streams
  reactions(channel, ts) -> [names]                                          GET /_fake/reactions
  statuses() -> [{"channel_id", "thread_ts", "status"}] (assistant.threads.setStatus)
                                                                             GET /_fake/statuses
  ephemerals(), views()                                       GET /_fake/ephemerals, /_fake/views
  connections() -> number of open Socket Mode websockets                     GET /_fake/state
        (also "connection_ids": the numbers of the open ones, 1, 2, … in order of opening)

Re-sending: an events_api envelope not acked within `ack_timeout_s` is sent again with a new
envelope_id, `retry_attempt` + 1 and `retry_reason` "timeout", at most `max_retries` times —
like Slack. Envelopes pushed while no client is connected wait for the next connection.

Several connections (one app running as replicas): by default the newest connection gets every
envelope; with `spread_connections=True` (`--spread`) envelopes go round-robin over the open
connections, as Slack spreads events over an app's connections, so a retry usually lands on
another connection than the first attempt. `resend(event_id, connection=N)` picks one.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs

from aiohttp import web

T = TypeVar("T")

DEFAULT_BOT_TOKEN = "xoxb-fake-bot-token"
DEFAULT_APP_TOKEN = "xapp-fake-app-token"
SECTION_TEXT_LIMIT = 3000
UPDATE_TEXT_LIMIT = 4000
POST_TEXT_LIMIT = 40_000
STREAM_TEXT_LIMIT = 12_000
JSON_ARGS = ("blocks", "chunks", "files", "view", "metadata", "attachments")
LOGIN_PAGE = "<!DOCTYPE html><html><body>Sign in to Slack</body></html>"


@dataclass
class Sent:
    ts: str
    event_ids: list[str]
    envelope_ids: list[str]


@dataclass
class _Failure:
    error: str
    status: int
    retry_after: float | None
    times: int | None
    needed: str | None


@dataclass
class _Delivery:
    """One logical event (event_id) and its envelope attempts."""

    event_id: str
    kind: str  # events_api | interactive | slash_commands
    payload: dict[str, Any]
    envelope_ids: list[str] = field(default_factory=list)
    acked_envelope: str | None = None  # the first acked envelope
    acks: dict[str, float] = field(default_factory=dict)  # envelope_id -> when acked
    ack_payload: Any = None
    timer: asyncio.Task[None] | None = None


class FakeSlack:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_token: str = DEFAULT_BOT_TOKEN,
        app_token: str = DEFAULT_APP_TOKEN,
        team_id: str = "T0FAKE",
        bot_user_id: str = "UBOT0FAKE",
        bot_id: str = "BBOT0FAKE",
        app_id: str = "A0FAKE",
        ack_timeout_s: float = 3.0,
        max_retries: int = 3,
        echo_bot_messages: bool = True,
        spread_connections: bool = False,
        granted_scopes: tuple[str, ...] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.ack_timeout_s = ack_timeout_s
        self.max_retries = max_retries
        self.echo_bot_messages = echo_bot_messages
        self.spread_connections = spread_connections
        # the bot token's scopes, sent as `x-oauth-scopes` like Slack does (None: no header)
        self.granted_scopes = granted_scopes
        # state, touched only on the fake's own loop
        self._calls: list[dict[str, Any]] = []
        self._failures: dict[str, list[_Failure]] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._messages: list[dict[str, Any]] = []
        self._files: dict[str, dict[str, Any]] = {}
        self._file_bytes: dict[str, bytes] = {}
        self._pending_uploads: dict[str, dict[str, Any]] = {}
        self._uploads: list[dict[str, Any]] = []
        self._streams: dict[str, dict[str, Any]] = {}
        self._reactions: dict[tuple[str, str], list[str]] = {}
        self._statuses: list[dict[str, Any]] = []
        self._ephemerals: list[dict[str, Any]] = []
        self._views: list[dict[str, Any]] = []
        self._deliveries: dict[str, _Delivery] = {}
        self._by_envelope: dict[str, _Delivery] = {}
        self._queued: dict[str, dict[str, Any]] = {}  # envelopes waiting for a connection
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_numbers: dict[int, int] = {}  # id(ws) -> connection number (1, 2, … by opening)
        self._opened = 0
        self._round_robin = 0
        self._sent_on: dict[str, int] = {}  # envelope_id -> connection number it was written to
        self._tick = int(time.time() * 1_000_000)
        self._ids = 0
        # server plumbing
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None

    # ---- lifecycle -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    def start(self) -> FakeSlack:
        self._thread = threading.Thread(target=self._serve_thread, name="fake-slack", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("fake slack did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._stopped is None:
            return
        self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve_thread(self) -> None:
        asyncio.run(self.serve())

    async def serve(self, *, on_ready: Callable[[], None] | None = None) -> None:
        """Run the server in the current loop until `stop()` (threaded) or the task is cancelled."""
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/ws", self._ws)
        app.router.add_post("/upload/{file_id}", self._upload_bytes)
        app.router.add_get("/files-pri/{file_id}/{name}", self._download)
        self._add_control_routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._ready.set()
        if on_ready is not None:
            on_ready()
        try:
            await self._stopped.wait()
        finally:
            for delivery in self._deliveries.values():
                if delivery.timer is not None:
                    delivery.timer.cancel()
            for ws in list(self._sockets):
                with contextlib.suppress(Exception):
                    await ws.close()
            await self._runner.cleanup()

    def _run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run `func` on the fake's loop (state is only touched there) and return its result."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("fake slack is not running")
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("inside the fake's loop, call the _-prefixed methods directly")

        async def invoke() -> Any:
            result = func(*args, **kwargs)
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(invoke(), loop).result(timeout=15)

    # ---- ids -----------------------------------------------------------------------------------

    def _next_ts(self) -> str:
        self._tick = max(self._tick + 100, int(time.time() * 1_000_000))
        return f"{self._tick // 1_000_000}.{self._tick % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids:08d}"

    # ---- public: driving -----------------------------------------------------------------------

    def add_user(self, user_id: str, name: str, **profile: Any) -> dict[str, Any]:
        return self._run(self._add_user, user_id, name, **profile)

    def add_file(
        self, name: str, content: bytes, mimetype: str = "application/octet-stream"
    ) -> dict[str, Any]:
        return self._run(self._add_file, name, content, mimetype)

    def user_message(self, channel: str, user: str, text: str, **options: Any) -> Sent:
        return self._run(self._user_message, channel, user, text, **options)

    def push_event(self, event: dict[str, Any], event_id: str | None = None) -> str:
        return self._run(self._push_event, event, event_id)

    def resend(self, event_id: str, connection: int | None = None) -> str:
        """Send an event again as Slack does when it missed the ack (next retry_attempt);
        `connection` picks the Socket Mode connection (its number), else the usual choice."""
        return self._run(self._resend, event_id, connection)  # type: ignore[no-any-return]

    def seed_message(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> str:
        """Store a message (for history) without sending any event; returns its ts."""
        return self._run(self._seed_message, channel, user, text, thread_ts)

    def click_button(
        self,
        channel: str,
        user: str,
        message_ts: str,
        action_id: str,
        value: str = "",
        thread_ts: str | None = None,
    ) -> str:
        return self._run(self._click_button, channel, user, message_ts, action_id, value, thread_ts)

    def submit_view(self, user: str, view: dict[str, Any]) -> str:
        return self._run(self._submit_view, user, view)

    def slash_command(
        self, channel: str, user: str, command: str, text: str = "", thread_ts: str | None = None
    ) -> str:
        return self._run(self._slash_command, channel, user, command, text, thread_ts)

    def disconnect(self, reason: str = "refresh_requested") -> None:
        self._run(self._disconnect, reason)

    def drop_connections(self) -> None:
        self._run(self._drop_connections)

    def fail(
        self,
        method: str,
        error: str = "internal_error",
        *,
        status: int | None = None,
        retry_after: float | None = None,
        times: int | None = 1,
        needed: str | None = None,
    ) -> None:
        self._run(self._fail, method, error, status, retry_after, times, needed)

    def refuse_streaming(self, error: str = "unknown_method") -> None:
        self.fail("chat.startStream", error, times=None)

    def clear_failures(self) -> None:
        self._run(self._failures.clear)

    def configure(self, **options: Any) -> None:
        self._run(self._configure, **options)

    # ---- public: inspecting ----------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        return self._run(self._list_calls, method)

    def messages(
        self, channel: str | None = None, thread_ts: str | None = None, from_bot: bool | None = None
    ) -> list[dict[str, Any]]:
        return self._run(self._list_messages, channel, thread_ts, from_bot)

    def envelopes(self, event_id: str | None = None) -> list[dict[str, Any]]:
        return self._run(self._list_envelopes, event_id)

    def acked(self, event_id: str) -> bool:
        return any(e["acked"] for e in self.envelopes(event_id))

    def deliveries(self, event_id: str) -> int:
        return len(self.envelopes(event_id))

    def uploads(self) -> list[dict[str, Any]]:
        return self._run(lambda: [dict(u) for u in self._uploads])

    def streams(self) -> dict[str, dict[str, Any]]:
        return self._run(lambda: json.loads(json.dumps(self._streams)))

    def reactions(self, channel: str, ts: str) -> list[str]:
        return self._run(lambda: list(self._reactions.get((channel, ts), [])))

    def statuses(self) -> list[dict[str, Any]]:
        return self._run(lambda: list(self._statuses))

    def ephemerals(self) -> list[dict[str, Any]]:
        return self._run(lambda: list(self._ephemerals))

    def views(self) -> list[dict[str, Any]]:
        return self._run(lambda: list(self._views))

    def connections(self) -> int:
        return self._run(lambda: len(self._sockets))

    def wait_connected(self, timeout_s: float = 15.0, count: int = 1) -> None:
        self._wait(lambda: self.connections() >= count, timeout_s, "a Socket Mode connection")

    def wait_acked(self, event_id: str, timeout_s: float = 15.0) -> None:
        self._wait(lambda: self.acked(event_id), timeout_s, f"ack of {event_id}")

    @staticmethod
    def _wait(probe: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not probe():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
            time.sleep(0.02)

    # ---- state changes (on the loop) -------------------------------------------------------------

    def _add_user(self, user_id: str, name: str, **profile: Any) -> dict[str, Any]:
        display = profile.get("display_name") or ""
        real = profile.get("real_name") or name
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real,
            "is_bot": bool(profile.get("is_bot", False)),
            "deleted": False,
            "profile": {
                "display_name": display,
                "display_name_normalized": display,
                "real_name": real,
                "real_name_normalized": real,
                "email": profile.get("email"),
            },
        }
        self._users[user_id] = user
        return user

    def _add_file(self, name: str, content: bytes, mimetype: str) -> dict[str, Any]:
        file_id = self._next_id("F")
        url = f"{self.base_url}/files-pri/{self.team_id}-{file_id}/{name}"
        file = {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1] if "." in name else "binary",
            "size": len(content),
            "url_private": url,
            "url_private_download": url + "?download=1",
            "mode": "hosted",
        }
        self._files[file_id] = file
        self._file_bytes[file_id] = content
        return file

    def _store_message(self, channel: str, **fields: Any) -> dict[str, Any]:
        message = {
            "type": "message",
            "channel": channel,
            "ts": self._next_ts(),
            "text": "",
            "deleted": False,
            "edits": [],
            **fields,
        }
        self._messages.append(message)
        return message

    def _channel_type(self, channel: str) -> str:
        return {"D": "im", "G": "group"}.get(channel[:1], "channel")

    def _user_message(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        channel_type: str | None = None,
        files: list[dict[str, Any]] | None = None,
        team: str | None = None,
    ) -> Sent:
        channel_type = channel_type or self._channel_type(channel)
        extra: dict[str, Any] = {"user": user, "text": text, "team": team or self.team_id}
        if thread_ts:
            extra["thread_ts"] = thread_ts
        if files:
            extra["files"] = files
            extra["subtype"] = "file_share"
        message = self._store_message(channel, **extra)
        event = self._event_of(message)
        event["channel_type"] = channel_type
        event_ids = [self._next_id("Ev")]
        envelopes = [self._push_event(event, event_ids[0])]
        if f"<@{self.bot_user_id}" in text and channel_type != "im":
            mention = {k: v for k, v in event.items() if k not in ("channel_type", "subtype")}
            mention["type"] = "app_mention"
            event_ids.append(self._next_id("Ev"))
            envelopes.append(self._push_event(mention, event_ids[1]))
        return Sent(ts=message["ts"], event_ids=event_ids, envelope_ids=envelopes)

    def _event_of(self, message: dict[str, Any]) -> dict[str, Any]:
        event = {k: v for k, v in message.items() if k not in ("deleted", "edits")}
        event["event_ts"] = message["ts"]
        return event

    def _push_event(self, event: dict[str, Any], event_id: str | None = None) -> str:
        event_id = event_id or self._next_id("Ev")
        payload = {
            "token": "fake-verification-token",
            "team_id": self.team_id,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [
                {"enterprise_id": None, "team_id": self.team_id, "user_id": self.bot_user_id, "is_bot": True}
            ],
            "is_ext_shared_channel": False,
        }
        return self._deliver(_Delivery(event_id=event_id, kind="events_api", payload=payload))

    def _resend(self, event_id: str, connection: int | None = None) -> str:
        delivery = self._deliveries[event_id]
        return self._send_attempt(delivery, len(delivery.envelope_ids), connection)

    def _seed_message(self, channel: str, user: str, text: str, thread_ts: str | None) -> str:
        fields: dict[str, Any] = {"user": user, "text": text, "team": self.team_id}
        if user == self.bot_user_id:
            fields.update(self._bot_fields())
        if thread_ts:
            fields["thread_ts"] = thread_ts
        return str(self._store_message(channel, **fields)["ts"])

    def _click_button(
        self, channel: str, user: str, message_ts: str, action_id: str, value: str, thread_ts: str | None
    ) -> str:
        message = next((m for m in self._messages if m["channel"] == channel and m["ts"] == message_ts), None)
        thread_ts = thread_ts or (message or {}).get("thread_ts")
        action_ts = self._next_ts()
        container: dict[str, Any] = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        }
        if thread_ts:
            container["thread_ts"] = thread_ts
        payload = {
            "type": "block_actions",
            "user": {
                "id": user,
                "username": self._users.get(user, {}).get("name", user),
                "team_id": self.team_id,
            },
            "api_app_id": self.app_id,
            "token": "fake-verification-token",
            "container": container,
            "trigger_id": f"{self._next_id('')}.{self.team_id}.trigger",
            "team": {"id": self.team_id, "domain": "fake"},
            "channel": {"id": channel, "name": channel.lower()},
            "message": self._event_of(message) if message else {"ts": message_ts, "thread_ts": thread_ts},
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "fake-block",
                    "text": {"type": "plain_text", "text": action_id},
                    "value": value,
                    "type": "button",
                    "action_ts": action_ts,
                }
            ],
        }
        return self._deliver(_Delivery(event_id=f"action:{action_ts}", kind="interactive", payload=payload))

    def _submit_view(self, user: str, view: dict[str, Any]) -> str:
        view = {"id": self._next_id("V"), "hash": uuid.uuid4().hex[:10], "type": "modal", **view}
        trigger = f"{self._next_id('')}.{self.team_id}.trigger"
        payload = {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": "fake"},
            "user": {
                "id": user,
                "username": self._users.get(user, {}).get("name", user),
                "team_id": self.team_id,
            },
            "api_app_id": self.app_id,
            "token": "fake-verification-token",
            "trigger_id": trigger,
            "view": view,
        }
        return self._deliver(_Delivery(event_id=f"view:{trigger}", kind="interactive", payload=payload))

    def _slash_command(self, channel: str, user: str, command: str, text: str, thread_ts: str | None) -> str:
        """Like Slack: the form fields of a slash command, as a Socket Mode `slash_commands`
        envelope (not re-sent: Slack shows the user an error instead when it is not acked)."""
        trigger = f"{self._next_id('')}.{self.team_id}.trigger"
        payload: dict[str, Any] = {
            "token": "fake-verification-token",
            "team_id": self.team_id,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": channel.lower(),
            "user_id": user,
            "user_name": self._users.get(user, {}).get("name", user),
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": f"http://127.0.0.1/fake-response/{trigger}",
            "trigger_id": trigger,
        }
        if thread_ts:
            payload["thread_ts"] = thread_ts
        return self._deliver(_Delivery(event_id=f"command:{trigger}", kind="slash_commands", payload=payload))

    def _fail(
        self,
        method: str,
        error: str,
        status: int | None,
        retry_after: float | None,
        times: int | None,
        needed: str | None,
    ) -> None:
        if status is None:
            status = 429 if error == "ratelimited" else 200
        if error == "ratelimited" and retry_after is None:
            retry_after = 1.0
        self._failures.setdefault(method, []).append(_Failure(error, status, retry_after, times, needed))

    def _configure(self, **options: Any) -> None:
        for name in ("ack_timeout_s", "max_retries", "echo_bot_messages", "spread_connections"):
            if name in options and options[name] is not None:
                setattr(self, name, type(getattr(self, name))(options[name]))
        if options.get("granted_scopes") is not None:
            self.granted_scopes = tuple(options["granted_scopes"])

    # ---- socket mode -------------------------------------------------------------------------------

    def _deliver(self, delivery: _Delivery) -> str:
        self._deliveries[delivery.event_id] = delivery
        return self._send_attempt(delivery, 0)

    def _send_attempt(self, delivery: _Delivery, attempt: int, connection: int | None = None) -> str:
        envelope_id = str(uuid.uuid4())
        delivery.envelope_ids.append(envelope_id)
        self._by_envelope[envelope_id] = delivery
        envelope = {
            "envelope_id": envelope_id,
            "payload": delivery.payload,
            "type": delivery.kind,
            "accepts_response_payload": delivery.kind in ("interactive", "slash_commands"),
        }
        if delivery.kind == "events_api":
            envelope["retry_attempt"] = attempt
            envelope["retry_reason"] = "timeout" if attempt else ""
        asyncio.get_running_loop().create_task(self._send(envelope, connection))
        if delivery.kind == "events_api":
            delivery.timer = asyncio.get_running_loop().create_task(self._resend_later(delivery, attempt))
        return envelope_id

    async def _send(self, envelope: dict[str, Any], connection: int | None = None) -> None:
        for ws in self._send_order(connection):
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.send_str(json.dumps(envelope))
                    self._sent_on[envelope["envelope_id"]] = self._socket_numbers.get(id(ws), 0)
                    return
        self._queued[envelope["envelope_id"]] = envelope

    def _send_order(self, connection: int | None) -> list[web.WebSocketResponse]:
        """Sockets to try in turn: the chosen one first, else round-robin or the newest first."""
        sockets = list(reversed(self._sockets))  # the newest connection first
        if connection is not None:
            chosen = [ws for ws in sockets if self._socket_numbers.get(id(ws)) == connection]
            return chosen + [ws for ws in sockets if ws not in chosen]
        if self.spread_connections and sockets:
            self._round_robin += 1
            start = self._round_robin % len(sockets)
            return sockets[start:] + sockets[:start]
        return sockets

    async def _resend_later(self, delivery: _Delivery, attempt: int) -> None:
        await asyncio.sleep(self.ack_timeout_s)
        if delivery.acked_envelope is None and attempt < self.max_retries:
            self._send_attempt(delivery, attempt + 1)

    async def _flush_queue(self) -> None:
        queued, self._queued = self._queued, {}
        for envelope in queued.values():
            await self._send(envelope)

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("ticket") != self._ticket():
            return web.Response(status=401, text="bad ticket")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self._opened += 1
        self._socket_numbers[id(ws)] = self._opened
        try:
            await ws.send_json(
                {
                    "type": "hello",
                    "num_connections": len(self._sockets),
                    "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060},
                    "connection_info": {"app_id": self.app_id},
                }
            )
            await self._flush_queue()
            async for message in ws:
                if message.type.name == "TEXT":
                    self._on_client_message(message.data)
        finally:
            if ws in self._sockets:
                self._sockets.remove(ws)
            self._socket_numbers.pop(id(ws), None)
        return ws

    def _on_client_message(self, raw: str) -> None:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            return
        envelope_id = str(data.get("envelope_id"))
        delivery = self._by_envelope.get(envelope_id)
        if delivery is None or envelope_id in delivery.acks:
            return
        delivery.acks[envelope_id] = time.time()
        if delivery.acked_envelope is None:
            delivery.acked_envelope = envelope_id
            delivery.ack_payload = data.get("payload")
            if delivery.timer is not None:
                delivery.timer.cancel()

    def _ticket(self) -> str:
        return "fake-ticket-" + self.app_token[-6:]

    async def _disconnect(self, reason: str) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.send_json(
                    {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-slack"}}
                )

    async def _drop_connections(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()

    # ---- web api -------------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _read_args(request)
        token = _bearer(request) or str(args.pop("token", "") or "")
        call: dict[str, Any] = {"method": method, "args": args, "ok": True, "error": None, "at": time.time()}
        self._calls.append(call)
        failure = self._take_failure(method)
        if failure is not None:
            call.update(ok=False, error=failure.error)
            body: dict[str, Any] = {"ok": False, "error": failure.error}
            if failure.needed:
                body.update(needed=failure.needed, provided="chat:write")
            headers = (
                {"Retry-After": str(int(failure.retry_after))} if failure.retry_after is not None else None
            )
            return web.json_response(body, status=failure.status, headers=headers)
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if not token:
            result: dict[str, Any] = {"ok": False, "error": "not_authed"}
        elif token != expected:
            result = {"ok": False, "error": "invalid_auth"}
        else:
            handler = getattr(self, "_m_" + method.replace(".", "_"), None)
            result = handler(args) if handler is not None else {"ok": False, "error": "unknown_method"}
        if not result.get("ok"):
            call.update(ok=False, error=result.get("error"))
        granted = self.granted_scopes if token == self.bot_token else None
        scopes = {"x-oauth-scopes": ",".join(granted)} if granted is not None else None
        return web.json_response(result, headers=scopes)

    def _take_failure(self, method: str) -> _Failure | None:
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue[0]
        if failure.times is not None:
            failure.times -= 1
            if failure.times <= 0:
                queue.pop(0)
        return failure

    def _find(self, channel: str, ts: str) -> dict[str, Any] | None:
        return next(
            (m for m in self._messages if m["channel"] == channel and m["ts"] == ts and not m["deleted"]),
            None,
        )

    def _bot_fields(self) -> dict[str, Any]:
        return {
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "bot_profile": {"id": self.bot_id, "app_id": self.app_id, "name": "codex"},
        }

    def _echo(self, message: dict[str, Any]) -> None:
        """Slack sends an app its own posts as message events too; the app must ignore them."""
        if self.echo_bot_messages:
            event = self._event_of(message)
            event["channel_type"] = self._channel_type(message["channel"])
            self._push_event(event)

    def _m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake Team",
            "user": "codex",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _m_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://{self.host}:{self.port}/ws?ticket={self._ticket()}"}

    def _m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self._users.get(str(args.get("user")))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def _check_blocks(self, blocks: Any) -> str | None:
        if blocks is None:
            return None
        if not isinstance(blocks, list) or len(blocks) > 50:
            return "invalid_blocks"
        for block in blocks:
            text = (block.get("text") or {}).get("text") if isinstance(block, dict) else None
            if isinstance(text, str) and len(text) > SECTION_TEXT_LIMIT:
                return "invalid_blocks"
        return None

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, text, blocks = args.get("channel"), args.get("text") or "", args.get("blocks")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not text and not blocks:
            return {"ok": False, "error": "no_text"}
        if len(text) > POST_TEXT_LIMIT:
            return {"ok": False, "error": "msg_too_long"}
        if (error := self._check_blocks(blocks)) is not None:
            return {"ok": False, "error": error}
        fields = {**self._bot_fields(), "text": text, "blocks": blocks or []}
        if args.get("thread_ts"):
            fields["thread_ts"] = args["thread_ts"]
        message = self._store_message(str(channel), **fields)
        self._echo(message)
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": self._event_of(message)}

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self._find(str(args.get("channel")), str(args.get("ts")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if message.get("user") != self.bot_user_id:
            return {"ok": False, "error": "cant_update_message"}
        text = args.get("text") or ""
        if len(text) > UPDATE_TEXT_LIMIT:
            return {"ok": False, "error": "msg_too_long"}
        if (error := self._check_blocks(args.get("blocks"))) is not None:
            return {"ok": False, "error": error}
        message["edits"].append({"text": message["text"], "blocks": message.get("blocks"), "at": time.time()})
        message["text"] = text
        if "blocks" in args:
            message["blocks"] = args["blocks"] or []
        return {"ok": True, "channel": message["channel"], "ts": message["ts"], "text": text}

    def _m_chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self._find(str(args.get("channel")), str(args.get("ts")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message["deleted"] = True
        return {"ok": True, "channel": message["channel"], "ts": message["ts"]}

    def _m_chat_getPermalink(self, args: dict[str, Any]) -> dict[str, Any]:
        """Slack's permalink shapes: `p<ts digits>`, and for a reply the thread's ts and channel."""
        channel, ts = str(args.get("channel") or ""), str(args.get("message_ts") or "")
        message = self._find(channel, ts)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        link = f"https://fake.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != ts:
            link += f"?thread_ts={thread_ts}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": link}

    def _m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel") or not args.get("user"):
            return {"ok": False, "error": "channel_not_found"}
        ts = self._next_ts()
        self._ephemerals.append({**args, "message_ts": ts})
        return {"ok": True, "message_ts": ts}

    def _m_chat_startStream(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, thread_ts = str(args.get("channel") or ""), args.get("thread_ts")
        if not channel or not thread_ts:
            return {"ok": False, "error": "invalid_arguments"}
        if not channel.startswith("D") and not (
            args.get("recipient_user_id") and args.get("recipient_team_id")
        ):
            return {"ok": False, "error": "invalid_arguments"}
        message = self._store_message(channel, **self._bot_fields(), thread_ts=thread_ts, text="", blocks=[])
        self._streams[message["ts"]] = {
            "channel": channel,
            "thread_ts": thread_ts,
            "text": "",
            "chunks": [],
            "stopped": False,
            "recipient_user_id": args.get("recipient_user_id"),
            "recipient_team_id": args.get("recipient_team_id"),
            "task_display_mode": args.get("task_display_mode"),
            "stop_blocks": None,
        }
        error = self._append_stream(message["ts"], args)
        if error:
            return {"ok": False, "error": error}
        return {"ok": True, "channel": channel, "ts": message["ts"]}

    def _append_stream(self, ts: str, args: dict[str, Any]) -> str | None:
        stream = self._streams[ts]
        chunks = list(args.get("chunks") or [])
        if args.get("markdown_text"):
            chunks.append({"type": "markdown_text", "text": args["markdown_text"]})
        for chunk in chunks:
            if chunk.get("type") == "markdown_text" and len(chunk.get("text") or "") > STREAM_TEXT_LIMIT:
                return "msg_too_long"
        for chunk in chunks:
            stream["chunks"].append(chunk)
            if chunk.get("type") == "markdown_text":
                stream["text"] += chunk.get("text") or ""
        message = self._find(stream["channel"], ts)
        if message is not None:
            message["text"] = stream["text"]
        return None

    def _m_chat_appendStream(self, args: dict[str, Any]) -> dict[str, Any]:
        ts = str(args.get("ts"))
        stream = self._streams.get(ts)
        if stream is None:
            return {"ok": False, "error": "message_not_found"}
        if stream["stopped"]:
            return {"ok": False, "error": "message_not_in_streaming_state"}
        error = self._append_stream(ts, args)
        return (
            {"ok": False, "error": error} if error else {"ok": True, "channel": stream["channel"], "ts": ts}
        )

    def _m_chat_stopStream(self, args: dict[str, Any]) -> dict[str, Any]:
        ts = str(args.get("ts"))
        stream = self._streams.get(ts)
        if stream is None:
            return {"ok": False, "error": "message_not_found"}
        if stream["stopped"]:
            return {"ok": False, "error": "message_not_in_streaming_state"}
        error = self._append_stream(ts, args)
        if error:
            return {"ok": False, "error": error}
        stream["stopped"] = True
        stream["stop_blocks"] = args.get("blocks")
        return {"ok": True, "channel": stream["channel"], "ts": ts}

    def _m_assistant_threads_setStatus(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel_id") or not args.get("thread_ts"):
            return {"ok": False, "error": "invalid_arguments"}
        self._statuses.append(
            {
                "channel_id": args["channel_id"],
                "thread_ts": args["thread_ts"],
                "status": args.get("status", ""),
            }
        )
        return {"ok": True}

    def _m_reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (str(args.get("channel")), str(args.get("timestamp")))
        if self._find(*key) is None:
            return {"ok": False, "error": "message_not_found"}
        names = self._reactions.setdefault(key, [])
        if args.get("name") in names:
            return {"ok": False, "error": "already_reacted"}
        names.append(str(args.get("name")))
        return {"ok": True}

    def _m_reactions_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (str(args.get("channel")), str(args.get("timestamp")))
        names = self._reactions.get(key, [])
        if args.get("name") not in names:
            return {"ok": False, "error": "no_reaction"}
        names.remove(str(args.get("name")))
        return {"ok": True}

    def _m_conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, root = str(args.get("channel")), str(args.get("ts"))
        thread = [
            m
            for m in self._messages
            if m["channel"] == channel
            and not m["deleted"]
            and (m["ts"] == root or m.get("thread_ts") == root)
        ]
        if not any(m["ts"] == root for m in thread):
            return {"ok": False, "error": "thread_not_found"}
        inclusive = str(args.get("inclusive", "")).lower() in ("1", "true")
        if args.get("latest"):
            latest = float(args["latest"])
            thread = [
                m for m in thread if float(m["ts"]) < latest or (inclusive and float(m["ts"]) == latest)
            ]
        if args.get("oldest"):
            oldest = float(args["oldest"])
            thread = [
                m for m in thread if float(m["ts"]) > oldest or (inclusive and float(m["ts"]) == oldest)
            ]
        thread.sort(key=lambda m: float(m["ts"]))
        limit = max(1, min(int(args.get("limit") or 100), 1000))
        offset = (
            int(base64.b64decode(str(args["cursor"])).decode().split(":")[1]) if args.get("cursor") else 0
        )
        page = thread[offset : offset + limit]
        more = offset + limit < len(thread)
        next_cursor = base64.b64encode(f"offset:{offset + limit}".encode()).decode() if more else ""
        return {
            "ok": True,
            "messages": [self._event_of(m) for m in page],
            "has_more": more,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _m_views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        view = args.get("view") or {}
        record = {"id": self._next_id("V"), **view}
        self._views.append({"trigger_id": args["trigger_id"], "view": record})
        return {"ok": True, "view": record}

    def _m_files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("filename") or not args.get("length"):
            return {"ok": False, "error": "invalid_arguments"}
        file_id = self._next_id("F")
        self._pending_uploads[file_id] = {
            "file_id": file_id,
            "filename": args["filename"],
            "length": int(args["length"]),
            "alt_txt": args.get("alt_txt"),
            "snippet_type": args.get("snippet_type"),
            "content": None,
        }
        return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    async def _upload_bytes(self, request: web.Request) -> web.Response:
        pending = self._pending_uploads.get(request.match_info["file_id"])
        if pending is None:
            return web.Response(status=404, text="unknown upload")
        body = await request.read()
        if request.content_type == "multipart/form-data":  # some clients post a form with a `file` part
            form = await request.post()
            part = form.get("file") or form.get("filename")
            body = part.file.read() if isinstance(part, web.FileField) else str(part or "").encode()
        pending["content"] = body
        return web.Response(text=f"OK - {len(body)}")

    def _m_files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        entries = args.get("files") or []
        done = []
        for entry in entries:
            pending = self._pending_uploads.pop(str(entry.get("id")), None)
            if pending is None or pending["content"] is None:
                return {"ok": False, "error": "file_not_found"}
            file = self._add_file(pending["filename"], pending["content"], "application/octet-stream")
            self._files.pop(file["id"])
            file["id"] = pending["file_id"]
            file["title"] = entry.get("title") or pending["filename"]
            file["permalink"] = f"https://fake.slack.com/files/{file['id']}"
            self._files[file["id"]] = file
            self._file_bytes[file["id"]] = pending["content"]
            self._uploads.append(
                {
                    **pending,
                    "title": file["title"],
                    "channel": args.get("channel_id"),
                    "thread_ts": args.get("thread_ts"),
                    "initial_comment": args.get("initial_comment"),
                }
            )
            done.append(file)
        if args.get("channel_id") and done:
            fields = {**self._bot_fields(), "text": args.get("initial_comment") or "", "files": done}
            if args.get("thread_ts"):
                fields["thread_ts"] = args["thread_ts"]
            self._store_message(str(args["channel_id"]), subtype="file_share", **fields)
        return {"ok": True, "files": done}

    async def _download(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"].split("-", 1)[-1]
        if _bearer(request) != self.bot_token:
            return web.Response(text=LOGIN_PAGE, content_type="text/html")
        content = self._file_bytes.get(file_id)
        if content is None:
            return web.Response(status=404, text="not found")
        mimetype = self._files.get(file_id, {}).get("mimetype", "application/octet-stream")
        return web.Response(body=content, content_type=mimetype)

    # ---- listings ----------------------------------------------------------------------------------

    def _list_calls(self, method: str | None) -> list[dict[str, Any]]:
        return [json.loads(json.dumps(c, default=str)) for c in self._calls if method in (None, c["method"])]

    def _list_messages(
        self, channel: str | None, thread_ts: str | None, from_bot: bool | None
    ) -> list[dict[str, Any]]:
        found = []
        for message in self._messages:
            if channel is not None and message["channel"] != channel:
                continue
            if thread_ts is not None and thread_ts not in (message.get("thread_ts"), message["ts"]):
                continue
            if from_bot is not None and (message.get("bot_id") == self.bot_id) != from_bot:
                continue
            found.append(json.loads(json.dumps(message, default=str)))
        return sorted(found, key=lambda m: float(m["ts"]))

    def _list_envelopes(self, event_id: str | None) -> list[dict[str, Any]]:
        rows = []
        for delivery in self._deliveries.values():
            if event_id is not None and delivery.event_id != event_id:
                continue
            for attempt, envelope_id in enumerate(delivery.envelope_ids):
                rows.append(
                    {
                        "envelope_id": envelope_id,
                        "event_id": delivery.event_id,
                        "kind": delivery.kind,
                        "attempt": attempt,
                        "acked": envelope_id in delivery.acks,
                        "acked_at": delivery.acks.get(envelope_id),
                        "connection": self._sent_on.get(envelope_id),
                        "ack_payload": delivery.ack_payload
                        if delivery.acked_envelope == envelope_id
                        else None,
                    }
                )
        return rows

    # ---- control endpoints (for the process mode) ----------------------------------------------------

    def _add_control_routes(self, app: web.Application) -> None:
        def post(path: str, func: Callable[[dict[str, Any]], Any]) -> None:
            async def route(request: web.Request) -> web.Response:
                body = await request.json() if request.can_read_body else {}
                result = func(body)
                if asyncio.iscoroutine(result):
                    result = await result
                return web.json_response(_jsonable(result))

            app.router.add_post(path, route)

        def get(path: str, func: Callable[[dict[str, str]], Any]) -> None:
            async def route(request: web.Request) -> web.Response:
                return web.json_response(_jsonable(func(dict(request.query))))

            app.router.add_get(path, route)

        post("/_fake/users", lambda b: self._add_user(**b))
        post(
            "/_fake/files",
            lambda b: self._add_file(b["name"], base64.b64decode(b["content_base64"]), b.get("mimetype", "")),
        )
        post("/_fake/messages", lambda b: self._user_message(**b).__dict__)
        post("/_fake/events", lambda b: {"envelope_id": self._push_event(b["event"], b.get("event_id"))})
        post(
            "/_fake/resend",
            lambda b: {"envelope_id": self._resend(b["event_id"], b.get("connection"))},
        )
        post(
            "/_fake/seed",
            lambda b: {"ts": self._seed_message(b["channel"], b["user"], b["text"], b.get("thread_ts"))},
        )
        post("/_fake/actions", lambda b: {"envelope_id": self._click_button(**_action_args(b))})
        post("/_fake/views", lambda b: {"envelope_id": self._submit_view(b["user"], b["view"])})
        post(
            "/_fake/commands",
            lambda b: {
                "envelope_id": self._slash_command(
                    b["channel"], b["user"], b["command"], b.get("text", ""), b.get("thread_ts")
                )
            },
        )
        post("/_fake/disconnect", lambda b: self._disconnect(b.get("reason", "refresh_requested")))
        post("/_fake/drop", lambda b: self._drop_connections())
        post("/_fake/failures", lambda b: self._fail(**_fail_args(b)))
        post("/_fake/config", lambda b: self._configure(**b))
        app.router.add_delete("/_fake/failures", self._clear_failures_route)
        get("/_fake/calls", lambda q: self._list_calls(q.get("method")))
        get(
            "/_fake/messages",
            lambda q: self._list_messages(q.get("channel"), q.get("thread_ts"), _opt_bool(q.get("from_bot"))),
        )
        get("/_fake/envelopes", lambda q: self._list_envelopes(q.get("event_id")))
        get(
            "/_fake/uploads",
            lambda q: [
                {**u, "content": None, "content_base64": base64.b64encode(u["content"] or b"").decode()}
                for u in self._uploads
            ],
        )
        get("/_fake/streams", lambda q: self._streams)
        get("/_fake/reactions", lambda q: self._reactions.get((q["channel"], q["ts"]), []))
        get("/_fake/statuses", lambda q: self._statuses)
        get("/_fake/ephemerals", lambda q: self._ephemerals)
        get("/_fake/views", lambda q: self._views)
        get(
            "/_fake/state",
            lambda q: {
                "connections": len(self._sockets),
                "connection_ids": [self._socket_numbers.get(id(ws)) for ws in self._sockets],
                "api_url": self.api_url,
            },
        )

    async def _clear_failures_route(self, request: web.Request) -> web.Response:
        self._failures.clear()
        return web.json_response({"ok": True})


# ---- helpers ---------------------------------------------------------------------------------------------


async def _read_args(request: web.Request) -> dict[str, Any]:
    args: dict[str, Any] = {k: v for k, v in request.query.items()}
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                args.update(body)
        elif request.content_type == "application/x-www-form-urlencoded":
            raw = (await request.read()).decode()
            args.update({k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()})
        elif request.content_type.startswith("multipart/"):
            form = await request.post()
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key in JSON_ARGS:
        if isinstance(args.get(key), str):
            with contextlib.suppress(json.JSONDecodeError):
                args[key] = json.loads(args[key])
    return args


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.lower().startswith("bearer ") else None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: getattr(o, "__dict__", str(o))))


def _opt_bool(raw: str | None) -> bool | None:
    return None if raw is None else raw.lower() in ("1", "true", "yes")


def _action_args(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body.get(k) for k in ("channel", "user", "message_ts", "action_id", "value", "thread_ts")} | {
        "value": body.get("value", "")
    }


def _fail_args(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "method": body["method"],
        "error": body.get("error", "internal_error"),
        "status": body.get("status"),
        "retry_after": body.get("retry_after"),
        "times": body.get("times", 1),
        "needed": body.get("needed"),
    }


def main(argv: list[str] | None = None, fake_class: type[FakeSlack] = FakeSlack) -> int:
    """Serve a fake as a process. `fake_class`: a subclass to serve instead (bench/_timed_slack.py)."""
    parser = argparse.ArgumentParser(description="Fake Slack (Web API + Socket Mode) for tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bot-token", default=DEFAULT_BOT_TOKEN)
    parser.add_argument("--app-token", default=DEFAULT_APP_TOKEN)
    parser.add_argument("--ack-timeout-s", type=float, default=3.0)
    parser.add_argument("--max-retries", type=int, default=3)
    parser.add_argument("--no-echo", action="store_true", help="do not echo the bot's posts as events")
    parser.add_argument("--spread", action="store_true", help="round-robin envelopes over all connections")
    args = parser.parse_args(argv)
    fake = fake_class(
        host=args.host,
        port=args.port,
        bot_token=args.bot_token,
        app_token=args.app_token,
        ack_timeout_s=args.ack_timeout_s,
        max_retries=args.max_retries,
        echo_bot_messages=not args.no_echo,
        spread_connections=args.spread,
    )

    def announce() -> None:
        info = {
            "api_url": fake.api_url,
            "base_url": fake.base_url,
            "port": fake.port,
            "bot_token": fake.bot_token,
            "app_token": fake.app_token,
            "team_id": fake.team_id,
            "bot_user_id": fake.bot_user_id,
            "bot_id": fake.bot_id,
            "app_id": fake.app_id,
        }
        print(json.dumps(info), flush=True)

    async def run() -> None:
        server = asyncio.create_task(fake.serve(on_ready=announce))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: fake._stopped.set() if fake._stopped else None)
        await server

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
