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

log = logging.getLogger(__name__)

ADMIN_MODULE = "codex_broker.http_api.admin.routes"


def _load_admin(ctx: AppContext) -> tuple[list[BaseRoute], dict[str, Any]]:
    """The admin API is a separate sub-package; the rest of the API works without it."""
    try:
        module = importlib.import_module(ADMIN_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name and ADMIN_MODULE.startswith(exc.name):
            return [], {}
        log.exception("admin module failed to import; admin API disabled")
        return [], {}
    except Exception:
        log.exception("admin module failed to import; admin API disabled")
        return [], {}
    routes = list(module.admin_routes(ctx))
    paths = dict(getattr(module, "OPENAPI_PATHS", {}) or {})
    return routes, paths


def create_app(ctx: AppContext) -> Starlette:
    admin_routes, admin_paths = _load_admin(ctx)
    spec = openapi.build_spec(admin_paths)

    async def openapi_json(_: Request) -> Response:
        return JSONResponse(spec)

    routes: list[BaseRoute] = [
        *health_routes(ctx),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        *chat_routes.routes(ctx),
        *job_routes.routes(ctx),
        *admin_routes,
    ]
    app = Starlette(
        routes=routes,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            Middleware(RequestLogMiddleware, redactor=ctx.redactor),
            Middleware(BodyLimitMiddleware, max_bytes=ctx.settings.max_body_bytes),
        ],
    )
    app.state.ctx = ctx
    return app
