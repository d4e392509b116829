"""Per-channel defaults in the admin API: list, set and delete (each change on the audit trail)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from codex_broker.http_api.admin import validation
from codex_broker.http_api.admin.audit_routes import admin_action
from codex_broker.http_api.admin.openapi_paths import SECURITY
from codex_broker.http_api.context import AppContext
from codex_broker.http_api.errors import ApiError
from codex_broker.http_api.openapi import error_response, json_response
from codex_broker.libs import channel_defaults as stored
from codex_broker.libs.contracts import PLATFORMS

API_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
CONVERSATION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
FIELDS = ("repo", "model", "sandbox", "repos", "models")
KNOWN = frozenset({*FIELDS, "platform", "conversationId", "conversation_id"})
MAX_BODY = 64 * 1024

Guard = Callable[[Callable[[Request], Any]], Callable[[Request], Any]]


def _platform(raw: Any) -> str:
    if raw not in PLATFORMS:
        raise ApiError(400, "invalid_platform", field="platform", allowed=list(PLATFORMS))
    return str(raw)


def _conversation(raw: Any) -> str:
    if not isinstance(raw, str) or not CONVERSATION.match(raw):
        raise ApiError(400, "invalid_conversation_id", field="conversationId")
    return raw


def parse_defaults(body: dict[str, Any]) -> stored.ChannelDefaults:
    """The body's default fields → ChannelDefaults; 400 `invalid_<field>` naming the first bad one."""
    for name in body:
        if name not in KNOWN:
            raise ApiError(400, "unknown_field", field=str(name)[:64])
    values = {name: body[name] for name in FIELDS if body.get(name) not in (None, "")}
    try:
        parsed = stored.ChannelDefaults.model_validate(values)
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0]) if exc.errors() and exc.errors()[0]["loc"] else "body"
        raise ApiError(400, f"invalid_{field}", field=field) from None
    if parsed.repo is not None and not stored.valid_repo(parsed.repo):
        raise ApiError(400, "invalid_repo", field="repo")
    if parsed.repo is not None and parsed.repo not in parsed.repos:
        raise ApiError(400, "unknown_repo", field="repo", allowed=list(parsed.repos))
    return parsed


def _row(name: str, value: stored.ChannelDefaults) -> dict[str, Any]:
    platform, _, conversation = name.partition(":")
    return {"platform": platform, "conversationId": conversation, **value.model_dump()}


def routes(ctx: AppContext, guard: Guard) -> list[BaseRoute]:
    async def list_all(_: Request) -> Response:
        entries = await stored.all_entries(ctx.redis, ctx.keys)
        items = [_row(name, value) for name, value in sorted(entries.items())]
        return JSONResponse({"ok": True, "items": items}, headers=API_HEADERS)

    async def put(request: Request) -> Response:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise ApiError(413, "payload_too_large")
        body = validation.body_object(raw)
        platform = _platform(body.get("platform"))
        conversation = _conversation(validation.pick(body, "conversationId", "conversation_id"))
        value = parse_defaults(body)
        await stored.save(ctx.redis, ctx.keys, platform, conversation, value)
        await admin_action(ctx, request, "channel_defaults.set", stored.field_of(platform, conversation))
        row = _row(stored.field_of(platform, conversation), value)
        return JSONResponse({"ok": True, "item": row}, headers=API_HEADERS)

    async def delete(request: Request) -> Response:
        platform = _platform(request.query_params.get("platform"))
        conversation = _conversation(request.path_params["conversation_id"])
        if not await stored.delete(ctx.redis, ctx.keys, platform, conversation):
            raise ApiError(404, "unknown_channel", field="conversationId")
        await admin_action(ctx, request, "channel_defaults.delete", stored.field_of(platform, conversation))
        return JSONResponse({"ok": True, "platform": platform, "conversationId": conversation})

    async def collection(request: Request) -> Response:
        return await (list_all(request) if request.method in ("GET", "HEAD") else put(request))

    return [
        Route("/admin/api/channel-defaults", guard(collection), methods=["GET", "PUT"]),
        Route("/admin/api/channel-defaults/{conversation_id}", guard(delete), methods=["DELETE"]),
    ]


_ERRORS = {
    "400": error_response("A bad field (invalid_<field>, unknown_repo)"),
    "401": error_response("Admin token or cookie required"),
    "403": error_response("Refused"),
    "503": error_response("Redis unavailable"),
}
_STRING = {"type": "string", "maxLength": 128}
_PLATFORM = {"type": "string", "enum": list(PLATFORMS)}
_OBJ = {"type": "object"}
DEFAULTS_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["platform", "conversationId"],
    "properties": {
        "platform": {"type": "string", "enum": list(PLATFORMS)},
        "conversationId": {"type": "string", "pattern": CONVERSATION.pattern},
        "repo": _STRING,
        "model": _STRING,
        "sandbox": {"type": "string", "enum": ["read-only", "workspace-write", "danger-full-access"]},
        "repos": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 500}},
        "models": {"type": "array", "items": _STRING, "maxItems": stored.MAX_CHOICES},
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    "/admin/api/channel-defaults": {
        "get": {
            "summary": "Every channel's defaults",
            "operationId": "adminChannelDefaults",
            "tags": ["admin"],
            "security": SECURITY,
            "responses": {"200": json_response("defaults", {"type": "object"}), **_ERRORS},
        },
        "put": {
            "summary": "Set a channel's defaults (repo, model, sandbox; allowed repos and models)",
            "operationId": "adminSetChannelDefaults",
            "tags": ["admin"],
            "security": SECURITY,
            "requestBody": {"required": True, "content": {"application/json": {"schema": DEFAULTS_BODY}}},
            "responses": {
                "200": json_response("saved", {"type": "object"}),
                "413": error_response("Body too large"),
                "415": error_response("Not JSON"),
                **_ERRORS,
            },
        },
    },
    "/admin/api/channel-defaults/{conversation_id}": {
        "delete": {
            "summary": "Remove a channel's defaults",
            "operationId": "adminDeleteChannelDefaults",
            "tags": ["admin"],
            "security": SECURITY,
            "parameters": [
                {"name": "conversation_id", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "platform", "in": "query", "required": True, "schema": _PLATFORM},
            ],
            "responses": {
                "200": json_response("deleted", _OBJ),
                "404": error_response("Unknown"),
                "415": error_response("admin_json_required (a cookie session's write)"),
                **_ERRORS,
            },
        }
    },
}  # fmt: skip
