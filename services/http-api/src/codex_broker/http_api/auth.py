"""Session capability tokens: a token opens exactly one session's coordinates.

The orchestrator stores `session_by_token(sha256) = session key` and `session_token_hash(key) =
sha256`. Both are read in one round trip; the second catches a token rotated by /new whose
reverse mapping was not yet removed.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from codex_broker.http_api.context import AppContext
from codex_broker.http_api.errors import ApiError

SESSION_HEADER = "x-broker-session-token"


def bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def session_token(request: Request) -> str | None:
    token = request.headers.get(SESSION_HEADER, "").strip() or bearer(request)
    return token or None


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


async def authorize_session(ctx: AppContext, request: Request, session_key: str) -> str:
    """The session key when the request's token belongs to `session_key`; else 401/403."""
    token = session_token(request)
    if token is None:
        raise ApiError(401, "session_token_required")
    digest = token_sha256(token)
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.get(ctx.keys.session_by_token(digest))
    pipe.get(ctx.keys.session_token_hash(session_key))
    owner_raw, current_raw = await pipe.execute()
    owner, current = _text(owner_raw), _text(current_raw)
    if owner is None:
        raise ApiError(401, "invalid_session_token")
    if owner != session_key:
        raise ApiError(403, "session_mismatch")
    if current is None or not hmac.compare_digest(current, digest):
        raise ApiError(401, "invalid_session_token")
    request.state.session_key = session_key
    return session_key
