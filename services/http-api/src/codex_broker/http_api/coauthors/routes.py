"""Co-author HTTP routes: resolve (the commit hook), status and configure (admin page, Codex).

- `POST /git/coauthors/resolve` — the session's `Co-authored-by:` trailers; participants without
  a GitHub author are listed as unresolved and, unless the thread allowed commits without them,
  prompted in the thread (5-minute cooldown per person). Session token or hook token.
- `GET /git/coauthors/status` — participants, their mappings, the thread's answer.
- `POST /git/coauthors/configure` — store the thread's answer (`excluded` or `credit`,
  `allowMissing`). Session token or admin.

Errors follow the chat API: `{ok: false, error, field?}`; 400 / 401 / 403 / 404; Redis down 503.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis import exceptions as redis_errors
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from codex_broker.http_api import outbound
from codex_broker.http_api.coauthors import metrics
from codex_broker.http_api.coauthors.access import Caller, authorize, coordinates
from codex_broker.http_api.coauthors.message import with_trailers
from codex_broker.http_api.coauthors.openapi_paths import OPENAPI_PATHS
from codex_broker.http_api.coauthors.prompts import prompt_unresolved
from codex_broker.http_api.context import AppContext
from codex_broker.http_api.errors import ApiError
from codex_broker.http_api.inputs import read_input
from codex_broker.libs.authors import CoauthorConfig, Resolution, load_config, load_resolution, store_config

__all__ = ["OPENAPI_PATHS", "coauthor_routes"]

log = logging.getLogger(__name__)

MAX_MESSAGE = 64 * 1024
MAX_IDS = 200
HEADERS = {"Cache-Control": "no-store"}

Handler = Callable[[Request], Awaitable[Response]]


def _json(data: dict[str, Any]) -> JSONResponse:
    return JSONResponse(data, headers=HEADERS)


def _redis_guard(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except redis_errors.RedisError as exc:
            log.warning("co-author request: redis error", extra={"error": type(exc).__name__})
            raise ApiError(503, "redis_unavailable") from None

    return wrapper


def _bool(data: dict[str, Any], name: str, alias: str, default: bool | None) -> bool | None:
    value = data.get(name, data.get(alias))
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ApiError(400, f"invalid_{alias}", field=name)


def _ids(data: dict[str, Any], name: str) -> list[str] | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, str):  # form bodies: comma-separated
        value = [v.strip() for v in value.split(",") if v.strip()]
    if (
        not isinstance(value, list)
        or len(value) > MAX_IDS
        or not all(isinstance(v, str) and 0 < len(v) <= 256 for v in value)
    ):
        raise ApiError(400, f"invalid_{name}", field=name)
    return value


def _person(user_id: str, display_name: str) -> dict[str, Any]:
    return {"userId": user_id, "displayName": display_name}


def resolution_json(caller: Caller, platform: str, resolution: Resolution) -> dict[str, Any]:
    return {
        "ok": True,
        "sessionKey": caller.session_key,
        "platform": platform,
        "trailers": resolution.trailers,
        "coauthors": [
            {"userId": uid, "name": a.name, "email": a.email, "source": a.source}
            for uid, a in resolution.coauthors
        ],
        "unresolved": [_person(p.user_id, p.display_name) for p in resolution.unresolved],
        "config": resolution.config.to_json(),
        "answered": resolution.config.answered,
    }


class CoauthorApi:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def _input(self, request: Request) -> dict[str, Any]:
        return await read_input(request, max_part_bytes=self.ctx.settings.max_body_bytes)

    async def resolve(self, request: Request) -> Response:
        data = await self._input(request)
        caller = await authorize(self.ctx, request, data, allow_hook=True, allow_admin=True)
        prompt = _bool(data, "prompt", "prompt", True)
        message = data.get("message")
        if message is not None and (not isinstance(message, str) or len(message) > MAX_MESSAGE):
            raise ApiError(400, "invalid_message", field="message")
        coords = await coordinates(self.ctx, caller.session_key)
        resolution = await load_resolution(self.ctx.redis, self.ctx.keys, coords.platform, caller.session_key)
        prompted = await prompt_unresolved(self.ctx, coords, resolution.to_prompt) if prompt else []
        body = resolution_json(caller, coords.platform, resolution)
        body["prompted"] = prompted
        if message is not None:
            body["message"] = with_trailers(message, resolution.trailers)
        outcome = "unresolved" if resolution.unresolved else ("trailers" if resolution.coauthors else "none")
        metrics.RESOLVES.labels(caller=caller.via, outcome=outcome).inc()
        summary = (
            f"commit co-authors: {len(resolution.coauthors)} credited, "
            f"{len(resolution.unresolved)} unresolved"
        )
        if prompted:
            summary += f", {len(prompted)} prompted"
        await outbound.add_timeline(self.ctx, caller.session_key, "coauthors", summary)
        return _json(body)

    async def status(self, request: Request) -> Response:
        data = await self._input(request)
        caller = await authorize(self.ctx, request, data, allow_hook=True, allow_admin=True)
        coords = await coordinates(self.ctx, caller.session_key)
        resolution = await load_resolution(self.ctx.redis, self.ctx.keys, coords.platform, caller.session_key)
        body = resolution_json(caller, coords.platform, resolution)
        body["participants"] = [
            {
                **_person(p.user_id, p.display_name),
                "excluded": p.excluded,
                "author": (
                    {"name": p.author.name, "email": p.author.email, "source": p.author.source}
                    if p.author
                    else None
                ),
            }
            for p in resolution.participants
        ]
        return _json(body)

    async def configure(self, request: Request) -> Response:
        data = await self._input(request)
        caller = await authorize(self.ctx, request, data, allow_hook=False, allow_admin=True)
        excluded, credit = _ids(data, "excluded"), _ids(data, "credit")
        if excluded is not None and credit is not None:
            raise ApiError(400, "provide_at_most_one", field="credit", allowed=["excluded", "credit"])
        current = await load_config(self.ctx.redis, self.ctx.keys, caller.session_key)
        allow_missing = _bool(data, "allowMissing", "allow_missing", current.allow_missing)
        coords = await coordinates(self.ctx, caller.session_key)
        if credit is not None:
            participants = await self.ctx.redis.hkeys(self.ctx.keys.session_participants(caller.session_key))  # type: ignore[misc]
            everyone = {p.decode() if isinstance(p, bytes) else str(p) for p in participants}
            excluded = sorted(everyone - set(credit))
        config = CoauthorConfig(
            excluded=frozenset(excluded) if excluded is not None else current.excluded,
            allow_missing=bool(allow_missing),
            updated_by=caller.via,
            updated_at_ms=int(time.time() * 1000),
        )
        await store_config(self.ctx.redis, self.ctx.keys, caller.session_key, config)
        await outbound.add_timeline(
            self.ctx, caller.session_key, "coauthors", f"co-authors configured ({caller.via})"
        )
        resolution = await load_resolution(self.ctx.redis, self.ctx.keys, coords.platform, caller.session_key)
        return _json(resolution_json(caller, coords.platform, resolution))


def coauthor_routes(ctx: AppContext) -> list[BaseRoute]:
    api = CoauthorApi(ctx)
    return [
        Route("/git/coauthors/resolve", _redis_guard(api.resolve), methods=["POST"]),
        Route("/git/coauthors/status", _redis_guard(api.status), methods=["GET"]),
        Route("/git/coauthors/configure", _redis_guard(api.configure), methods=["POST"]),
    ]
