"""The web chat's HTTP side: the page, sign-in, threads, sends, clicks, files, and the SSE feed.

A send is answered 200 only once its InboundEvent is on the inbound stream (persist before
ack): a browser that got an error resends with the same client id, and that is one event.
Every error is a 4xx (or 503 when Redis is away) with a stable `error` code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from redis import exceptions as redis_errors
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from codex_broker.ingress_web import auth, normalize
from codex_broker.ingress_web.files import FileStore, StoredFile, TooLarge
from codex_broker.ingress_web.login_codes import LoginCodes
from codex_broker.ingress_web.render import message_record, thread_title, visible_to
from codex_broker.ingress_web.thread_store import ThreadStore
from codex_broker.libs.contracts import InboundEvent
from codex_broker.libs.ingress_kit import metrics
from codex_broker.libs.ingress_kit.inbound import InboundStore

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
ASSETS = {"app.js": "text/javascript", "app.css": "text/css"}
MAX_JSON_BYTES = 256 * 1024
MAX_FILES_PER_MESSAGE = 10
FEED_BLOCK_MS = 5000
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
API_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


class WebError(Exception):
    def __init__(self, status: int, error: str, **detail: Any) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail


@dataclass
class WebContext:
    threads: ThreadStore
    files: FileStore
    inbound: InboundStore
    cookie_key: bytes
    admin_token: str | None
    public_host: str | None
    cookie_secure: bool
    session_max_age_s: int
    max_upload_bytes: int
    stop: asyncio.Event
    login_codes: LoginCodes | None = None


def _json(data: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=API_HEADERS)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_JSON_BYTES:
        raise WebError(413, "payload_too_large")
    try:
        value = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise WebError(400, "invalid_json") from None
    if not isinstance(value, dict):
        raise WebError(400, "invalid_json")
    return value


def _text_field(data: dict[str, Any], name: str, *, max_chars: int, required: bool = True) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise WebError(400, "invalid_field", field=name)
    if required and not value.strip():
        raise WebError(400, "missing_field", field=name)
    if len(value) > max_chars:
        raise WebError(400, "field_too_long", field=name)
    return value


def _client_id(data: dict[str, Any]) -> str:
    value = data.get("client_id")
    if not isinstance(value, str) or not normalize.CLIENT_ID.fullmatch(value):
        raise WebError(400, "invalid_field", field="client_id")
    return value


def _thread_id(request: Request) -> str:
    root = request.path_params["thread"]
    if not normalize.THREAD_ID.fullmatch(root):
        raise WebError(404, "thread_not_found")
    return str(root)


class WebApp:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    # ---- guards ------------------------------------------------------------------------------

    def user_of(self, request: Request) -> str:
        user = auth.verify(
            self.ctx.cookie_key,
            request.cookies.get(auth.COOKIE_NAME),
            now_s=int(time.time()),
            max_age_s=self.ctx.session_max_age_s,
        )
        if user is None:
            raise WebError(401, "sign_in_required")
        return user

    def check_request(self, request: Request) -> None:
        host = request.headers.get("host", "")
        if not auth.host_allowed(
            host, token_configured=bool(self.ctx.admin_token), public_host=self.ctx.public_host
        ):
            raise WebError(421, "host_not_allowed")
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            if origin is not None and urlparse(origin).netloc.lower() != host.lower():
                raise WebError(403, "cross_origin")

    def route(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            try:
                self.check_request(request)
                return await handler(request)
            except WebError as exc:
                return _json({"ok": False, "error": exc.error, **exc.detail}, exc.status)
            except redis_errors.RedisError as exc:
                log.warning("web request: redis error", extra={"error": type(exc).__name__})
                return _json({"ok": False, "error": "redis_unavailable"}, 503)

        return wrapped

    # ---- page --------------------------------------------------------------------------------

    async def page(self, _: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            raise WebError(404, "not_found")
        return FileResponse(STATIC_DIR / name, media_type=ASSETS[name], headers=PAGE_HEADERS)

    # ---- sign-in -----------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        data = await _body(request)
        name = _text_field(data, "name", max_chars=40).strip()
        if not auth.valid_name(name):
            raise WebError(400, "invalid_name", field="name")
        token = _text_field(data, "token", max_chars=512, required=False).strip()
        code = _text_field(data, "code", max_chars=128, required=False).strip()
        client = request.client.host if request.client else None
        verdict = auth.decide_sign_in(self.ctx.admin_token, token, client)
        if code and verdict is not auth.SignIn.TOKEN_UNSET:
            # `up`'s one-time code (libs keys.admin_login_code): redeemed once, then worthless
            if self.ctx.login_codes is None or not await self.ctx.login_codes.redeem(code):
                raise WebError(401, "bad_code", field="code")
            verdict = auth.SignIn.ALLOWED
        if verdict is auth.SignIn.BAD_TOKEN:
            raise WebError(401, "bad_token")
        if verdict is auth.SignIn.TOKEN_UNSET:
            raise WebError(403, "admin_token_unset", field="token")
        response = _json({"ok": True, "user": name})
        response.set_cookie(
            auth.COOKIE_NAME,
            auth.sign(self.ctx.cookie_key, name, int(time.time())),
            max_age=self.ctx.session_max_age_s,
            httponly=True,
            samesite="strict",
            secure=self.ctx.cookie_secure,
            path="/",
        )
        return response

    async def logout(self, _: Request) -> Response:
        response = _json({"ok": True})
        response.delete_cookie(auth.COOKIE_NAME, path="/", httponly=True, samesite="strict")
        return response

    async def me(self, request: Request) -> Response:
        required = bool(self.ctx.admin_token)
        try:
            user = self.user_of(request)
        except WebError as exc:
            raise WebError(401, exc.error, token_required=required) from None
        return _json({"ok": True, "user": user, "token_required": required})

    # ---- threads -----------------------------------------------------------------------------

    async def list_threads(self, request: Request) -> Response:
        self.user_of(request)
        position = await self.ctx.threads.feed_position()
        return _json({"ok": True, "threads": await self.ctx.threads.threads(), "feed": position})

    async def get_thread(self, request: Request) -> Response:
        user, root = self.user_of(request), _thread_id(request)
        position = await self.ctx.threads.feed_position()  # read first: later changes come by the feed
        meta = await self.ctx.threads.thread(root)
        if meta is None:
            raise WebError(404, "thread_not_found")
        messages = [m for m in await self.ctx.threads.messages(root) if visible_to(m, user)]
        return _json({"ok": True, "thread": meta, "messages": messages, "feed": position})

    async def new_thread(self, request: Request) -> Response:
        user, data = self.user_of(request), await _body(request)
        text, files, client_id = await self._send_fields(data, user)
        root, fresh = await self.ctx.threads.message_id_for_client(client_id)
        if fresh or await self.ctx.threads.thread(root) is None:
            await self.ctx.threads.create_thread(
                root, title=thread_title(text or files[0].name), created_by=user
            )
        return await self._send(user, root, root, client_id, text, files)

    async def post_message(self, request: Request) -> Response:
        user, root, data = self.user_of(request), _thread_id(request), await _body(request)
        if await self.ctx.threads.thread(root) is None:
            raise WebError(404, "thread_not_found")
        text, files, client_id = await self._send_fields(data, user)
        message_id, _ = await self.ctx.threads.message_id_for_client(client_id)
        return await self._send(user, root, message_id, client_id, text, files)

    async def _send_fields(self, data: dict[str, Any], user: str) -> tuple[str, list[StoredFile], str]:
        client_id = _client_id(data)
        text = _text_field(data, "text", max_chars=normalize.MAX_TEXT_CHARS, required=False)
        ids = data.get("file_ids", [])
        if (
            not isinstance(ids, list)
            or len(ids) > MAX_FILES_PER_MESSAGE
            or not all(isinstance(i, str) for i in ids)
        ):
            raise WebError(400, "invalid_field", field="file_ids")
        files = []
        for file_id in ids:
            found = await self.ctx.files.find(file_id)
            if found is None:
                raise WebError(400, "file_not_found", field="file_ids")
            files.append(found)
        if not text.strip() and not files:
            raise WebError(400, "missing_field", field="text")
        return text, files, client_id

    async def _send(
        self, user: str, root: str, message_id: str, client_id: str, text: str, files: list[StoredFile]
    ) -> Response:
        event = normalize.message_event(
            root=root,
            message_id=message_id,
            client_id=client_id,
            user=user,
            text=text,
            attachments=[f.attachment() for f in files],
        )
        await self._persist(event)
        record = message_record(
            message_id=message_id,
            thread=root,
            author_id=user,
            author_name=user,
            is_bot=False,
            text=text,
            files=[f.public() for f in files],
        )
        await self.ctx.threads.put(record)
        return _json({"ok": True, "thread": root, "message": record})

    async def _persist(self, event: InboundEvent) -> None:
        try:
            stored = await self.ctx.inbound.persist(event)
        except Exception:
            metrics.INBOUND.labels(platform="web", kind=event.kind, result="failed").inc()
            raise
        metrics.INBOUND.labels(
            platform="web", kind=event.kind, result="persisted" if stored else "duplicate"
        ).inc()

    async def click(self, request: Request) -> Response:
        user, root, data = self.user_of(request), _thread_id(request), await _body(request)
        action = data.get("action")
        if action not in normalize.ACTIONS:
            raise WebError(400, "invalid_field", field="action", allowed=list(normalize.ACTIONS))
        value = _text_field(data, "value", max_chars=512)
        message_id = _text_field(data, "message_id", max_chars=64, required=False)
        event = normalize.action_event(
            root=root,
            client_id=_client_id(data),
            user=user,
            action=str(action),
            value=value,
            message_id=message_id,
        )
        await self._persist(event)
        return _json({"ok": True})

    # ---- files -------------------------------------------------------------------------------

    async def upload(self, request: Request) -> Response:
        user = self.user_of(request)
        declared = int(request.headers.get("content-length") or 0)
        if declared > self.ctx.max_upload_bytes + 64 * 1024:
            raise WebError(413, "file_too_large")
        try:
            form = await request.form(max_files=1, max_fields=4, max_part_size=64 * 1024)
        except Exception:
            raise WebError(400, "invalid_form") from None
        try:
            part = form.get("file")
            if not isinstance(part, UploadFile):
                raise WebError(400, "missing_field", field="file")
            try:
                stored = await asyncio.to_thread(
                    self.ctx.files.save_stream,
                    "uploads",
                    part.filename or "file",
                    part.file,
                    self.ctx.max_upload_bytes,
                )
            except TooLarge:
                raise WebError(413, "file_too_large") from None
            if part.content_type and part.content_type != "application/octet-stream":
                stored = StoredFile(stored.id, stored.name, part.content_type[:100], stored.size, stored.path)
        finally:
            await form.close()
        await self.ctx.files.remember(stored, owner=user, thread=None)
        return _json({"ok": True, "file": stored.public()})

    async def download(self, request: Request) -> Response:
        self.user_of(request)
        stored = await self.ctx.files.find(str(request.path_params["file_id"]))
        if stored is None:
            raise WebError(404, "file_not_found")
        return FileResponse(
            stored.path,
            media_type=stored.mimetype
            if stored.mimetype.startswith("image/")
            else "application/octet-stream",
            filename=stored.name,
            content_disposition_type="attachment",
            headers={**API_HEADERS, "Content-Security-Policy": "default-src 'none'; sandbox"},
        )

    # ---- the feed (SSE) ------------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        user = self.user_of(request)
        since = request.headers.get("last-event-id") or request.query_params.get("since") or "$"
        if since != "$" and not _valid_stream_id(since):
            raise WebError(400, "invalid_field", field="since")
        if since == "$":
            since = await self.ctx.threads.feed_position()
        return StreamingResponse(
            self._feed(request, user, since),
            media_type="text/event-stream",
            headers={**API_HEADERS, "X-Accel-Buffering": "no"},
        )

    async def _feed(self, request: Request, user: str, since: str) -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        while not self.ctx.stop.is_set() and not await request.is_disconnected():
            try:
                entries = await self.ctx.threads.read_feed(since, block_ms=FEED_BLOCK_MS)
            except redis_errors.RedisError:
                await asyncio.sleep(1)  # the browser's EventSource keeps the position; so do we
                continue
            if not entries:
                yield ": ping\n\n"
                continue
            for entry_id, body in entries:
                since = entry_id
                message = body.get("message")
                if message is not None and not visible_to(message, user):
                    continue
                yield f"id: {entry_id}\ndata: {json.dumps(body)}\n\n"


def _valid_stream_id(value: str) -> bool:
    left, sep, right = value.partition("-")
    return bool(sep) and left.isdigit() and right.isdigit() and len(value) < 40


def create_app(ctx: WebContext) -> Starlette:
    web = WebApp(ctx)
    r = web.route
    routes = [
        Route("/", r(web.page)),
        Route("/static/{name}", r(web.asset)),
        Route("/api/login", r(web.login), methods=["POST"]),
        Route("/api/logout", r(web.logout), methods=["POST"]),
        Route("/api/me", r(web.me)),
        Route("/api/threads", r(web.list_threads)),
        Route("/api/threads", r(web.new_thread), methods=["POST"]),
        Route("/api/threads/{thread}", r(web.get_thread)),
        Route("/api/threads/{thread}/messages", r(web.post_message), methods=["POST"]),
        Route("/api/threads/{thread}/actions", r(web.click), methods=["POST"]),
        Route("/api/files", r(web.upload), methods=["POST"]),
        Route("/api/files/{file_id}", r(web.download)),
        Route("/api/events", r(web.events)),
    ]
    return Starlette(routes=routes)
