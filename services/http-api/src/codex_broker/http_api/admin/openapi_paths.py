"""OpenAPI 3.1 paths of the admin page and API (merged into /openapi.json by create_app)."""

from __future__ import annotations

from typing import Any

from codex_broker.http_api.openapi import error_response, json_response

# No anonymous alternative: the admin API never trusts the network a caller comes from.
SECURITY: list[dict[str, list[str]]] = [{"adminHeader": []}, {"adminCookie": []}]
USER_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
# libs.authors.valid_email, in ECMA regex syntax
EMAIL_PATTERN = '^[^@\\s<>,;"]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\\.[A-Za-z0-9-]{1,63})+$'
NAME_PATTERN = "^[^<>\\x00-\\x1f\\x7f]*[^<>\\s\\x00-\\x1f\\x7f][^<>\\x00-\\x1f\\x7f]*$"

PLATFORM_SCHEMA: dict[str, Any] = {"type": "string", "enum": ["slack", "feishu", "discord"]}


def _query(name: str, schema: dict[str, Any], description: str, *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def _path(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema or {"type": "string"},
        "description": description,
    }


PLATFORM_FILTER = _query("platform", PLATFORM_SCHEMA, "Only this platform (400 invalid_platform otherwise)")
PAGE_PARAMS = [
    _query("offset", {"type": "integer", "minimum": 0, "maximum": 999_999_999}, "Entries to skip"),
    _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": 999_999_999},
        "Page size (clamped to 200; 400 invalid_limit)",
    ),
]
SESSION_KEY = _path("session_key", "Session key `<platform>:<conversation>:<root message>`")
PROFILE_NAME = _path(
    "name", "Profile name", {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}
)

OK_OBJECT: dict[str, Any] = {
    "type": "object",
    "required": ["ok"],
    "properties": {"ok": {"const": True}},
    "additionalProperties": True,
}

SESSION_SUMMARY: dict[str, Any] = {
    "type": "object",
    "required": ["session_key", "platform", "state", "queue_length"],
    "properties": {
        "session_key": {"type": "string"},
        "platform": {"type": "string"},
        "conversation_id": {"type": ["string", "null"]},
        "root_message_id": {"type": ["string", "null"]},
        "thread_id": {"type": ["string", "null"]},
        "auth_profile": {"type": ["string", "null"]},
        "workspace": {"type": ["string", "null"], "description": "Relative to DATA_ROOT"},
        "status": {"type": ["string", "null"]},
        "state": {"type": "string"},
        "active_run_id": {"type": ["string", "null"]},
        "queue_length": {"type": "integer"},
        "created_at_ms": {"type": ["integer", "null"]},
        "last_activity_ms": {"type": ["integer", "null"]},
        "input_tokens": {"type": ["integer", "null"]},
        "output_tokens": {"type": ["integer", "null"]},
        "total_tokens": {"type": ["integer", "null"]},
    },
}


def _with(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["ok", *(required or [])],
        "properties": {"ok": {"const": True}, **properties},
    }


def _errors(*codes: int) -> dict[str, Any]:
    texts = {
        400: "invalid input (error names the code, field the parameter)",
        401: "admin_auth_required: neither the admin token (x-admin-token / Bearer) nor a valid admin "
        "cookie was presented (also when no BROKER_ADMIN_TOKEN is configured)",
        403: "admin_host_refused (cookie on a Host not in ADMIN_ALLOWED_HOSTS), "
        "admin_origin_mismatch (state-changing request whose Origin is not the Host)",
        404: "unknown session / profile / author",
        409: "conflict (session_active, profile_active)",
        413: "payload_too_large",
        415: "admin_json_required: a state-changing request without Content-Type application/json",
        503: "redis_unavailable",
    }
    return {str(code): error_response(texts[code]) for code in codes}


GUARD = (401, 403, 503)
WRITE_GUARD = (*GUARD, 415)
WRITE_METHODS = ("post", "put", "patch", "delete")
# Writes without a payload still send `{}` as JSON: the Content-Type is the CSRF check.
EMPTY_BODY: dict[str, Any] = {
    "type": "object",
    "description": "An empty JSON object; the request must be Content-Type application/json",
}


def _op(
    summary: str,
    operation_id: str,
    ok: dict[str, Any],
    *,
    errors: tuple[int, ...] = (),
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    ok_status: str = "200",
    write: bool = False,
) -> dict[str, Any]:
    guard = WRITE_GUARD if write or body is not None else GUARD
    operation: dict[str, Any] = {
        "summary": summary,
        "operationId": operation_id,
        "tags": ["admin"],
        "security": SECURITY,
        "responses": {ok_status: json_response("success", ok), **_errors(*sorted({*errors, *guard}))},
    }
    if write and body is None:
        body = EMPTY_BODY
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return operation


PROFILE_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "description": "Exactly one of authJson (upload) or apiKey (API-key profile)",
    "oneOf": [{"required": ["authJson"]}, {"required": ["apiKey"]}],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
        "authJson": {
            "description": "Codex auth.json as an object or a JSON string",
            "oneOf": [{"type": "object"}, {"type": "string"}],
        },
        "apiKey": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{20,512}$", "writeOnly": True},
    },
}

AUTHOR_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["platform", "userId", "name", "email"],
    "properties": {
        "platform": PLATFORM_SCHEMA,
        "userId": {
            "type": "string",
            "pattern": USER_ID_PATTERN,
            "description": "Platform user id (alias user_id)",
        },
        "name": {"type": "string", "maxLength": 100, "pattern": NAME_PATTERN},
        "email": {"type": "string", "maxLength": 254, "pattern": EMAIL_PATTERN},
    },
}

AUTHOR_ROW: dict[str, Any] = {
    "type": "object",
    "required": ["platform", "userId", "name", "email", "source"],
    "properties": {
        "platform": PLATFORM_SCHEMA,
        "userId": {"type": "string"},
        "name": {"type": "string"},
        "email": {"type": "string"},
        "source": {"type": "string", "enum": ["manual", "inferred"]},
    },
}

LOGIN_BODY: dict[str, Any] = {
    "type": "object",
    "description": "Exactly one of token (BROKER_ADMIN_TOKEN) or code (the one-time code `up` printed)",
    "oneOf": [{"required": ["token"]}, {"required": ["code"]}],
    "properties": {
        "token": {"type": "string", "maxLength": 512, "writeOnly": True},
        "code": {"type": "string", "maxLength": 512, "writeOnly": True},
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    "/admin": {
        "get": {
            "summary": "Admin page (static; logs in with the admin token or `up`'s one-time code)",
            "operationId": "adminPage",
            "tags": ["admin"],
            "responses": {
                "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
            },
        }
    },
    "/admin/static/{name}": {
        "get": {
            "summary": "Admin page asset (admin.js, admin.css, audit.js, channels.js)",
            "operationId": "adminAsset",
            "tags": ["admin"],
            "parameters": [
                _path(
                    "name",
                    "Asset file name",
                    {"type": "string", "enum": ["admin.js", "admin.css", "audit.js", "channels.js"]},
                )
            ],
            "responses": {
                "200": {
                    "description": "asset",
                    "content": {
                        "text/javascript": {"schema": {"type": "string"}},
                        "text/css": {"schema": {"type": "string"}},
                    },
                },
                "404": error_response("no such asset"),
            },
        }
    },
    "/admin/api/login": {
        "post": {
            "summary": "Log the admin page in: the admin token or a one-time code from `codex-broker up` "
            "sets the HttpOnly SameSite=Strict cookie cb_admin (Path /admin)",
            "operationId": "adminLogin",
            "tags": ["admin"],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": LOGIN_BODY}},
            },
            "responses": {
                "200": json_response(
                    "logged in; Set-Cookie cb_admin", _with({"expires_at_ms": {"type": "integer"}})
                ),
                "400": error_response("invalid_json, invalid_login, provide_token_or_code"),
                "401": error_response(
                    "admin_login_refused (wrong token, unknown or used code), "
                    "admin_auth_required (no BROKER_ADMIN_TOKEN configured)"
                ),
                "403": error_response("admin_host_refused, admin_origin_mismatch"),
                "413": error_response("payload_too_large"),
                "415": error_response("admin_json_required"),
                "503": error_response("redis_unavailable"),
            },
        }
    },
    "/admin/api/logout": {
        "post": {
            "summary": "Clear the admin cookie",
            "operationId": "adminLogout",
            "tags": ["admin"],
            "requestBody": {"required": True, "content": {"application/json": {"schema": EMPTY_BODY}}},
            "responses": {
                "200": json_response("cookie cleared", OK_OBJECT),
                "403": error_response("admin_host_refused, admin_origin_mismatch"),
                "415": error_response("admin_json_required"),
            },
        }
    },
    "/admin/api/status": {
        "get": _op(
            "Services, sessions, active runs, queue depths, jobs, dead letters and a redacted log tail",
            "adminStatus",
            _with(
                {
                    "platform": {"type": ["string", "null"]},
                    "services": {"type": "array", "items": {"type": "object"}},
                    "sessions": {"type": "object"},
                    "active_runs": {"type": "object"},
                    "queues": {"type": "object"},
                    "jobs": {"type": "object"},
                    "dead_letter": {"type": "object"},
                    "logs": {"type": "array", "items": {"type": "object"}},
                },
                ["services", "sessions", "active_runs", "queues", "jobs", "dead_letter", "logs"],
            ),
            errors=(400,),
            parameters=[PLATFORM_FILTER],
        )
    },
    "/admin/api/jobs": {
        "get": _op(
            "Recent background jobs (newest first)",
            "adminJobs",
            _with({"count": {"type": "integer"}, "items": {"type": "array", "items": {"type": "object"}}}),
            errors=(400,),
            parameters=[PLATFORM_FILTER],
        )
    },
    "/admin/api/sessions": {
        "get": _op(
            "Sessions by last activity, newest first",
            "adminSessions",
            _with(
                {
                    "total": {"type": "integer"},
                    "offset": {"type": "integer"},
                    "limit": {"type": "integer"},
                    "items": {"type": "array", "items": SESSION_SUMMARY},
                },
                ["total", "items"],
            ),
            errors=(400,),
            parameters=[PLATFORM_FILTER, *PAGE_PARAMS],
        )
    },
    "/admin/api/sessions/{session_key}": {
        "get": _op(
            "One session with participants, timeline and the tail of its own log",
            "adminSession",
            _with(
                {
                    "session": {"type": "object"},
                    "logs": {"type": "array", "items": {"type": "object"}},
                },
                ["session", "logs"],
            ),
            errors=(404,),
            parameters=[SESSION_KEY],
        ),
        "delete": _op(
            "Delete a session's keys and workspace (409 session_active while a turn runs or starts)",
            "adminDeleteSession",
            _with({"session_key": {"type": "string"}, "directories": {"type": "array"}}),
            errors=(404, 409),
            parameters=[SESSION_KEY],
            write=True,
        ),
    },
    "/admin/api/sessions/{session_key}/reset": {
        "post": _op(
            "Forget the Codex thread: the next turn starts a fresh one",
            "adminResetSession",
            _with({"session_key": {"type": "string"}, "previous_thread_id": {"type": ["string", "null"]}}),
            errors=(404,),
            parameters=[SESSION_KEY],
            write=True,
        )
    },
    "/admin/api/sessions/{session_key}/auth-profile": {
        "post": _op(
            "Move a session to another auth profile: its next turn starts a fresh Codex thread there",
            "adminMoveSessionProfile",
            _with(
                {
                    "session_key": {"type": "string"},
                    "auth_profile": {"type": "string"},
                    "previous": {"type": ["string", "null"]},
                }
            ),
            errors=(400, 404),
            parameters=[SESSION_KEY],
            body={
                "type": "object",
                "required": ["profile"],
                "properties": {"profile": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}},
            },
        )
    },
    "/admin/api/auth-profiles": {
        "get": _op(
            "Auth profiles (no secrets), the active one, and the sessions using each",
            "adminAuthProfiles",
            _with({"active": {"type": ["string", "null"]}, "profiles": {"type": "array"}}),
        ),
        "post": _op(
            "Upload a Codex auth.json or add an API-key profile (stored 0600 in the profile's CODEX_HOME)",
            "adminSaveAuthProfile",
            _with({"profile": {"type": "object"}}),
            errors=(400, 413),
            body=PROFILE_BODY,
            ok_status="201",
        ),
    },
    "/admin/api/auth-profiles/{name}/activate": {
        "post": _op(
            "Make a profile the active one",
            "adminActivateAuthProfile",
            _with({"active": {"type": "string"}}),
            errors=(400, 404),
            parameters=[PROFILE_NAME],
            write=True,
        )
    },
    "/admin/api/auth-profiles/{name}": {
        "delete": _op(
            "Delete a profile's credential and metadata (409 profile_active for the active one)",
            "adminDeleteAuthProfile",
            _with({"deleted": {"type": "string"}}),
            errors=(400, 404, 409),
            parameters=[PROFILE_NAME],
            write=True,
        )
    },
    "/admin/api/github-authors": {
        "get": _op(
            "GitHub author mappings per platform user",
            "adminGithubAuthors",
            _with({"items": {"type": "array", "items": AUTHOR_ROW}}, ["items"]),
            errors=(400,),
            parameters=[PLATFORM_FILTER],
        ),
        "post": _op(
            "Set a manual mapping (manual wins over inferred)",
            "adminSetGithubAuthor",
            _with({"author": AUTHOR_ROW}, ["author"]),
            errors=(400, 413),
            body=AUTHOR_BODY,
        ),
    },
    "/admin/api/github-authors/{user_id}": {
        "delete": _op(
            "Delete a mapping",
            "adminDeleteGithubAuthor",
            _with({"platform": PLATFORM_SCHEMA, "userId": {"type": "string"}}),
            errors=(400, 404),
            parameters=[
                _path("user_id", "Platform user id", {"type": "string", "pattern": USER_ID_PATTERN}),
                _query("platform", PLATFORM_SCHEMA, "Platform of the user", required=True),
            ],
            write=True,
        )
    },
}
