"""OpenAPI 3.1 paths of the co-author endpoints (merged into /openapi.json by create_app)."""

from __future__ import annotations

from typing import Any

from codex_broker.http_api.openapi import error_response, json_response

SESSION_KEY_PARAM: dict[str, Any] = {
    "name": "sessionKey",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "maxLength": 800},
    "description": "Session key `<platform>:<conversation>:<root>` (required with admin auth; "
    "with a session or hook token it must name that token's session)",
}
PERSON: dict[str, Any] = {
    "type": "object",
    "required": ["userId", "displayName"],
    "properties": {"userId": {"type": "string"}, "displayName": {"type": "string"}},
}
AUTHOR: dict[str, Any] = {
    "type": "object",
    "required": ["name", "email", "source"],
    "properties": {
        "name": {"type": "string"},
        "email": {"type": "string"},
        "source": {"type": "string", "enum": ["manual", "inferred"]},
    },
}
CONFIG: dict[str, Any] = {
    "type": "object",
    "properties": {
        "excluded": {"type": "array", "items": {"type": "string"}},
        "allowMissing": {"type": "boolean"},
        "updatedBy": {"type": ["string", "null"]},
        "updatedAtMs": {"type": ["integer", "null"]},
    },
}
RESOLUTION: dict[str, Any] = {
    "type": "object",
    "required": ["ok", "sessionKey", "platform", "trailers", "coauthors", "unresolved", "config"],
    "properties": {
        "ok": {"const": True},
        "sessionKey": {"type": "string"},
        "platform": {"type": "string", "enum": ["slack", "feishu"]},
        "trailers": {
            "type": "array",
            "items": {"type": "string"},
            "description": "`Co-authored-by: Name <email>` lines, one per credited person",
        },
        "coauthors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"userId": {"type": "string"}, **AUTHOR["properties"]},
            },
        },
        "unresolved": {"type": "array", "items": PERSON},
        "prompted": {"type": "array", "items": {"type": "string"}},
        "message": {"type": "string", "description": "The given message with the trailers appended"},
        "config": CONFIG,
        "answered": {"type": "boolean"},
        "participants": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    **PERSON["properties"],
                    "excluded": {"type": "boolean"},
                    "author": {"oneOf": [AUTHOR, {"type": "null"}]},
                },
            },
        },
    },
}
SECURITY: list[dict[str, list[str]]] = [{"sessionBearer": []}, {"adminHeader": []}]


def _errors(*codes: int) -> dict[str, Any]:
    texts = {
        400: "invalid input (invalid_json_body, invalid_session_key, invalid_prompt, invalid_message, "
        "invalid_excluded, invalid_credit, invalid_allow_missing, provide_at_most_one)",
        401: "session_token_required, invalid_session_token, admin_auth_required",
        415: "admin_json_required (the admin rule: a write must be application/json)",
        403: "session_mismatch, admin_host_refused, admin_origin_mismatch",
        404: "unknown_session",
        503: "redis_unavailable",
    }
    return {str(code): error_response(texts[code]) for code in codes}


OPENAPI_PATHS: dict[str, Any] = {
    "/git/coauthors/resolve": {
        "post": {
            "summary": "Co-author trailers for a commit in the session's workspace; prompts the unresolved",
            "description": (
                "Called by the commit-msg hook (hook token from `.broker-session`) or by Codex "
                "(session token). Participants without a GitHub author are prompted in the thread "
                "at most every 5 minutes each, unless the thread allowed commits without them."
            ),
            "operationId": "resolveCoauthors",
            "tags": ["git"],
            "security": SECURITY,
            "parameters": [SESSION_KEY_PARAM],
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "prompt": {"type": "boolean", "default": True},
                                "message": {"type": "string", "maxLength": 65536},
                                "sessionKey": {"type": "string"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": json_response("trailers", RESOLUTION),
                **_errors(400, 401, 403, 404, 415, 503),
            },
        }
    },
    "/git/coauthors/status": {
        "get": {
            "summary": "The session's participants, their GitHub authors and the thread's co-author answer",
            "operationId": "coauthorStatus",
            "tags": ["git"],
            "security": SECURITY,
            "parameters": [SESSION_KEY_PARAM],
            "responses": {
                "200": json_response("status", RESOLUTION),
                **_errors(400, 401, 403, 404, 415, 503),
            },
        }
    },
    "/git/coauthors/configure": {
        "post": {
            "summary": "Store the thread's co-author answer (who not to credit; commit without the unmapped)",
            "operationId": "configureCoauthors",
            "tags": ["git"],
            "security": SECURITY,
            "parameters": [SESSION_KEY_PARAM],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "description": "At most one of excluded / credit",
                            "properties": {
                                "sessionKey": {"type": "string"},
                                "excluded": {"type": "array", "items": {"type": "string"}, "maxItems": 200},
                                "credit": {"type": "array", "items": {"type": "string"}, "maxItems": 200},
                                "allowMissing": {"type": "boolean"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": json_response("stored", RESOLUTION),
                **_errors(400, 401, 403, 404, 415, 503),
            },
        }
    },
}
