"""The session address: which hosts are bound and what is refused there (pure)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from codex_broker.http_api.session_listener import SessionListenerGuard, listen_hosts


def test_the_session_address_is_bound_beside_a_specific_host_only() -> None:
    assert listen_hosts("127.0.0.1", "127.0.0.42") == ["127.0.0.1", "127.0.0.42"]
    assert listen_hosts("127.0.0.1", None) == ["127.0.0.1"]
    assert listen_hosts("127.0.0.42", "127.0.0.42") == ["127.0.0.42"]
    assert listen_hosts("0.0.0.0", "127.0.0.42") == ["0.0.0.0"]  # the wildcard covers it already


def call(guard: SessionListenerGuard, path: str, server_host: str) -> tuple[int, dict[str, Any] | None]:
    sent: list[dict[str, Any]] = []
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    guard.app = app
    scope = {"type": "http", "path": path, "server": (server_host, 3000), "headers": []}
    asyncio.run(guard(scope, receive, send))
    if reached:
        return 0, None
    return sent[0]["status"], json.loads(sent[1]["body"])


def test_admin_paths_are_refused_on_the_session_address_only() -> None:
    guard = SessionListenerGuard(app=None, session_host="127.0.0.42")  # type: ignore[arg-type]
    for path in ("/admin", "/admin/api/sessions", "/admin/"):
        status, body = call(guard, path, "127.0.0.42")
        assert status == 403 and body == {
            "ok": False,
            "error": "admin_not_on_session_address",
            "field": "path",
        }
        assert call(guard, path, "127.0.0.1") == (0, None)
    for path in ("/chat/post-message", "/administrator", "/jobs/register"):
        assert call(guard, path, "127.0.0.42") == (0, None)


def test_without_a_session_address_nothing_is_refused() -> None:
    guard = SessionListenerGuard(app=None, session_host=None)  # type: ignore[arg-type]
    assert call(guard, "/admin/api/sessions", "127.0.0.42") == (0, None)
