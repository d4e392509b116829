"""Admin routes of usage and budgets (registered in app.OPTIONAL_APIS), behind the admin rule."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from codex_broker.http_api.admin import usage
from codex_broker.http_api.admin.openapi_paths import _op, _query, _with
from codex_broker.http_api.admin.routes import Handler, _body, _dispatch, _json, guarded
from codex_broker.http_api.context import AppContext
from codex_broker.http_api.errors import ApiError
from codex_broker.libs import usage_counters as counters
from codex_broker.libs.budgets import ALL_LIMITS

__all__ = ["OPENAPI_PATHS", "usage_routes"]

log = logging.getLogger(__name__)


def usage_routes(ctx: AppContext) -> list[BaseRoute]:
    redis, keys, settings = ctx.redis, ctx.keys, ctx.settings

    async def get_usage(request: Request) -> Response:
        n_days = usage.days(request.query_params.get("days"))
        return _json({"ok": True, **await usage.overview(redis, keys, settings, n_days)})

    async def set_budget(request: Request) -> Response:
        body = await _body(request)
        name = usage.limit_name(body.get("limit"))
        subject = usage.subject(name.scope, body.get("subject"))
        value = usage.limit_value(name, body.get("value"))
        await counters.set_override(redis, keys, name, subject, value)
        log.info("admin set budget", extra={"limit": name.key, "subject": subject, "value": value})
        return _json({"ok": True, "limit": name.key, "subject": subject, "value": body.get("value")})

    async def clear_budget(request: Request) -> Response:
        name = usage.limit_name(request.query_params.get("limit"))
        subject = usage.subject(name.scope, request.query_params.get("subject"))
        if not await counters.clear_override(redis, keys, name, subject):
            raise ApiError(404, "unknown_budget_override", field="subject")
        log.info("admin cleared budget", extra={"limit": name.key, "subject": subject})
        return _json({"ok": True, "limit": name.key, "subject": subject})

    async def set_exempt(request: Request) -> Response:
        body = await _body(request)
        scope = usage.exempt_scope(body.get("scope"))
        subject = usage.subject(scope, body.get("subject"))
        if subject == "*":
            raise ApiError(400, "invalid_budget_subject", field="subject")
        exempt = body.get("exempt", True)
        if not isinstance(exempt, bool):
            raise ApiError(400, "invalid_budget_exempt", field="exempt")
        await counters.set_exempt(redis, keys, scope, subject, exempt=exempt)  # type: ignore[arg-type]
        log.info("admin budget exemption", extra={"scope": scope, "subject": subject, "exempt": exempt})
        return _json({"ok": True, "scope": scope, "subject": subject, "exempt": exempt})

    def api(path: str, **by_method: Handler) -> Route:
        return Route(path, guarded(ctx, _dispatch(by_method)), methods=list(by_method))

    return [
        api("/admin/api/usage", GET=get_usage),
        api("/admin/api/budgets", PUT=set_budget, DELETE=clear_budget),
        api("/admin/api/budgets/exempt", POST=set_exempt),
    ]


LIMIT_KEYS = [name.key for name in ALL_LIMITS]
SUBJECT_SCHEMA: dict[str, Any] = {
    "type": "string",
    "description": "`platform:id` of a user or channel, `*` for every subject of the scope, "
    "`all` for the deployment",
    "maxLength": 160,
}
POINT: dict[str, Any] = {"type": "object", "additionalProperties": True}
SCOPE_USAGE = {
    "type": "object",
    "properties": {
        "top": {"type": "array", "items": POINT},
        "series": {"type": "array", "items": POINT},
    },
}
OPENAPI_PATHS: dict[str, Any] = {
    "/admin/api/usage": {
        "get": _op(
            "Usage over time (per user, channel, profile, deployment), budgets, turn latency and run queue",
            "adminUsage",
            _with(
                {
                    "days": {"type": "integer"},
                    "budgets": POINT,
                    "deployment": {"type": "array", "items": POINT},
                    "users": SCOPE_USAGE,
                    "channels": SCOPE_USAGE,
                    "profiles": SCOPE_USAGE,
                    "metrics": POINT,
                },
                ["days", "budgets", "deployment", "users", "channels", "profiles", "metrics"],
            ),
            errors=(400,),
            parameters=[
                _query(
                    "days",
                    {"type": "integer", "minimum": 1, "maximum": usage.MAX_DAYS},
                    "UTC days of history (default 30; 400 invalid_days)",
                )
            ],
        )
    },
    "/admin/api/budgets": {
        "put": _op(
            "Set a budget override for one subject or a whole scope (value 0 = no limit)",
            "adminSetBudget",
            _with({"limit": {"type": "string"}, "subject": {"type": "string"}}),
            errors=(400, 413),
            body={
                "type": "object",
                "required": ["limit", "value"],
                "properties": {
                    "limit": {"type": "string", "enum": LIMIT_KEYS},
                    "subject": SUBJECT_SCHEMA,
                    "value": {"type": "number", "minimum": 0, "maximum": usage.MAX_LIMIT_VALUE},
                },
            },
        ),
        "delete": _op(
            "Remove a budget override (the environment's limit applies again)",
            "adminClearBudget",
            _with({"limit": {"type": "string"}, "subject": {"type": "string"}}),
            errors=(400, 404),
            parameters=[
                _query("limit", {"type": "string", "enum": LIMIT_KEYS}, "Limit name", required=True),
                _query("subject", SUBJECT_SCHEMA, "Subject of the override"),
            ],
            write=True,
        ),
    },
    "/admin/api/budgets/exempt": {
        "post": _op(
            "Exempt a user or channel from its scope's budgets (or lift the exemption)",
            "adminBudgetExempt",
            _with(
                {"scope": {"type": "string"}, "subject": {"type": "string"}, "exempt": {"type": "boolean"}}
            ),
            errors=(400, 413),
            body={
                "type": "object",
                "required": ["scope", "subject"],
                "properties": {
                    "scope": {"type": "string", "enum": ["user", "channel"]},
                    "subject": SUBJECT_SCHEMA,
                    "exempt": {"type": "boolean"},
                },
            },
        )
    },
}
