"""The address Codex's commands use: the same app, minus what no session may reach.

Sealed sessions reach the network only through Codex's proxy, whose allow-list names hosts,
not ports. Giving the http-api a loopback address of its own for sessions (SESSION_API_HOST,
`up`: 127.0.0.42) lets that list name it without admitting Redis, the metrics ports or anything
else bound to 127.0.0.1. Requests arriving there for the admin API or the admin page are refused
before any handler runs, whatever token they carry: an admin never needs that address.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from codex_broker.http_api.errors import ApiError
from codex_broker.http_api.middleware import send_json

ADMIN_PREFIXES = ("/admin",)
WILDCARDS = ("0.0.0.0", "::", "")


def listen_hosts(http_api_host: str, session_api_host: str | None) -> list[str]:
    """Bind addresses: HTTP_API_HOST, plus SESSION_API_HOST unless it is covered already."""
    hosts = [http_api_host]
    if session_api_host and session_api_host != http_api_host and http_api_host not in WILDCARDS:
        hosts.append(session_api_host)
    return hosts


def is_admin_path(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in ADMIN_PREFIXES)


class SessionListenerGuard:
    """Refuses admin paths on requests that came in on the session address."""

    def __init__(self, app: ASGIApp, session_host: str | None) -> None:
        self.app = app
        self.session_host = session_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.session_host and scope["type"] == "http" and is_admin_path(scope.get("path", "")):
            server = scope.get("server") or ("", 0)
            if server[0] == self.session_host:
                error = ApiError(403, "admin_not_on_session_address", field="path")
                await send_json(send, 403, error.body())
                return
        await self.app(scope, receive, send)
