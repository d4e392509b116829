"""The project's own fake Feishu open platform on 127.0.0.1, for the real lark-oapi to talk to.

Serves, on one port:
- `POST /callback/ws/endpoint` and a websocket speaking lark's protobuf `Frame` protocol: ping →
  pong with ClientConfig, events pushed as DATA frames (optionally fragmented), the client's
  acks; events not acked (no answer, or code ≠ 200) are pushed again after `redeliver_after_s`
  and on every new connection, as Feishu does;
- REST: tenant token, bot info, im/v1 messages create / reply / patch / update / get / list,
  reactions, image and file upload, message resources, CardKit cards (create, element content,
  settings, full update) with strictly increasing sequence numbers, contact/v3 user get (by
  open_id, from a settable user directory: `set_user`);
- control endpoints under `/_fake/` for end-to-end tests (push a message event as a user, push a
  card click, drop connections, fail or delay calls, set users, read what the bot sent).

Every REST call is recorded; failures (`fail`) and slow answers (`delay`, ended early by
`release`) can be scripted per operation. Use it in-process
(`FakeFeishu().start()`, a server thread with its own loop) or as a subprocess:
`python -m tests.fakes.fake_feishu --port N [--app-id ID --app-secret S]`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.fakes import fake_feishu_ws as wire

IMAGE_LIMIT = 10 * 1024 * 1024
FILE_LIMIT = 30 * 1024 * 1024
CODE_SIZE_LIMIT = 234006
CODE_BAD_TOKEN = 99991663
CODE_SEQUENCE = 300317
CODE_NOT_FOUND = 230011
CODE_PARAM = 99992402


def _hex(n: int = 16) -> str:
    return uuid.uuid4().hex[:n]


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class FailRule:
    op: str
    code: int
    status: int = 400
    times: int = 1  # -1 = forever
    msg: str = "scripted failure"


@dataclass
class DelayRule:
    op: str
    seconds: float
    times: int = 1  # -1 = forever


@dataclass
class PendingEvent:
    frame_message_id: str
    payload: dict[str, Any]
    fragments: int
    sent_at: float = 0.0
    deliveries: int = 0


@dataclass
class _Conn:
    websocket: WebSocket
    service_id: int
    device_id: str


@dataclass
class FeishuState:
    """Everything the fake knows; guarded by `lock` (the server thread and tests both touch it)."""

    app_id: str
    app_secret: str
    bot_open_id: str
    bot_name: str = "Codex"
    tenant_key: str = "tenant_fake"
    lock: threading.RLock = field(default_factory=threading.RLock)
    tokens: set[str] = field(default_factory=set)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    uuids: dict[str, str] = field(default_factory=dict)
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)
    images: dict[str, bytes] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)
    resources: dict[str, tuple[bytes, str, str]] = field(default_factory=dict)
    reactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_rules: list[FailRule] = field(default_factory=list)
    delay_rules: list[DelayRule] = field(default_factory=list)
    released: int = 0  # bumped by `release`: requests delayed before then answer at once
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending: dict[str, PendingEvent] = field(default_factory=dict)
    acked: list[str] = field(default_factory=list)
    responses: list[wire.ClientResponse] = field(default_factory=list)
    pings: int = 0
    connections_opened: int = 0
    endpoint_calls: int = 0
    refuse_endpoint: bool = False
    seq: itertools.count = field(default_factory=lambda: itertools.count(1))

    def take_failure(self, op: str) -> FailRule | None:
        with self.lock:
            for rule in self.fail_rules:
                if rule.op == op and rule.times != 0:
                    if rule.times > 0:
                        rule.times -= 1
                    return rule
        return None

    def take_delay(self, op: str) -> DelayRule | None:
        with self.lock:
            for rule in self.delay_rules:
                if rule.op == op and rule.times != 0:
                    if rule.times > 0:
                        rule.times -= 1
                    return rule
        return None


class FakeFeishu:
    def __init__(
        self,
        *,
        port: int = 0,
        app_id: str | None = None,
        app_secret: str = "fake-secret",
        bot_open_id: str | None = None,
        ping_interval_s: int = 1,
        reconnect_interval_s: int = 1,
        redeliver_after_s: float = 3.0,
    ) -> None:
        self.port = port or _free_port()
        self.state = FeishuState(
            app_id=app_id or f"cli_{_hex(12)}",
            app_secret=app_secret,
            bot_open_id=bot_open_id or f"ou_bot{_hex(10)}",
        )
        self.client_config = {
            "ReconnectCount": -1,
            "ReconnectInterval": reconnect_interval_s,
            "ReconnectNonce": 1,
            "PingInterval": ping_interval_s,
        }
        self.redeliver_after_s = redeliver_after_s
        self._conns: list[_Conn] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._redeliver_task: asyncio.Task[None] | None = None
        self.app = self._build_app()

    # ---- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def app_id(self) -> str:
        return self.state.app_id

    @property
    def app_secret(self) -> str:
        return self.state.app_secret

    @property
    def bot_open_id(self) -> str:
        return self.state.bot_open_id

    def start(self, timeout_s: float = 10.0) -> FakeFeishu:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            config = uvicorn.Config(
                self.app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="off",
                ws="websockets-sansio",
            )
            self._server = uvicorn.Server(config)
            self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]

            async def main() -> None:
                self._redeliver_task = asyncio.create_task(self._redeliver_loop())
                serve = asyncio.create_task(self._server.serve())  # type: ignore[union-attr]
                while not self._server.started:  # type: ignore[union-attr]
                    if serve.done():
                        break
                    await asyncio.sleep(0.01)
                ready.set()
                await serve
                self._redeliver_task.cancel()

            loop.run_until_complete(main())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-feishu", daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s):
            raise RuntimeError("fake Feishu did not start")
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self.release()
        if self._server is not None:
            self._server.should_exit = True
            if self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    self._call_soon(self._close_all())
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> FakeFeishu:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _call_soon(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    # ---- test API (thread-safe) -----------------------------------------------------------------

    def push_message(
        self,
        *,
        chat_id: str,
        text: str | None = None,
        msg_type: str = "text",
        content: dict[str, Any] | None = None,
        chat_type: str = "group",
        sender_open_id: str = "ou_user1",
        mention_bot: bool = False,
        mentions: list[dict[str, Any]] | None = None,
        root_id: str | None = None,
        message_id: str | None = None,
        fragments: int = 1,
        times: int = 1,
    ) -> dict[str, Any]:
        """A user sends a message: stored (for history) and pushed to the connected app.

        `times` > 1 pushes the same event (same event_id) again, as Feishu's re-push does.
        """
        message_id = message_id or f"om_{_hex(24)}"
        all_mentions = list(mentions or [])
        if mention_bot:
            all_mentions.insert(
                0,
                {
                    "key": f"@_user_{len(all_mentions) + 1}",
                    "id": {"open_id": self.bot_open_id, "union_id": "", "user_id": ""},
                    "name": self.state.bot_name,
                    "tenant_key": self.state.tenant_key,
                },
            )
            if msg_type == "text" and text is not None:
                text = f"{all_mentions[0]['key']} {text}"
        if content is None:
            content = {"text": text or ""}
        record = self._store_message(
            chat_id=chat_id,
            msg_type=msg_type,
            content=content,
            sender={"id": sender_open_id, "id_type": "open_id", "sender_type": "user"},
            message_id=message_id,
            root_id=root_id,
            in_thread=bool(root_id) and self._has_thread(root_id),
            mentions=[
                {"key": m["key"], "id": m["id"]["open_id"], "id_type": "open_id", "name": m["name"]}
                for m in all_mentions
            ],
        )
        event = {
            "sender": {
                "sender_id": {"open_id": sender_open_id, "union_id": f"on_{sender_open_id}", "user_id": ""},
                "sender_type": "user",
                "tenant_key": self.state.tenant_key,
            },
            "message": {
                "message_id": message_id,
                "root_id": record.get("root_id", ""),
                "parent_id": record.get("parent_id", ""),
                "create_time": str(record["create_time"]),
                "update_time": str(record["create_time"]),
                "chat_id": chat_id,
                "thread_id": record.get("thread_id", ""),
                "chat_type": chat_type,
                "message_type": msg_type,
                "content": json.dumps(content, ensure_ascii=False),
                "mentions": all_mentions,
                "user_agent": "fake",
            },
        }
        event_id = f"ev_{_hex(24)}"
        for _ in range(times):
            self.push_event("im.message.receive_v1", event, event_id=event_id, fragments=fragments)
        return {"message_id": message_id, "event_id": event_id, "thread_id": record.get("thread_id", "")}

    def push_card_action(
        self, *, operator_open_id: str, value: dict[str, Any], chat_id: str, message_id: str
    ) -> str:
        event = {
            "operator": {"tenant_key": self.state.tenant_key, "open_id": operator_open_id, "user_id": ""},
            "token": f"c-{_hex(20)}",
            "action": {"value": value, "tag": "button"},
            "host": "im_message",
            "context": {"open_message_id": message_id, "open_chat_id": chat_id},
        }
        return self.push_event("card.action.trigger", event)

    def push_event(
        self, event_type: str, event: dict[str, Any], *, event_id: str | None = None, fragments: int = 1
    ) -> str:
        event_id = event_id or f"ev_{_hex(24)}"
        payload = {
            "schema": "2.0",
            "header": {
                "event_id": event_id,
                "event_type": event_type,
                "create_time": str(_now_ms()),
                "token": "",
                "app_id": self.app_id,
                "tenant_key": self.state.tenant_key,
            },
            "event": event,
        }
        pending = PendingEvent(frame_message_id=f"fm_{_hex(16)}", payload=payload, fragments=fragments)
        with self.state.lock:
            self.state.pending[pending.frame_message_id] = pending
        if self._loop is not None:
            self._call_soon(self._deliver(pending)).result(10)
        return event_id

    def add_resource(
        self, message_id: str, file_key: str, data: bytes, content_type: str, name: str = ""
    ) -> None:
        with self.state.lock:
            self.state.resources[f"{message_id}/{file_key}"] = (data, content_type, name)

    def fail(
        self, op: str, code: int, *, status: int = 400, times: int = 1, msg: str = "scripted failure"
    ) -> None:
        """Make the next `times` calls of `op` (e.g. "cardkit.create", "message.reply") fail."""
        with self.state.lock:
            self.state.fail_rules.append(FailRule(op=op, code=code, status=status, times=times, msg=msg))

    def delay(self, op: str, seconds: float, *, times: int = 1) -> None:
        """Make the next `times` calls of `op` answer only after `seconds` (or at `release()`)."""
        with self.state.lock:
            self.state.delay_rules.append(DelayRule(op=op, seconds=seconds, times=times))

    def release(self) -> None:
        """Let every request that is being delayed answer now (later ones are still delayed)."""
        with self.state.lock:
            self.state.released += 1

    def set_user(self, open_id: str, name: str, **fields: Any) -> None:
        """Put a user in the directory that contact/v3 user get answers from."""
        with self.state.lock:
            self.state.users[open_id] = {"open_id": open_id, "name": name, **fields}

    def drop_connections(self) -> int:
        """Close every websocket, as a network drop would; the client reconnects by itself."""
        return int(self._call_soon(self._close_all()).result(10))

    def connected(self) -> int:
        return len(self._conns)

    def bot_messages(self, chat_id: str | None = None) -> list[dict[str, Any]]:
        with self.state.lock:
            return [
                dict(m)
                for mid in self.state.order
                if (m := self.state.messages[mid])["sender"]["sender_type"] == "app"
                and (chat_id is None or m["chat_id"] == chat_id)
            ]

    def message(self, message_id: str) -> dict[str, Any]:
        with self.state.lock:
            return dict(self.state.messages[message_id])

    def card(self, card_id: str) -> dict[str, Any]:
        with self.state.lock:
            return json.loads(json.dumps(self.state.cards[card_id]))

    def cards(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [json.loads(json.dumps(card)) for card in self.state.cards.values()]

    def calls(self, op: str | None = None) -> list[dict[str, Any]]:
        with self.state.lock:
            return [dict(c) for c in self.state.calls if op is None or c["op"] == op]

    def acked_event_ids(self) -> list[str]:
        with self.state.lock:
            return list(self.state.acked)

    def unacked(self) -> int:
        with self.state.lock:
            return len(self.state.pending)

    # ---- message store --------------------------------------------------------------------------

    def _has_thread(self, message_id: str) -> bool:
        with self.state.lock:
            return bool(self.state.messages.get(message_id, {}).get("thread_id"))

    def _store_message(
        self,
        *,
        chat_id: str,
        msg_type: str,
        content: dict[str, Any],
        sender: dict[str, Any],
        message_id: str | None = None,
        root_id: str | None = None,
        in_thread: bool = False,
        mentions: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        with self.state.lock:
            message_id = message_id or f"om_{_hex(24)}"
            record: dict[str, Any] = {
                "message_id": message_id,
                "chat_id": chat_id,
                "msg_type": msg_type,
                "body": {"content": json.dumps(content, ensure_ascii=False)},
                "content": content,
                "sender": sender,
                "create_time": _now_ms() + next(self.state.seq),  # strictly increasing
                "deleted": False,
                "updated": False,
                "mentions": mentions or [],
            }
            if root_id:
                root = self.state.messages.get(root_id)
                top = (root or {}).get("root_id") or root_id
                record["root_id"] = top
                record["parent_id"] = root_id
                if in_thread:
                    top_record = self.state.messages.get(top)
                    thread_id = (top_record or {}).get("thread_id") or f"omt_{_hex(16)}"
                    if top_record is not None:
                        top_record["thread_id"] = thread_id
                    record["thread_id"] = thread_id
            self.state.messages[message_id] = record
            self.state.order.append(message_id)
            return record

    # ---- websocket ------------------------------------------------------------------------------

    async def _ws(self, websocket: WebSocket) -> None:
        await websocket.accept()
        conn = _Conn(
            websocket=websocket,
            service_id=int(websocket.query_params.get("service_id", "1")),
            device_id=websocket.query_params.get("device_id", ""),
        )
        self._conns.append(conn)
        with self.state.lock:
            self.state.connections_opened += 1
            backlog = list(self.state.pending.values())
        for pending in backlog:  # what was never acked is pushed again on the new connection
            await self._send_event(conn, pending)
        try:
            while True:
                raw = await websocket.receive_bytes()
                await self._on_frame(conn, raw)
        except (WebSocketDisconnect, RuntimeError, KeyError):
            pass
        finally:
            with contextlib.suppress(ValueError):
                self._conns.remove(conn)

    async def _on_frame(self, conn: _Conn, raw: bytes) -> None:
        frame = wire.parse(raw)
        headers = wire.headers_of(frame)
        if frame.method == wire.CONTROL and headers.get("type") == "ping":
            with self.state.lock:
                self.state.pings += 1
            await conn.websocket.send_bytes(wire.pong(conn.service_id, self.client_config))
            return
        response = wire.client_response(frame)
        if response is None:
            return
        with self.state.lock:
            self.state.responses.append(response)
            if response.code == 200:
                pending = self.state.pending.pop(response.frame_message_id, None)
                if pending is not None:
                    self.state.acked.append(pending.payload["header"]["event_id"])

    async def _deliver(self, pending: PendingEvent) -> None:
        if not self._conns:
            return  # stays pending: pushed when the client connects
        await self._send_event(self._conns[-1], pending)

    async def _send_event(self, conn: _Conn, pending: PendingEvent) -> None:
        pending.sent_at = time.monotonic()
        pending.deliveries += 1
        for raw in wire.event_frames(
            conn.service_id, pending.frame_message_id, pending.payload, fragments=pending.fragments
        ):
            with contextlib.suppress(Exception):
                await conn.websocket.send_bytes(raw)

    async def _redeliver_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            with self.state.lock:
                due = [
                    p
                    for p in self.state.pending.values()
                    if p.sent_at and now - p.sent_at > self.redeliver_after_s
                ]
            for pending in due:
                await self._deliver(pending)

    async def _close_all(self) -> int:
        conns, self._conns = list(self._conns), []
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.websocket.close(code=1011)
        return len(conns)

    # ---- HTTP -----------------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        r = self._route
        routes = [
            Route("/callback/ws/endpoint", self._endpoint, methods=["POST"]),
            WebSocketRoute("/ws", self._ws),
            Route("/open-apis/auth/v3/tenant_access_token/internal", self._tenant_token, methods=["POST"]),
            Route("/open-apis/bot/v3/info", r("bot.info", self._bot_info), methods=["GET"]),
            Route("/open-apis/im/v1/messages", r("message.create", self._message_create), methods=["POST"]),
            Route("/open-apis/im/v1/messages", r("message.list", self._message_list), methods=["GET"]),
            Route(
                "/open-apis/im/v1/messages/{message_id}/reply",
                r("message.reply", self._message_reply),
                methods=["POST"],
            ),
            Route(
                "/open-apis/im/v1/messages/{message_id}",
                r("message.patch", self._message_patch),
                methods=["PATCH"],
            ),
            Route(
                "/open-apis/im/v1/messages/{message_id}",
                r("message.update", self._message_update),
                methods=["PUT"],
            ),
            Route(
                "/open-apis/im/v1/messages/{message_id}", r("message.get", self._message_get), methods=["GET"]
            ),
            Route(
                "/open-apis/im/v1/messages/{message_id}/reactions",
                r("reaction.create", self._reaction_create),
                methods=["POST"],
            ),
            Route(
                "/open-apis/im/v1/messages/{message_id}/reactions/{reaction_id}",
                r("reaction.delete", self._reaction_delete),
                methods=["DELETE"],
            ),
            Route(
                "/open-apis/im/v1/messages/{message_id}/resources/{file_key}",
                r("resource.get", self._resource_get),
                methods=["GET"],
            ),
            Route("/open-apis/im/v1/images", r("image.create", self._image_create), methods=["POST"]),
            Route("/open-apis/im/v1/files", r("file.create", self._file_create), methods=["POST"]),
            Route("/open-apis/cardkit/v1/cards", r("cardkit.create", self._card_create), methods=["POST"]),
            Route(
                "/open-apis/cardkit/v1/cards/{card_id}",
                r("cardkit.update", self._card_update),
                methods=["PUT"],
            ),
            Route(
                "/open-apis/cardkit/v1/cards/{card_id}/settings",
                r("cardkit.settings", self._card_settings),
                methods=["PATCH"],
            ),
            Route(
                "/open-apis/cardkit/v1/cards/{card_id}/elements/{element_id}/content",
                r("cardkit.content", self._card_content),
                methods=["PUT"],
            ),
            Route(
                "/open-apis/contact/v3/users/{user_id}",
                r("contact.user.get", self._user_get),
                methods=["GET"],
            ),
            # control API for out-of-process tests
            Route("/_fake/info", self._c_info, methods=["GET"]),
            Route("/_fake/push_message", self._c_push_message, methods=["POST"]),
            Route("/_fake/push_card_action", self._c_push_card_action, methods=["POST"]),
            Route("/_fake/resources", self._c_add_resource, methods=["POST"]),
            Route("/_fake/fail", self._c_fail, methods=["POST"]),
            Route("/_fake/delay", self._c_delay, methods=["POST"]),
            Route("/_fake/release", self._c_release, methods=["POST"]),
            Route("/_fake/users", self._c_set_user, methods=["POST"]),
            Route("/_fake/drop", self._c_drop, methods=["POST"]),
            Route("/_fake/messages", self._c_messages, methods=["GET"]),
            Route("/_fake/cards", self._c_cards, methods=["GET"]),
            Route("/_fake/calls", self._c_calls, methods=["GET"]),
        ]
        return Starlette(routes=routes)

    def _route(self, op: str, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            with self.state.lock:
                self.state.calls.append(
                    {
                        "op": op,
                        "method": request.method,
                        "path": request.url.path,
                        "query": dict(request.query_params),
                    }
                )
                known = token in self.state.tokens
            if not known:
                return _error(CODE_BAD_TOKEN, "Invalid access token for authorization", 401)
            delay = self.state.take_delay(op)
            if delay is not None:
                await self._delayed(delay.seconds)
            rule = self.state.take_failure(op)
            if rule is not None:
                return _error(rule.code, rule.msg, rule.status)
            result = await handler(request)
            return result if isinstance(result, Response) else _ok(result)

        return endpoint

    async def _delayed(self, seconds: float) -> None:
        with self.state.lock:
            released = self.state.released
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.state.lock:
                if self.state.released != released:
                    return
            await asyncio.sleep(0.02)

    async def _endpoint(self, request: Request) -> Response:
        body = await request.json()
        with self.state.lock:
            self.state.endpoint_calls += 1
            refused = self.state.refuse_endpoint
        if refused:
            return JSONResponse({"code": 1, "msg": "system busy"})
        if body.get("AppID") != self.app_id or body.get("AppSecret") != self.app_secret:
            return JSONResponse({"code": 403, "msg": "invalid app credentials"})
        url = f"ws://127.0.0.1:{self.port}/ws?device_id={_hex(8)}&service_id=1"
        return JSONResponse(
            {"code": 0, "msg": "ok", "data": {"URL": url, "ClientConfig": self.client_config}}
        )

    async def _tenant_token(self, request: Request) -> Response:
        body = await request.json()
        if body.get("app_id") != self.app_id or body.get("app_secret") != self.app_secret:
            return _error(10014, "app secret invalid")
        token = f"t-fake{_hex(24)}"
        with self.state.lock:
            self.state.tokens.add(token)
            self.state.calls.append({"op": "auth.tenant_token", "method": "POST", "path": request.url.path})
        return JSONResponse({"code": 0, "msg": "ok", "tenant_access_token": token, "expire": 7200})

    async def _bot_info(self, _: Request) -> Response:
        return JSONResponse(
            {"code": 0, "msg": "ok", "bot": {"open_id": self.bot_open_id, "app_name": self.state.bot_name}}
        )

    def _bot_sender(self) -> dict[str, Any]:
        return {"id": self.bot_open_id, "id_type": "open_id", "sender_type": "app"}

    async def _send(self, body: dict[str, Any], *, chat_id: str, root_id: str | None, in_thread: bool) -> Any:
        msg_type = str(body.get("msg_type") or "")
        try:
            content = json.loads(body.get("content") or "")
        except json.JSONDecodeError:
            return _error(CODE_PARAM, "content is not JSON")
        problem = _validate_content(msg_type, content, self.state)
        if problem:
            return _error(CODE_PARAM, problem)
        dedupe = body.get("uuid")
        with self.state.lock:
            if dedupe and dedupe in self.state.uuids:
                return _message_view(self.state.messages[self.state.uuids[dedupe]])
            record = self._store_message(
                chat_id=chat_id,
                msg_type=msg_type,
                content=content,
                sender=self._bot_sender(),
                root_id=root_id,
                in_thread=in_thread,
            )
            if dedupe:
                self.state.uuids[dedupe] = record["message_id"]
            if msg_type == "interactive" and content.get("type") == "card":
                card = self.state.cards.get(content.get("data", {}).get("card_id", ""))
                if card is not None:
                    card["message_id"] = record["message_id"]
        return _message_view(record)

    async def _message_create(self, request: Request) -> Any:
        if request.query_params.get("receive_id_type") != "chat_id":
            return _error(CODE_PARAM, "fake supports receive_id_type=chat_id only")
        body = await request.json()
        return await self._send(body, chat_id=str(body.get("receive_id")), root_id=None, in_thread=False)

    async def _message_reply(self, request: Request) -> Any:
        target = self.state.messages.get(request.path_params["message_id"])
        if target is None:
            return _error(CODE_NOT_FOUND, "message not found")
        body = await request.json()
        return await self._send(
            body,
            chat_id=target["chat_id"],
            root_id=target["message_id"],
            in_thread=bool(body.get("reply_in_thread")),
        )

    async def _message_patch(self, request: Request) -> Any:
        body = await request.json()
        with self.state.lock:
            record = self.state.messages.get(request.path_params["message_id"])
            if record is None:
                return _error(CODE_NOT_FOUND, "message not found")
            if record["msg_type"] != "interactive":
                return _error(CODE_PARAM, "only cards can be patched")
            content = json.loads(body.get("content") or "{}")
            record["content"] = content
            record["body"] = {"content": body.get("content")}
            record.setdefault("patches", []).append(content)
            record["updated"] = True
        return {}

    async def _message_update(self, request: Request) -> Any:
        body = await request.json()
        with self.state.lock:
            record = self.state.messages.get(request.path_params["message_id"])
            if record is None:
                return _error(CODE_NOT_FOUND, "message not found")
            if body.get("msg_type") not in ("text", "post"):
                return _error(CODE_PARAM, "only text and post can be edited")
            record["msg_type"] = body["msg_type"]
            record["content"] = json.loads(body.get("content") or "{}")
            record["body"] = {"content": body.get("content")}
            record["updated"] = True
        return _message_view(record)

    async def _message_get(self, request: Request) -> Any:
        with self.state.lock:
            record = self.state.messages.get(request.path_params["message_id"])
            if record is None:
                return _error(CODE_NOT_FOUND, "message not found")
            return {"items": [_listing_view(record)]}

    async def _message_list(self, request: Request) -> Any:
        q = request.query_params
        kind, container = q.get("container_id_type"), q.get("container_id")
        with self.state.lock:
            records = [self.state.messages[mid] for mid in self.state.order]
        if kind == "chat":
            selected = [m for m in records if m["chat_id"] == container and not m.get("thread_id")]
            selected += [
                m
                for m in records
                if m["chat_id"] == container and m.get("thread_id") and not m.get("root_id")
            ]
            selected.sort(key=lambda m: m["create_time"])
        elif kind == "thread":
            selected = [m for m in records if m.get("thread_id") == container]
        else:
            return _error(CODE_PARAM, "container_id_type must be chat or thread")
        if q.get("sort_type") == "ByCreateTimeDesc":
            selected = list(reversed(selected))
        size = min(int(q.get("page_size", "20")), 50)
        start = int(q.get("page_token") or 0)
        page = selected[start : start + size]
        more = start + size < len(selected)
        return {
            "has_more": more,
            "page_token": str(start + size) if more else "",
            "items": [_listing_view(m) for m in page],
        }

    async def _reaction_create(self, request: Request) -> Any:
        body = await request.json()
        emoji = ((body.get("reaction_type") or {}).get("emoji_type")) or ""
        if not re.fullmatch(r"[A-Za-z_]{2,40}", emoji):
            return _error(231001, "reaction type is invalid")
        reaction_id = f"rc_{_hex(16)}"
        with self.state.lock:
            if request.path_params["message_id"] not in self.state.messages:
                return _error(CODE_NOT_FOUND, "message not found")
            self.state.reactions[reaction_id] = {
                "message_id": request.path_params["message_id"],
                "emoji_type": emoji,
                "deleted": False,
            }
        return {"reaction_id": reaction_id, "reaction_type": {"emoji_type": emoji}}

    async def _reaction_delete(self, request: Request) -> Any:
        with self.state.lock:
            reaction = self.state.reactions.get(request.path_params["reaction_id"])
            if reaction is None:
                return _error(231003, "reaction not found")
            reaction["deleted"] = True
        return {}

    async def _resource_get(self, request: Request) -> Response:
        key = f"{request.path_params['message_id']}/{request.path_params['file_key']}"
        with self.state.lock:
            found = self.state.resources.get(key)
        if found is None:
            return _error(234003, "resource not found")
        data, content_type, name = found
        headers = {"Content-Disposition": f'attachment; filename="{name}"'} if name else {}
        return Response(data, media_type=content_type, headers=headers)

    async def _image_create(self, request: Request) -> Any:
        form = await request.form(max_part_size=FILE_LIMIT * 2)
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            return _error(CODE_PARAM, "image is required")
        data = await upload.read()
        if len(data) > IMAGE_LIMIT:
            return _error(CODE_SIZE_LIMIT, "image size exceeds 10 MB")
        key = f"img_v3_{_hex(20)}"
        with self.state.lock:
            self.state.images[key] = data
        return {"image_key": key}

    async def _file_create(self, request: Request) -> Any:
        form = await request.form(max_part_size=FILE_LIMIT * 2)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return _error(CODE_PARAM, "file is required")
        data = await upload.read()
        if len(data) > FILE_LIMIT:
            return _error(CODE_SIZE_LIMIT, "file size exceeds 30 MB")
        key = f"file_v3_{_hex(20)}"
        with self.state.lock:
            self.state.files[key] = (str(form.get("file_name") or ""), data, str(form.get("file_type") or ""))
        return {"file_key": key}

    async def _card_create(self, request: Request) -> Any:
        body = await request.json()
        if body.get("type") != "card_json":
            return _error(CODE_PARAM, "type must be card_json")
        try:
            card = json.loads(body.get("data") or "")
        except json.JSONDecodeError:
            return _error(CODE_PARAM, "data is not JSON")
        card_id = f"card_{_hex(16)}"
        with self.state.lock:
            self.state.cards[card_id] = {
                "card_id": card_id,
                "card": card,
                "sequence": 0,
                "streaming_mode": bool((card.get("config") or {}).get("streaming_mode")),
                "elements": _elements(card),
                "history": [],
                "message_id": None,
            }
        return {"card_id": card_id}

    def _card_step(self, card_id: str, sequence: Any) -> dict[str, Any] | Response:
        card = self.state.cards.get(card_id)
        if card is None:
            return _error(CODE_NOT_FOUND, "card not found")
        if not isinstance(sequence, int) or sequence <= card["sequence"]:
            return _error(CODE_SEQUENCE, "sequence number must increase")
        card["sequence"] = sequence
        return card

    async def _card_content(self, request: Request) -> Any:
        body = await request.json()
        with self.state.lock:
            card = self._card_step(request.path_params["card_id"], body.get("sequence"))
            if isinstance(card, Response):
                return card
            element_id = request.path_params["element_id"]
            if element_id not in card["elements"]:
                return _error(300309, "element not found")
            if not card["streaming_mode"]:
                return _error(300311, "card is not in streaming mode")
            card["elements"][element_id] = body.get("content", "")
            card["history"].append(
                {
                    "op": "content",
                    "element_id": element_id,
                    "content": body.get("content", ""),
                    "sequence": body["sequence"],
                }
            )
        return {}

    async def _card_settings(self, request: Request) -> Any:
        body = await request.json()
        with self.state.lock:
            card = self._card_step(request.path_params["card_id"], body.get("sequence"))
            if isinstance(card, Response):
                return card
            settings = json.loads(body.get("settings") or "{}")
            config = settings.get("config") or {}
            if "streaming_mode" in config:
                card["streaming_mode"] = bool(config["streaming_mode"])
            card["history"].append({"op": "settings", "settings": settings, "sequence": body["sequence"]})
        return {}

    async def _card_update(self, request: Request) -> Any:
        body = await request.json()
        with self.state.lock:
            card = self._card_step(request.path_params["card_id"], body.get("sequence"))
            if isinstance(card, Response):
                return card
            entity = body.get("card") or {}
            new = json.loads(entity.get("data") or "{}")
            card["card"] = new
            card["elements"] = _elements(new)
            card["streaming_mode"] = bool((new.get("config") or {}).get("streaming_mode"))
            card["history"].append({"op": "update", "sequence": body["sequence"]})
        return {}

    # ---- contact ----------------------------------------------------------------------------------

    async def _user_get(self, request: Request) -> Any:
        if request.query_params.get("user_id_type") != "open_id":
            return _error(CODE_PARAM, "this fake looks users up by open_id only")
        with self.state.lock:
            user = self.state.users.get(request.path_params["user_id"])
        if user is None:
            return _error(CODE_PARAM, "user not found")
        return {"user": dict(user)}

    # ---- control endpoints ------------------------------------------------------------------------

    async def _c_info(self, _: Request) -> Response:
        with self.state.lock:
            info = {
                "app_id": self.app_id,
                "app_secret": self.app_secret,
                "bot_open_id": self.bot_open_id,
                "connections": len(self._conns),
                "connections_opened": self.state.connections_opened,
                "pings": self.state.pings,
                "pending": len(self.state.pending),
                "acked": list(self.state.acked),
            }
        return JSONResponse(info)

    async def _c_push_message(self, request: Request) -> Response:
        body = await request.json()
        result = await asyncio.to_thread(lambda: self.push_message(**body))
        return JSONResponse(result)

    async def _c_push_card_action(self, request: Request) -> Response:
        body = await request.json()
        event_id = await asyncio.to_thread(lambda: self.push_card_action(**body))
        return JSONResponse({"event_id": event_id})

    async def _c_add_resource(self, request: Request) -> Response:
        body = await request.json()
        self.add_resource(
            body["message_id"],
            body["file_key"],
            base64.b64decode(body["data_base64"]),
            body["content_type"],
            body.get("name", ""),
        )
        return JSONResponse({"ok": True})

    async def _c_fail(self, request: Request) -> Response:
        body = await request.json()
        self.fail(
            body["op"],
            int(body["code"]),
            status=int(body.get("status", 400)),
            times=int(body.get("times", 1)),
        )
        return JSONResponse({"ok": True})

    async def _c_delay(self, request: Request) -> Response:
        body = await request.json()
        self.delay(body["op"], float(body["seconds"]), times=int(body.get("times", 1)))
        return JSONResponse({"ok": True})

    async def _c_release(self, _: Request) -> Response:
        self.release()
        return JSONResponse({"ok": True})

    async def _c_set_user(self, request: Request) -> Response:
        body = await request.json()
        self.set_user(body["open_id"], body["name"])
        return JSONResponse({"ok": True})

    async def _c_drop(self, _: Request) -> Response:
        return JSONResponse({"dropped": await self._close_all()})

    async def _c_messages(self, request: Request) -> Response:
        return JSONResponse(self.bot_messages(request.query_params.get("chat_id")))

    async def _c_cards(self, _: Request) -> Response:
        return JSONResponse(self.cards())

    async def _c_calls(self, request: Request) -> Response:
        return JSONResponse(self.calls(request.query_params.get("op")))


# ---- helpers -------------------------------------------------------------------------------------


def _ok(data: Any) -> Response:
    return JSONResponse({"code": 0, "msg": "success", "data": data})


def _error(code: int, msg: str, status: int = 400) -> Response:
    return JSONResponse({"code": code, "msg": msg, "error": {"log_id": _hex(20)}}, status_code=status)


def _message_view(record: dict[str, Any]) -> dict[str, Any]:
    return _listing_view(record)


def _listing_view(record: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in record.items() if k not in ("content", "patches")}
    view["create_time"] = str(record["create_time"])
    return view


def _elements(card: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for element in (card.get("body") or {}).get("elements") or []:
        if isinstance(element, dict) and element.get("element_id"):
            found[element["element_id"]] = str(element.get("content", ""))
    return found


def _validate_content(msg_type: str, content: Any, state: FeishuState) -> str | None:
    if not isinstance(content, dict):
        return "content must be a JSON object"
    if msg_type == "text":
        return None if isinstance(content.get("text"), str) else "text content needs text"
    if msg_type == "post":
        return None if any(isinstance(v, dict) and "content" in v for v in content.values()) else "bad post"
    if msg_type == "interactive":
        if content.get("type") == "card":
            card_id = (content.get("data") or {}).get("card_id")
            return None if card_id in state.cards else "unknown card_id"
        return None if "body" in content or "elements" in content else "bad card"
    if msg_type == "image":
        return None if content.get("image_key") in state.images else "unknown image_key"
    if msg_type == "file":
        return None if content.get("file_key") in state.files else "unknown file_key"
    return f"unsupported msg_type {msg_type}"


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description="fake Feishu open platform on 127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--app-id", default=None)
    parser.add_argument("--app-secret", default="fake-secret")
    parser.add_argument("--bot-open-id", default=None)
    args = parser.parse_args()
    fake = FakeFeishu(
        port=args.port, app_id=args.app_id, app_secret=args.app_secret, bot_open_id=args.bot_open_id
    )
    fake.start()
    print(json.dumps({"url": fake.url, "app_id": fake.app_id, "bot_open_id": fake.bot_open_id}), flush=True)
    stop = threading.Event()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    fake.stop()


if __name__ == "__main__":
    main()
