"""The admin access rule applied to a request (the rules themselves are pure, in `access`)."""

from __future__ import annotations

import time

from starlette.requests import Request

from codex_broker.http_api.admin import access
from codex_broker.http_api.config import Settings
from codex_broker.http_api.errors import ApiError


def expected_token(settings: Settings) -> str | None:
    token = settings.broker_admin_token
    if token is None:
        return None
    return token.get_secret_value() or None


def hosts(settings: Settings) -> frozenset[str]:
    return access.allowed_hosts(settings.admin_allowed_hosts, settings.http_api_host)


def facts(request: Request) -> access.RequestFacts:
    return access.RequestFacts(
        method=request.method,
        headers=request.headers,
        cookie=request.cookies.get(access.COOKIE_NAME),
        now_s=int(time.time()),
    )


def raise_for(refusal: access.Refusal | None) -> None:
    if refusal is not None:
        raise ApiError(refusal.status, refusal.code)


def require_admin(request: Request, settings: Settings) -> None:
    """401 without the token or a valid cookie; 403/415 for a cookie on a foreign Host, a
    cross-origin or non-JSON state-changing request."""
    raise_for(access.decide(facts(request), expected_token(settings), hosts(settings)))
