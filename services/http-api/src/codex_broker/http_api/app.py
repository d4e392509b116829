"""The http-api Starlette app: health, chat, legacy Slack, jobs, OpenAPI, and the admin API."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from codex_broker.http_api import chat_routes, job_routes, openapi
from codex_broker.http_api.context import AppContext
from codex_broker.http_api.errors import EXCEPTION_HANDLERS
from codex_broker.http_api.health import health_routes
from codex_broker.http_api.middleware import BodyLimitMiddleware, RequestLogMiddleware
from codex_broker.http_api.session_listener import SessionListenerGuard
from codex_broker.libs.rawlog import KIND_HTTP_REQUESTS

log = logging.getLogger(__name__)

# Sub-APIs owned elsewhere: (module, routes factory). The rest of the API works without them.
OPTIONAL_APIS = (
    ("codex_broker.http_api.admin.routes", "admin_routes"),
    ("codex_broker.http_api.coauthors.routes", "coauthor_routes"),
    ("codex_broker.http_api.admin.usage_routes", "usage_routes"),
)


def _load_optional(ctx: AppContext, module_name: str, factory: str) -> tuple[list[BaseRoute], dict[str, Any]]:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return [], {}
        log.exception("sub-API failed to import; disabled", extra={"module": module_name})
        return [], {}
    except Exception:
        log.exception("sub-API failed to import; disabled", extra={"module": module_name})
        return [], {}
    routes = list(getattr(module, factory)(ctx))
    paths = dict(getattr(module, "OPENAPI_PATHS", {}) or {})
    return routes, paths


def create_app(ctx: AppContext) -> Starlette:
    extra_routes: list[BaseRoute] = []
    extra_paths: dict[str, Any] = {}
    for module_name, factory in OPTIONAL_APIS:
        routes, paths = _load_optional(ctx, module_name, factory)
        extra_routes.extend(routes)
        extra_paths.update(paths)
    spec = openapi.build_spec(extra_paths)

    async def openapi_json(_: Request) -> Response:
        return JSONResponse(spec)

    all_routes: list[BaseRoute] = [
        *health_routes(ctx),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        *chat_routes.routes(ctx),
        *job_routes.routes(ctx),
        *extra_routes,
    ]
    app = Starlette(
        routes=all_routes,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            Middleware(
                RequestLogMiddleware,
                redactor=ctx.redactor,
                raw_log=ctx.settings.raw_log(KIND_HTTP_REQUESTS, ctx.redactor),
            ),
            Middleware(BodyLimitMiddleware, max_bytes=ctx.settings.max_body_bytes),
            Middleware(SessionListenerGuard, session_host=ctx.settings.session_api_host),
        ],
    )
    app.state.ctx = ctx
    return app
