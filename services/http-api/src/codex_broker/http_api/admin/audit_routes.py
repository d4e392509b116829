"""The audit trail in the admin API: search (JSON) and export (JSONL), and the admin identity
every admin action is recorded under."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from codex_broker.http_api.admin import access
from codex_broker.http_api.admin.openapi_paths import SECURITY
from codex_broker.http_api.context import AppContext
from codex_broker.http_api.errors import ApiError
from codex_broker.http_api.openapi import error_response, json_response
from codex_broker.libs import audit
from codex_broker.libs.contracts import AUDIT_KINDS

MAX_SEARCH = 500
MAX_FILTER = 200
API_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

Guard = Callable[[Callable[[Request], Any]], Callable[[Request], Any]]


def admin_identity(request: Request) -> str:
    """Who did it: the admin token, or one signed-in browser session (a hash of its cookie,
    never the cookie), and the address it came from."""
    client = request.client.host if request.client else "unknown"
    if access.presented_token(request.headers) is not None:
        return f"admin:token@{client}"
    cookie = request.cookies.get(access.COOKIE_NAME) or ""
    return f"admin:session-{hashlib.sha256(cookie.encode()).hexdigest()[:10]}@{client}"


async def admin_action(
    ctx: AppContext, request: Request, action: str, summary: str = "", **details: str | int | bool
) -> None:
    """Record one admin action (after it succeeded) under the admin identity."""
    record = audit.make(
        "admin",
        admin_identity(request),
        action=action,
        summary=summary,
        session_key=str(details.pop("session_key", "")),
        details=details,
    )
    await audit.AuditLog.from_settings(ctx.settings).write(ctx.redis, record)


# ---- query (pure) -----------------------------------------------------------------------------


def _ms(raw: str | None, field: str) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 15:
        raise ApiError(400, f"invalid_{field}", field=field)
    return int(raw)


def _filter(raw: str | None, field: str) -> str:
    value = (raw or "").strip()
    if len(value) > MAX_FILTER or any(ord(c) < 32 for c in value):
        raise ApiError(400, f"invalid_{field}", field=field)
    return value


def parse_query(query: Mapping[str, str], *, default_limit: int = 200) -> audit.Query:
    kind = query.get("kind") or ""
    if kind and kind not in AUDIT_KINDS:
        raise ApiError(400, "invalid_kind", field="kind", allowed=list(AUDIT_KINDS))
    limit_raw = query.get("limit")
    if limit_raw is not None and (not limit_raw.isdigit() or int(limit_raw) == 0 or len(limit_raw) > 9):
        raise ApiError(400, "invalid_limit", field="limit")
    since, until = _ms(query.get("since"), "since"), _ms(query.get("until"), "until")
    if since is not None and until is not None and since > until:
        raise ApiError(400, "invalid_until", field="until")
    return audit.Query(
        user=_filter(query.get("user"), "user"),
        thread=_filter(query.get("thread"), "thread"),
        kind=kind,
        since_ms=since,
        until_ms=until,
        limit=min(int(limit_raw), MAX_SEARCH) if limit_raw else default_limit,
    )


# ---- routes -----------------------------------------------------------------------------------


def routes(ctx: AppContext, guard: Guard) -> list[BaseRoute]:
    async def search(request: Request) -> Response:
        query = parse_query(request.query_params)
        found = await audit.search(ctx.redis, ctx.keys, query)
        items = [r.model_dump(mode="json") for r in found]
        return JSONResponse({"ok": True, "items": items}, headers=API_HEADERS)

    async def export(request: Request) -> Response:
        query = parse_query(request.query_params)
        found = await audit.export(ctx.redis, ctx.keys, query)
        headers = {**API_HEADERS, "Content-Disposition": 'attachment; filename="audit.jsonl"'}
        return Response(audit.to_jsonl(found), media_type="application/x-ndjson", headers=headers)

    return [
        Route("/admin/api/audit", guard(search), methods=["GET"]),
        Route("/admin/api/audit/export", guard(export), methods=["GET"]),
    ]


_TEXT = {"type": "string", "maxLength": MAX_FILTER}
_MS = {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999}


def _param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


_QUERY = [
    _param("user", _TEXT, "Actor id or name contains"),
    _param("thread", _TEXT, "Session key contains"),
    _param("kind", {"type": "string", "enum": list(AUDIT_KINDS)}, "Only this kind"),
    _param("since", _MS, "From this time (ms since the epoch)"),
    _param("until", _MS, "Up to this time (ms since the epoch)"),
    _param("limit", {"type": "integer", "minimum": 1, "maximum": 999_999_999}, "Most matches (search: 500)"),
]
_ERRORS = {
    "400": error_response("A bad filter (invalid_<field>)"),
    "401": error_response("Admin token or cookie required"),
    "403": error_response("Refused"),
    "503": error_response("Redis unavailable"),
}

OPENAPI_PATHS: dict[str, Any] = {
    "/admin/api/audit": {
        "get": {
            "summary": "Search the audit trail, newest first",
            "operationId": "adminAuditSearch",
            "tags": ["admin"],
            "security": SECURITY,
            "parameters": _QUERY,
            "responses": {
                "200": json_response("matches", {"type": "object", "required": ["ok", "items"]}),
                **_ERRORS,
            },
        }
    },
    "/admin/api/audit/export": {
        "get": {
            "summary": "Export the audit trail as JSONL, oldest first",
            "operationId": "adminAuditExport",
            "tags": ["admin"],
            "security": SECURITY,
            "parameters": _QUERY,
            "responses": {
                "200": {
                    "description": "one AuditRecord per line",
                    "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
                },
                **_ERRORS,
            },
        }
    },
}
