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
    },
}


CHAT_PATHS: dict[str, Any] = {}
JOB_PATHS: dict[str, Any] = {}


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
