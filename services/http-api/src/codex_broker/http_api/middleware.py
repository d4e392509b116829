"""ASGI middleware: request body limit (413) and one redacted log line per request."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codex_broker.http_api import metrics
from codex_broker.http_api.errors import ApiError
from codex_broker.http_api.redaction import redact_input
from codex_broker.libs.logs import Redactor
from codex_broker.libs.rawlog import RawLog

log = logging.getLogger("codex_broker.http_api.requests")


class BodyLimitMiddleware:
    """Refuses bodies over `max_bytes`: by Content-Length up front, else while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await send_json(send, 413, ApiError(413, "payload_too_large").body())
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise ApiError(413, "payload_too_large")
            return message

        await self.app(scope, limited_receive, send)


class RequestLogMiddleware:
    """Logs method, route, status, duration and the redacted input a handler recorded."""

    def __init__(self, app: ASGIApp, redactor: Redactor, raw_log: RawLog | None = None) -> None:
        self.app = app
        self.redactor = redactor
        # LOG_RAW_HTTP_REQUESTS: the full input too (secrets and inline file contents still removed)
        self.raw_log = raw_log if raw_log is not None and raw_log.enabled else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture_status)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = _route_label(scope)
        metrics.REQUESTS.labels(route=route, method=scope["method"], status=str(status)).inc()
        metrics.REQUEST_SECONDS.labels(route=route).observe(seconds)
        if route in ("/healthz", "/readyz", "/metrics"):
            return
        state: dict[str, Any] = scope.get("state") or {}
        extra: dict[str, Any] = {
            "method": scope["method"],
            "path": scope.get("path", ""),
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
        }
        if "error_code" in state:
            extra["error"] = state["error_code"]
        if "input" in state:
            extra["input"] = self.redactor.value(redact_input(state["input"]))
        for key in ("session_key", "job_id"):
            if key in state:
                extra[key] = state[key]
        log.info("http request", extra=extra)
        if self.raw_log is not None:
            self.raw_log.write({**extra, "input": state.get("input")}, session_key=state.get("session_key"))


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "unmatched"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
