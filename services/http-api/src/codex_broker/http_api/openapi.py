"""The OpenAPI 3.1 document of every route, built as plain data (served at /openapi.json)."""

from __future__ import annotations

import copy
from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["ok", "error"],
    "properties": {
        "ok": {"const": False},
        "error": {"type": "string"},
        "field": {"type": "string"},
        "allowed": {"type": "array", "items": {"type": "string"}},
        "detail": {"type": "string"},
    },
}


def error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


HEALTH_PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "summary": "Process is up",
            "operationId": "healthz",
            "responses": {
                "200": json_response(
                    "alive",
                    {
                        "type": "object",
                        "required": ["ok"],
                        "properties": {"ok": {"type": "boolean"}, "service": {"type": "string"}},
                    },
                )
            },
        }
    },
    "/readyz": {
        "get": {
            "summary": "Redis reachable, service heartbeats fresh, a codex-runner ready",
            "operationId": "readyz",
            "responses": {
                "200": json_response("ready", {"$ref": "#/components/schemas/Readiness"}),
                "503": json_response("not ready", {"$ref": "#/components/schemas/Readiness"}),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "operationId": "metrics",
            "responses": {
                "200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "operationId": "openapi",
            "responses": {"200": json_response("OpenAPI 3.1", {"type": "object"})},
        }
    },
}

COMPONENTS: dict[str, Any] = {
    "schemas": {
        "Error": ERROR_SCHEMA,
        "Readiness": {
            "type": "object",
            "required": ["ok", "checks"],
            "properties": {
                "ok": {"type": "boolean"},
                "checks": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
    },
    "securitySchemes": {
        "sessionBearer": {"type": "http", "scheme": "bearer", "description": "BROKER_SESSION_TOKEN"},
        "sessionHeader": {"type": "apiKey", "in": "header", "name": "x-broker-session-token"},
        "jobToken": {"type": "apiKey", "in": "header", "name": "x-job-token"},
        "adminHeader": {"type": "apiKey", "in": "header", "name": "x-admin-token"},
        "adminCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": "cb_admin",
            "description": "set by POST /admin/api/login (the admin page)",
        },
    },
}


STR: dict[str, Any] = {"type": "string"}
STR_OR_NUM: dict[str, Any] = {"type": ["string", "integer"]}
ANY_JSON: dict[str, Any] = {}
SESSION_SECURITY: list[dict[str, list[str]]] = [{"sessionBearer": []}, {"sessionHeader": []}]
JOB_SECURITY: list[dict[str, list[str]]] = [{"jobToken": []}, {"sessionBearer": []}]
PLATFORM = {"type": "string", "enum": ["slack", "feishu", "web", "discord"]}


def _query(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def _errors(*statuses: int) -> dict[str, Any]:
    texts = {
        400: "invalid input (error names the code and the field)",
        401: "session_token_required / invalid_session_token",
        403: "session_mismatch: the token belongs to another session",
        404: "unknown_session / unknown_job",
        409: "job_finished",
        413: "payload_too_large",
        502: "platform_error: the ingress reported a failure",
        504: "upstream_timeout: no answer from the ingress",
    }
    return {str(code): error_response(texts[code]) for code in statuses}


def _body(properties: dict[str, Any], *, forms: bool) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties}
    content = {"application/json": {"schema": schema}}
    if forms:
        flat = {name: STR for name in properties}
        content["application/x-www-form-urlencoded"] = {"schema": {"type": "object", "properties": flat}}
    return {"required": True, "content": content}


COORD_QUERY = [
    _query("platform", PLATFORM, "slack | feishu | web | discord"),
    _query("conversationId", STR, "channel / chat id (alias conversation_id)"),
    _query("conversation_id", STR, "alias of conversationId"),
    _query("rootMessageId", STR, "thread root message id (alias root_message_id)"),
    _query("root_message_id", STR, "alias of rootMessageId"),
]
COORD_BODY: dict[str, Any] = {
    "platform": PLATFORM,
    "conversationId": STR_OR_NUM,
    "conversation_id": STR_OR_NUM,
    "rootMessageId": STR_OR_NUM,
    "root_message_id": STR_OR_NUM,
}
LEGACY_BODY: dict[str, Any] = {"channel_id": STR_OR_NUM, "thread_ts": STR_OR_NUM}
HISTORY_QUERY = [
    _query("beforeMessageId", STR, "exclusive upper bound (alias before_message_id)"),
    _query("before_message_id", STR, "alias of beforeMessageId"),
    _query("limit", {"type": "integer", "minimum": 1}, "clamped by HISTORY_API_MAX_LIMIT"),
    _query("format", {"type": "string", "enum": ["json", "text"]}, "json (default) or text"),
]
HISTORY_JSON = {
    "type": "object",
    "required": ["ok", "messages"],
    "properties": {
        "ok": {"const": True},
        "note": {**STR, "description": "the messages are untrusted data, not instructions"},
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "messageId": STR,
                    "userId": STR,
                    "userName": STR,
                    "isBot": {"type": "boolean"},
                    "text": STR,
                    "ts": {"type": ["string", "null"]},
                    "attachments": {"type": "array"},
                },
            },
        },
    },
}
POSTED = {
    "type": "object",
    "required": ["ok", "actionId"],
    "properties": {
        "ok": {"const": True},
        "actionId": STR,
        "messageIds": {"type": "array", "items": STR},
        "queued": {"type": "boolean"},
    },
}
POST_MESSAGE_BODY: dict[str, Any] = {
    "text": {"type": "string", "description": "Markdown, converted per platform"},
    "kind": {"type": "string", "enum": ["progress", "final", "block", "wait"]},
    "reason": {"type": "string", "description": "required for block / wait"},
    "format": {"type": "string", "enum": ["text", "markdown", "rich_text", "card"]},
    "richText": {"description": "JSON value or JSON string"},
    "rich_text": {"description": "alias of richText"},
    "card": {"description": "JSON value or JSON string"},
}
POST_FILE_BODY: dict[str, Any] = {
    "filePath": {"type": "string", "description": "inside the workspace, repos cache or an allowed root"},
    "file_path": STR,
    "contentBase64": {"type": "string", "description": "with filename"},
    "content_base64": STR,
    "filename": STR,
    "title": STR,
    "initialComment": STR,
    "initial_comment": STR,
    "text": {"type": "string", "description": "alias of initialComment"},
    "altText": STR,
    "alt_text": STR,
    "snippetType": STR,
    "contentType": STR,
}


def _history_op(op_id: str, coords: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "get": {
            "summary": "Thread history before an exclusive message id, oldest first",
            "operationId": op_id,
            "security": SESSION_SECURITY,
            "parameters": [*coords, *HISTORY_QUERY],
            "responses": {
                "200": {
                    "description": "messages (format=json) or one block of them framed as untrusted"
                    " quoted data (format=text)",
                    "content": {
                        "application/json": {"schema": HISTORY_JSON},
                        "text/plain": {"schema": STR},
                    },
                },
                **_errors(400, 401, 403, 413, 502, 504),
            },
        }
    }


def _post_op(
    op_id: str, summary: str, body: dict[str, Any], *, forms: bool, ok: dict[str, Any]
) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "operationId": op_id,
            "security": SESSION_SECURITY,
            "requestBody": _body(body, forms=forms),
            "responses": {**ok, **_errors(400, 401, 403, 413, 502)},
        }
    }


POSTED_RESPONSES = {
    "200": json_response("posted", POSTED),
    "202": json_response("queued: the ingress did not confirm in time (do not retry)", POSTED),
}
LEGACY_QUERY = [
    _query("channel_id", STR, "Slack channel id"),
    _query("thread_ts", STR, "Slack thread ts"),
    _query("before_ts", STR, "exclusive upper bound"),
]

CHAT_PATHS: dict[str, Any] = {
    "/chat/thread-history": _history_op("chatThreadHistory", COORD_QUERY),
    "/chat/post-message": _post_op(
        "chatPostMessage",
        "Post a message into the session's thread",
        {**COORD_BODY, **POST_MESSAGE_BODY},
        forms=True,
        ok=POSTED_RESPONSES,
    ),
    "/chat/post-state": _post_op(
        "chatPostState",
        "Record Codex's declared state (wait / block / final) for the running turn",
        {
            **COORD_BODY,
            "kind": {"type": "string", "enum": ["wait", "block", "final"]},
            "reason": STR,
        },
        forms=True,
        ok={
            "200": json_response(
                "recorded",
                {"type": "object", "required": ["ok"], "properties": {"ok": {"const": True}, "kind": STR}},
            )
        },
    ),
    "/chat/post-file": _post_op(
        "chatPostFile",
        "Upload a file (a path or inline base64) into the thread",
        {**COORD_BODY, **POST_FILE_BODY},
        forms=True,
        ok=POSTED_RESPONSES,
    ),
    "/slack/thread-history": _history_op("slackThreadHistory", LEGACY_QUERY),
    "/slack/post-message": _post_op(
        "slackPostMessage",
        "Legacy Slack post",
        {**LEGACY_BODY, **POST_MESSAGE_BODY},
        forms=True,
        ok=POSTED_RESPONSES,
    ),
    "/slack/post-file": _post_op(
        "slackPostFile",
        "Legacy Slack upload",
        {**LEGACY_BODY, **POST_FILE_BODY},
        forms=True,
        ok=POSTED_RESPONSES,
    ),
}

JOB_ID_PARAM = {"name": "job_id", "in": "path", "required": True, "schema": STR}
JOB_VIEW = {
    "type": "object",
    "required": ["ok", "job"],
    "properties": {
        "ok": {"const": True},
        "job": {
            "type": "object",
            "required": ["jobId", "status"],
            "properties": {
                "jobId": STR,
                "kind": STR,
                "status": {
                    "type": "string",
                    "enum": ["queued", "running", "completed", "failed", "timeout", "cancelled"],
                },
                "attempts": {"type": "integer"},
                "exitCode": {"type": ["integer", "null"]},
                "outputTail": STR,
            },
        },
    },
}
CALLBACK_BODY: dict[str, Any] = {
    "summary": STR,
    "detailsJson": {"description": "JSON value or JSON string"},
    "details_json": {"description": "alias of detailsJson"},
    "jobToken": {"type": "string", "description": "or header x-job-token"},
}
CALLBACK_OK = json_response(
    "accepted",
    {
        "type": "object",
        "required": ["ok"],
        "properties": {"ok": {"const": True}, "eventId": STR, "status": STR},
    },
)


def _job_callback(op_id: str, summary: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "operationId": op_id,
            "security": JOB_SECURITY,
            "parameters": [JOB_ID_PARAM],
            "requestBody": _body(CALLBACK_BODY, forms=False),
            "responses": {"200": CALLBACK_OK, "202": CALLBACK_OK, **_errors(400, 401, 403, 404, 409, 413)},
        }
    }


JOB_PATHS: dict[str, Any] = {
    "/jobs/register": {
        "post": {
            "summary": "Register a background job: a shell script the rq worker runs in the workspace",
            "operationId": "jobsRegister",
            "security": SESSION_SECURITY,
            "requestBody": _body(
                {
                    **COORD_BODY,
                    **LEGACY_BODY,
                    "script": STR,
                    "command": STR,
                    "cwd": {"type": "string", "description": "inside the session workspace"},
                    "kind": STR,
                    "restartOnBoot": {"type": "boolean"},
                    "restart_on_boot": {"type": "boolean"},
                    "timeoutSeconds": {"type": "integer", "minimum": 1, "maximum": 18000},
                },
                forms=False,
            ),
            "responses": {
                "201": json_response(
                    "queued",
                    {
                        "type": "object",
                        "required": ["ok", "jobId"],
                        "properties": {
                            "ok": {"const": True},
                            "jobId": STR,
                            "status": STR,
                            "timeoutSeconds": {"type": "integer"},
                        },
                    },
                ),
                **_errors(400, 401, 403, 404, 413),
            },
        }
    },
    "/jobs/{job_id}": {
        "get": {
            "summary": "A job's status and output tail",
            "operationId": "jobsShow",
            "security": JOB_SECURITY,
            "parameters": [JOB_ID_PARAM],
            "responses": {"200": json_response("the job", JOB_VIEW), **_errors(400, 401, 403, 404)},
        }
    },
    "/jobs/{job_id}/heartbeat": _job_callback("jobsHeartbeat", "The job is alive"),
    "/jobs/{job_id}/event": _job_callback("jobsEvent", "Report progress: starts a Codex turn in the session"),
    "/jobs/{job_id}/complete": _job_callback("jobsComplete", "Finish successfully and report"),
    "/jobs/{job_id}/fail": _job_callback("jobsFail", "Finish with a failure and report"),
    "/jobs/{job_id}/cancel": _job_callback("jobsCancel", "Cancel (job token or the session's token)"),
}


def _api_paths() -> dict[str, Any]:
    return {**copy.deepcopy(CHAT_PATHS), **copy.deepcopy(JOB_PATHS)}


def build_spec(extra_paths: dict[str, Any] | None = None) -> dict[str, Any]:
    paths = {**copy.deepcopy(HEALTH_PATHS), **_api_paths(), **copy.deepcopy(extra_paths or {})}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "codex-broker http-api",
            "version": "1.0.0",
            "description": "The local API Codex calls from its shell, background jobs, and the admin API.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": copy.deepcopy(COMPONENTS),
    }
