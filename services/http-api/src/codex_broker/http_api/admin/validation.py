"""Validation of admin API input. Pure: each function returns the clean value or raises ApiError."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from codex_broker.http_api.errors import ApiError
from codex_broker.libs.authors import valid_email

PLATFORMS = ("slack", "feishu", "discord")
DEFAULT_PAGE_LIMIT = 50
MAX_PAGE_LIMIT = 200
MAX_AUTH_JSON_BYTES = 64 * 1024

_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_API_KEY = re.compile(r"^[A-Za-z0-9_\-.]{20,512}$")


def platform(raw: str | None, *, required: bool = False) -> str | None:
    """None when absent and optional; an empty value is as invalid as any other non-platform."""
    if raw is None:
        if required:
            raise ApiError(400, "invalid_platform", field="platform", allowed=list(PLATFORMS))
        return None
    if raw not in PLATFORMS:
        raise ApiError(400, "invalid_platform", field="platform", allowed=list(PLATFORMS))
    return raw


def _non_negative_int(raw: str | None, default: int, code: str, field: str) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise ApiError(400, code, field=field)
    return int(raw)


def page(query: Mapping[str, str]) -> tuple[int, int]:
    """(offset, limit) from the query; limit must be positive and is clamped to MAX_PAGE_LIMIT."""
    offset = _non_negative_int(query.get("offset"), 0, "invalid_offset", "offset")
    limit = _non_negative_int(query.get("limit"), DEFAULT_PAGE_LIMIT, "invalid_limit", "limit")
    if limit == 0:
        raise ApiError(400, "invalid_limit", field="limit")
    return offset, min(limit, MAX_PAGE_LIMIT)


def body_object(raw: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json") from None
    if not isinstance(parsed, dict):
        raise ApiError(400, "invalid_json")
    return parsed


def pick(body: Mapping[str, Any], *names: str) -> Any:
    """The first present alias (camelCase first, then snake_case)."""
    for name in names:
        if name in body and body[name] is not None:
            return body[name]
    return None


def profile_name(raw: Any, *, field: str = "name") -> str:
    if raw is None or raw == "":
        raise ApiError(400, "missing_required_body", field=field)
    if not isinstance(raw, str) or not _PROFILE_NAME.match(raw):
        raise ApiError(400, "invalid_profile_name", field=field)
    return raw


def auth_json(raw: Any) -> tuple[dict[str, Any], str]:
    """A Codex auth.json (object or JSON string) → (document, kind), kind = chatgpt | apikey.

    The shape Codex itself writes: `tokens` {id_token, access_token, refresh_token[, account_id]}
    for a ChatGPT login, or a non-empty `OPENAI_API_KEY` for an API-key login. Nothing of the
    document is ever echoed back in an error.
    """
    field = "authJson"
    if raw is None:
        raise ApiError(400, "missing_required_body", field=field)
    if isinstance(raw, str):
        if len(raw.encode()) > MAX_AUTH_JSON_BYTES:
            raise ApiError(413, "body_too_large", field=field)
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ApiError(400, "invalid_json_field", field=field) from None
    if not isinstance(raw, dict):
        raise ApiError(400, "invalid_auth_json", field=field)
    if len(json.dumps(raw).encode()) > MAX_AUTH_JSON_BYTES:
        raise ApiError(413, "body_too_large", field=field)
    mode = raw.get("auth_mode")
    if mode is not None and not isinstance(mode, str):
        raise ApiError(400, "invalid_auth_json", field=field)
    tokens = raw.get("tokens")
    if tokens is not None:
        required = ("id_token", "access_token", "refresh_token")
        if not isinstance(tokens, dict) or not all(_non_empty_str(tokens.get(k)) for k in required):
            raise ApiError(400, "invalid_auth_json", field=field)
        account = tokens.get("account_id")
        if account is not None and not isinstance(account, str):
            raise ApiError(400, "invalid_auth_json", field=field)
        return raw, "chatgpt"
    if _non_empty_str(raw.get("OPENAI_API_KEY")):
        return raw, "apikey"
    raise ApiError(400, "invalid_auth_json", field=field)


def api_key(raw: Any) -> str:
    field = "apiKey"
    if raw is None or raw == "":
        raise ApiError(400, "missing_required_body", field=field)
    if not isinstance(raw, str) or not _API_KEY.match(raw.strip()):
        raise ApiError(400, "invalid_api_key", field=field)
    return raw.strip()


def user_id(raw: Any) -> str:
    if raw is None or raw == "":
        raise ApiError(400, "missing_required_body", field="userId")
    if not isinstance(raw, str) or not _USER_ID.match(raw):
        raise ApiError(400, "invalid_user_id", field="userId")
    return raw


def author_name(raw: Any) -> str:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise ApiError(400, "missing_required_body", field="name")
    if not isinstance(raw, str):
        raise ApiError(400, "invalid_name", field="name")
    name = raw.strip()
    if len(name) > 100 or _CONTROL.search(name) or "<" in name or ">" in name:
        raise ApiError(400, "invalid_name", field="name")
    return name


def author_email(raw: Any) -> str:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise ApiError(400, "missing_required_body", field="email")
    if not isinstance(raw, str):
        raise ApiError(400, "invalid_email", field="email")
    email = raw.strip()
    # the same rule the commit hook applies when it reads the mapping back
    if not valid_email(email):
        raise ApiError(400, "invalid_email", field="email")
    return email


def _non_empty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())
