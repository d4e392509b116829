"""Who may call the co-author endpoints, and for which session.

- the session capability token (`Authorization: Bearer` or `x-broker-session-token`): that
  session only;
- the commit hook's narrow token (libs.hook_token), where the route allows it: that session only;
- the admin rule of the admin API (the admin token or the admin page's cookie, never the
  network a caller comes from), with an explicit `sessionKey`.

A `sessionKey` that names another session than the token's is 403 `session_mismatch`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import Request

from codex_broker.http_api.admin import gate as admin_gate
from codex_broker.http_api.auth import session_token, token_sha256
from codex_broker.http_api.context import AppContext
from codex_broker.http_api.errors import ApiError
from codex_broker.libs.contracts import PLATFORMS, Coordinates
from codex_broker.libs.hook_token import session_of_hook_token

Via = Literal["session", "hook", "admin"]
MAX_SESSION_KEY = 800


@dataclass(frozen=True)
class Caller:
    session_key: str
    via: Via


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def requested_session(data: dict[str, Any]) -> str | None:
    value = data.get("sessionKey", data.get("session_key"))
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_SESSION_KEY or value.split(":", 1)[0] not in PLATFORMS:
        raise ApiError(400, "invalid_session_key", field="sessionKey")
    return value


async def _session_of_capability(ctx: AppContext, token: str) -> str | None:
    digest = token_sha256(token)
    owner = _text(await ctx.redis.get(ctx.keys.session_by_token(digest)))
    if owner is None:
        return None
    current = _text(await ctx.redis.get(ctx.keys.session_token_hash(owner)))
    if current is None or not hmac.compare_digest(current, digest):
        return None
    return owner


async def authorize(
    ctx: AppContext, request: Request, data: dict[str, Any], *, allow_hook: bool, allow_admin: bool
) -> Caller:
    requested = requested_session(data)
    token = session_token(request)
    if token is not None:
        found: tuple[str, Via] | None = None
        owner = await _session_of_capability(ctx, token)
        if owner is not None:
            found = (owner, "session")
        elif allow_hook:
            hook_owner = await session_of_hook_token(ctx.redis, ctx.keys, token)
            if hook_owner is not None:
                found = (hook_owner, "hook")
        if found is not None:
            if requested is not None and requested != found[0]:
                raise ApiError(403, "session_mismatch")
            request.state.session_key = found[0]
            return Caller(session_key=found[0], via=found[1])
        if not (allow_admin and requested is not None):
            raise ApiError(401, "invalid_session_token")
    if not allow_admin or requested is None:
        raise ApiError(401, "session_token_required")
    admin_gate.require_admin(request, ctx.settings)
    if not await ctx.redis.exists(ctx.keys.session(requested)):
        raise ApiError(404, "unknown_session")
    request.state.session_key = requested
    return Caller(session_key=requested, via="admin")


async def coordinates(ctx: AppContext, session_key: str) -> Coordinates:
    """The session's thread: from its hash, else from the key itself (platform:conv:root)."""
    names = ["platform", "conversation_id", "root_message_id"]
    fields = await ctx.redis.hmget(ctx.keys.session(session_key), names)  # type: ignore[misc]
    platform, conversation, root = (_text(v) for v in fields)
    if not (platform and conversation and root):
        parts = session_key.split(":", 2)
        if len(parts) != 3:
            raise ApiError(404, "unknown_session")
        platform, conversation, root = parts
    if platform not in PLATFORMS or not conversation or not root:
        raise ApiError(404, "unknown_session")
    return Coordinates(platform=platform, conversation_id=conversation, root_message_id=root)  # type: ignore[arg-type]
