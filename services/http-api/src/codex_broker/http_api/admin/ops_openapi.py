"""OpenAPI descriptions of the rollout section's routes (admin/ops.py)."""

from __future__ import annotations

from typing import Any

from codex_broker.http_api.admin.openapi_paths import SESSION_KEY, _op, _path, _with

INSTANCE = _path("instance", "A live codex-runner's instance id (`codex-broker status`)")
_STRINGS = {"type": "array", "items": {"type": "string"}}
_NULLABLE = {"type": ["string", "null"]}

RELEASE = _with(
    {
        "versions": {
            "type": "object",
            "additionalProperties": _STRINGS,
            "description": "version → service/instance",
        },
        "mixed": {"type": "boolean", "description": "live instances report more than one version"},
        "runners": {"type": "array", "items": {"type": "object"}},
    },
    ["versions", "mixed", "runners"],
)
DRAINED = _with(
    {
        "instance": {"type": "string"},
        "control_id": {"type": "string"},
        "active": {"type": ["integer", "null"], "description": "turns running when the control was sent"},
    },
    ["instance", "control_id"],
)
TRANSCRIPT = _with(
    {
        "session_key": {"type": "string"},
        "platform": {"type": "string"},
        "source": {"type": "string", "enum": ["web-thread", "timeline"]},
        "web_chat_url": _NULLABLE,
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "at_ms": {"type": ["integer", "null"]},
                    "role": {"type": "string", "enum": ["user", "codex"]},
                    "author": _NULLABLE,
                    "text": {"type": "string"},
                },
            },
        },
    },
    ["session_key", "source", "messages"],
)
ACCOUNTS = _with(
    {
        "accounts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["profile", "ok"],
                "properties": {
                    "profile": {"type": "string"},
                    "ok": {"type": "boolean"},
                    "kind": _NULLABLE,
                    "who": _NULLABLE,
                    "plan": _NULLABLE,
                    "rate_limits": _NULLABLE,
                    "error": _NULLABLE,
                },
            },
        }
    },
    ["accounts"],
)

OPENAPI_PATHS: dict[str, Any] = {
    "/admin/api/ops/release": {
        "get": _op(
            "Versions of the live instances (flagged when mixed) and the runners", "adminRelease", RELEASE
        )
    },
    "/admin/api/ops/runners/{instance}/drain": {
        "post": _op(
            "Drain a runner (as `codex-broker drain`): stop claiming, finish or hand over its turns, exit",
            "adminDrainRunner",
            DRAINED,
            errors=(400, 404),
            parameters=[INSTANCE],
            write=True,
        )
    },
    "/admin/api/ops/transcript/{session_key}": {
        "get": _op(
            "A session's read-only transcript, and its web-chat link for a web session",
            "adminSessionTranscript",
            TRANSCRIPT,
            errors=(404,),
            parameters=[SESSION_KEY],
        )
    },
    "/admin/api/ops/accounts": {
        "get": _op(
            "Each auth profile's Codex account (app-server account/read)", "adminCodexAccounts", ACCOUNTS
        )
    },
}
