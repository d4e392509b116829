"""The admin page's login: the admin token, or a one-time code `codex-broker up` printed, turns
into an HttpOnly SameSite=Strict cookie scoped to /admin.

Neither secret travels in a URL the server sees: `up` puts the code in a fragment (`#code=`),
which the page's script reads and POSTs here; the handler records no input, so the request log
holds neither.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from redis import exceptions as redis_errors
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from codex_broker.http_api.admin import access, gate, validation
from codex_broker.http_api.context import AppContext
from codex_broker.http_api.errors import ApiError

log = logging.getLogger(__name__)

MAX_LOGIN_BODY = 4096
MAX_SECRET_CHARS = 512
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _secret(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_SECRET_CHARS:
        raise ApiError(400, "invalid_login", field=name)
    return value.strip()


async def _redeem(ctx: AppContext, code: str) -> bool:
    """A code works once (GETDEL), on whichever replica sees it first."""
    digest = hashlib.sha256(code.encode()).hexdigest()
    try:
        return await ctx.redis.getdel(ctx.keys.admin_login_code(digest)) is not None
    except redis_errors.RedisError:
        raise ApiError(503, "redis_unavailable") from None


def _set_cookie(response: Response, request: Request, value: str, max_age: int) -> None:
    response.set_cookie(
        access.COOKIE_NAME,
        value,
        max_age=max_age,
        path=access.COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _checked_shape(ctx: AppContext, request: Request) -> None:
    """What a cookie-authenticated write gets: a known Host, a same-origin JSON request."""
    facts = gate.facts(request)
    if access.host_name(facts.headers.get("host")) not in gate.hosts(ctx.settings):
        gate.raise_for(access.HOST_REFUSED)
    gate.raise_for(access.shape_refusal(facts))


def routes(ctx: AppContext) -> list[BaseRoute]:
    async def login(request: Request) -> Response:
        _checked_shape(ctx, request)
        raw = await request.body()
        if len(raw) > MAX_LOGIN_BODY:
            raise ApiError(413, "payload_too_large")
        body = validation.body_object(raw)
        token, code = _secret(body, "token"), _secret(body, "code")
        if (token is None) == (code is None):
            raise ApiError(400, "provide_token_or_code", field="token")
        expected = gate.expected_token(ctx.settings)
        if expected is None:  # no admin token configured: the admin API is closed
            raise ApiError(401, "admin_auth_required")
        accepted = access.token_matches(token, expected) if token else await _redeem(ctx, code or "")
        if not accepted:
            log.warning("admin login refused", extra={"via": "token" if token else "code"})
            raise ApiError(401, "admin_login_refused")
        ttl = ctx.settings.admin_session_ttl_s
        now = int(time.time())
        response = JSONResponse({"ok": True, "expires_at_ms": (now + ttl) * 1000}, headers=HEADERS)
        _set_cookie(response, request, access.mint_cookie(expected, now, ttl), ttl)
        log.info("admin logged in", extra={"via": "token" if token else "code"})
        return response

    async def logout(request: Request) -> Response:
        _checked_shape(ctx, request)
        response = JSONResponse({"ok": True}, headers=HEADERS)
        _set_cookie(response, request, "", 0)
        return response

    return [
        Route("/admin/api/login", login, methods=["POST"]),
        Route("/admin/api/logout", logout, methods=["POST"]),
    ]
