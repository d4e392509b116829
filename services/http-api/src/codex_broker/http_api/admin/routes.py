"""Admin HTTP routes: thin handlers over the admin modules, all behind the admin access rule."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from redis import exceptions as redis_errors
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from codex_broker.http_api.admin import (
    audit_routes,
    authors,
    channel_routes,
    gate,
    login,
    ops,
    profiles,
    sessions,
    status,
    validation,
)
from codex_broker.http_api.admin.audit_routes import admin_action
from codex_broker.http_api.admin.logtail import session_logs
from codex_broker.http_api.admin.openapi_paths import OPENAPI_PATHS as BASE_PATHS
from codex_broker.http_api.admin.ops_openapi import OPENAPI_PATHS as OPS_PATHS
from codex_broker.http_api.context import AppContext
from codex_broker.http_api.errors import ApiError
from codex_broker.libs.logs import Redactor

__all__ = ["OPENAPI_PATHS", "admin_routes"]

log = logging.getLogger(__name__)
OPENAPI_PATHS = {**BASE_PATHS, **OPS_PATHS, **audit_routes.OPENAPI_PATHS, **channel_routes.OPENAPI_PATHS}

STATIC_DIR = Path(__file__).parent / "static"
ASSETS = {
    "admin.js": "text/javascript",
    "admin.css": "text/css",
    "audit.js": "text/javascript",
    "channels.js": "text/javascript",
    "ops.js": "text/javascript",
    "usage.js": "text/javascript",
}
MAX_ADMIN_BODY = 256 * 1024
SESSION_LOG_BYTES = 64 * 1024
SESSION_LOG_LINES = 200

# The page loads nothing from elsewhere and runs no inline code.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
API_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

Handler = Callable[[Request], Awaitable[Response]]


def _json(data: dict[str, Any], status_code: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status_code, headers=API_HEADERS)


def guarded(ctx: AppContext, handler: Handler) -> Handler:
    """Apply the admin access rule; Redis trouble is 503, not a crash."""

    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        gate.require_admin(request, ctx.settings)
        try:
            return await handler(request)
        except redis_errors.RedisError as exc:
            log.warning("admin request: redis error", extra={"error": type(exc).__name__})
            raise ApiError(503, "redis_unavailable") from None

    return wrapper


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_ADMIN_BODY:
        raise ApiError(413, "payload_too_large")
    return validation.body_object(raw)


def admin_routes(ctx: AppContext) -> list[BaseRoute]:
    data_root = Path(ctx.settings.data_root)
    redis, keys, redactor = ctx.redis, ctx.keys, ctx.redactor

    # ---- page ------------------------------------------------------------------------------
    async def page(_: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            raise ApiError(404, "not_found")
        return FileResponse(STATIC_DIR / name, media_type=ASSETS[name], headers=PAGE_HEADERS)

    # ---- overview --------------------------------------------------------------------------
    async def get_status(request: Request) -> Response:
        platform = validation.platform(request.query_params.get("platform"))
        return _json(await status.overview(redis, keys, data_root, redactor, platform))

    async def list_jobs(request: Request) -> Response:
        platform = validation.platform(request.query_params.get("platform"))
        return _json({"ok": True, **await status.jobs(redis, keys, platform, redactor)})

    # ---- sessions --------------------------------------------------------------------------
    async def list_sessions(request: Request) -> Response:
        platform = validation.platform(request.query_params.get("platform"))
        offset, limit = validation.page(request.query_params)
        total, page_keys = await sessions.page_keys(redis, keys, platform, offset, limit)
        rows = await sessions.summaries(redis, keys, page_keys, data_root)
        return _json({"ok": True, "total": total, "offset": offset, "limit": limit, "items": rows})

    async def session_detail(request: Request) -> Response:
        session_key = request.path_params["session_key"]
        found = await sessions.detail(redis, keys, session_key, data_root, redactor)
        logs = await _to_thread_logs(data_root, session_key, redactor)
        return _json({"ok": True, "session": found, "logs": logs})

    async def reset_session(request: Request) -> Response:
        session_key = request.path_params["session_key"]
        previous = await sessions.reset(redis, keys, session_key)
        await admin_action(ctx, request, "session.reset", session_key=session_key)
        return _json({"ok": True, "session_key": session_key, "previous_thread_id": previous})

    async def delete_session(request: Request) -> Response:
        session_key = request.path_params["session_key"]
        deleted = await sessions.delete(redis, keys, session_key, data_root)
        await admin_action(ctx, request, "session.delete", session_key=session_key)
        return _json(
            {
                "ok": True,
                "session_key": session_key,
                "keys_removed": deleted.keys_removed,
                "directories": deleted.directories,
            }
        )

    # ---- auth profiles ---------------------------------------------------------------------
    async def list_profiles(_: Request) -> Response:
        return _json({"ok": True, **await profiles.list_profiles(redis, keys, data_root)})

    async def save_profile(request: Request) -> Response:
        body = await _body(request)
        name = validation.profile_name(body.get("name"))
        upload = validation.pick(body, "authJson", "auth_json")
        key = validation.pick(body, "apiKey", "api_key")
        if (upload is None) == (key is None):
            raise ApiError(400, "provide_exactly_one_credential", field="authJson")
        if upload is not None:
            document, kind = validation.auth_json(upload)
        else:
            document, kind = profiles.api_key_document(validation.api_key(key)), "apikey"
        saved = await profiles.save(redis, keys, data_root, name, document, kind)
        await admin_action(ctx, request, "profile.save", name, kind=kind)
        log.info("admin saved auth profile", extra={"profile": name, "kind": kind})
        return _json({"ok": True, "profile": saved}, status_code=201)

    async def activate_profile(request: Request) -> Response:
        name = validation.profile_name(request.path_params["name"])
        await profiles.activate(redis, keys, name)
        await admin_action(ctx, request, "profile.activate", name)
        log.info("admin activated auth profile", extra={"profile": name})
        return _json({"ok": True, "active": name})

    async def move_session_profile(request: Request) -> Response:
        session_key = request.path_params["session_key"]
        body = await _body(request)
        name = validation.profile_name(body.get("profile"), field="profile")
        previous = await sessions.move_profile(redis, keys, session_key, name)
        await admin_action(ctx, request, "session.auth_profile", name, session_key=session_key)
        log.info("admin moved session to auth profile", extra={"session_key": session_key, "profile": name})
        return _json({"ok": True, "session_key": session_key, "auth_profile": name, "previous": previous})

    async def delete_profile(request: Request) -> Response:
        name = validation.profile_name(request.path_params["name"])
        await profiles.delete(redis, keys, data_root, name)
        await admin_action(ctx, request, "profile.delete", name)
        log.info("admin deleted auth profile", extra={"profile": name})
        return _json({"ok": True, "deleted": name})

    # ---- GitHub authors --------------------------------------------------------------------
    async def list_authors(request: Request) -> Response:
        platform = validation.platform(request.query_params.get("platform"))
        rows: list[dict[str, Any]] = []
        for name in [platform] if platform else list(validation.PLATFORMS):
            rows.extend(await authors.list_authors(redis, keys, name))
        return _json({"ok": True, "items": rows})

    async def set_author(request: Request) -> Response:
        body = await _body(request)
        platform = validation.platform(body.get("platform"), required=True)
        assert platform is not None
        user = validation.user_id(validation.pick(body, "userId", "user_id"))
        author = authors.Author(
            name=validation.author_name(body.get("name")),
            email=validation.author_email(body.get("email")),
            source="manual",
        )
        await authors.set_manual(redis, keys, platform, user, author)
        await admin_action(ctx, request, "github_author.set", f"{platform}:{user}")
        log.info("admin set github author", extra={"platform": platform, "user_id": user})
        return _json({"ok": True, "author": {"platform": platform, "userId": user, **asdict(author)}})

    async def delete_author(request: Request) -> Response:
        platform = validation.platform(request.query_params.get("platform"), required=True)
        assert platform is not None
        user = validation.user_id(request.path_params["user_id"])
        if not await authors.delete_author(redis, keys, platform, user):
            raise ApiError(404, "unknown_author", field="userId")
        await admin_action(ctx, request, "github_author.delete", f"{platform}:{user}")
        log.info("admin deleted github author", extra={"platform": platform, "user_id": user})
        return _json({"ok": True, "platform": platform, "userId": user})

    def api(path: str, **by_method: Handler) -> Route:
        return Route(path, guarded(ctx, _dispatch(by_method)), methods=list(by_method))

    return [
        Route("/admin", page, methods=["GET"]),
        Route("/admin/static/{name}", asset, methods=["GET"]),
        *login.routes(ctx),
        *ops.routes(ctx, api),
        api("/admin/api/status", GET=get_status),
        api("/admin/api/jobs", GET=list_jobs),
        api("/admin/api/sessions", GET=list_sessions),
        # the reset route comes first: `{session_key:path}` would also swallow "/reset"
        api("/admin/api/sessions/{session_key:path}/reset", POST=reset_session),
        api("/admin/api/sessions/{session_key:path}/auth-profile", POST=move_session_profile),
        api("/admin/api/sessions/{session_key:path}", GET=session_detail, DELETE=delete_session),
        api("/admin/api/auth-profiles", GET=list_profiles, POST=save_profile),
        api("/admin/api/auth-profiles/{name}/activate", POST=activate_profile),
        api("/admin/api/auth-profiles/{name}", DELETE=delete_profile),
        api("/admin/api/github-authors", GET=list_authors, POST=set_author),
        api("/admin/api/github-authors/{user_id}", DELETE=delete_author),
        *audit_routes.routes(ctx, functools.partial(guarded, ctx)),
        *channel_routes.routes(ctx, functools.partial(guarded, ctx)),
    ]


def _dispatch(by_method: dict[str, Handler]) -> Handler:
    """One route per path, so a 405 names every method the path allows."""

    async def handler(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await by_method[method](request)

    return handler


async def _to_thread_logs(data_root: Path, session_key: str, redactor: Redactor) -> list[dict[str, Any]]:
    return await asyncio.to_thread(
        session_logs,
        data_root / "logs",
        session_key,
        redactor,
        max_bytes=SESSION_LOG_BYTES,
        max_lines=SESSION_LOG_LINES,
    )
