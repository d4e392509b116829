"""Pure validation of chat/job request input: flat dict in, typed values or `ApiError` out.

Input arrives from a query string, a JSON object or a form, so every reader accepts strings
and, where JSON allows it, numbers and booleans. Field names come in canonical camelCase with
snake_case aliases; an error names the canonical field (or the alias actually sent).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from codex_broker.http_api.errors import ApiError
from codex_broker.libs.buttons import reserved_mark
from codex_broker.libs.contracts import PLATFORMS, Coordinates

Where = Literal["query", "body"]
MAX_FIELD_CHARS = 256

CONVERSATION_NAMES = ("conversationId", "conversation_id")
ROOT_NAMES = ("rootMessageId", "root_message_id")
LEGACY_CONVERSATION = "channel_id"
LEGACY_ROOT = "thread_ts"


def missing(where: Where, field: str) -> ApiError:
    return ApiError(400, f"missing_required_{where}", field=field)


def pick(data: dict[str, Any], names: Sequence[str]) -> tuple[str, Any] | None:
    """The first of `names` present with a non-empty value, as (name, value)."""
    for name in names:
        value = data.get(name)
        if value is not None and value != "":
            return name, value
    return None


def as_text(name: str, value: Any, *, max_chars: int | None = None) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ApiError(400, "invalid_field", field=name)
    text = value if isinstance(value, str) else json.dumps(value)
    if max_chars is not None and len(text) > max_chars:
        raise ApiError(400, "invalid_field", field=name)
    return text


def optional_text(data: dict[str, Any], names: Sequence[str], *, max_chars: int | None = None) -> str | None:
    found = pick(data, names)
    return None if found is None else as_text(*found, max_chars=max_chars)


def required_text(
    data: dict[str, Any], names: Sequence[str], where: Where, *, max_chars: int | None = None
) -> str:
    found = pick(data, names)
    if found is None:
        raise missing(where, names[0])
    return as_text(*found, max_chars=max_chars)


def choice(
    data: dict[str, Any], names: Sequence[str], allowed: Sequence[str], code: str, default: str | None
) -> str | None:
    found = pick(data, names)
    if found is None:
        return default
    name, value = found
    if not isinstance(value, str) or value not in allowed:
        raise ApiError(400, code, field=name, allowed=allowed)
    return value


def platform_of(data: dict[str, Any], where: Where, *, legacy: bool) -> str:
    """`platform` must be slack or feishu; legacy Slack aliases imply slack when it is omitted."""
    found = pick(data, ("platform",))
    if found is not None:
        value = found[1]
        if not isinstance(value, str) or value not in PLATFORMS:
            raise ApiError(400, "invalid_platform", field="platform", allowed=PLATFORMS)
        return value
    if legacy or pick(data, (LEGACY_CONVERSATION, LEGACY_ROOT)) is not None:
        return "slack"
    raise missing(where, "platform")


def coordinates(data: dict[str, Any], where: Where, *, legacy: bool = False) -> Coordinates:
    platform = platform_of(data, where, legacy=legacy)
    if legacy and platform != "slack":  # /slack/* speaks only for Slack threads
        raise ApiError(400, "invalid_platform", field="platform", allowed=["slack"])
    slack = platform == "slack"
    conv_names = (*CONVERSATION_NAMES, LEGACY_CONVERSATION) if slack else CONVERSATION_NAMES
    root_names = (*ROOT_NAMES, LEGACY_ROOT) if slack else ROOT_NAMES
    if legacy:  # the legacy routes document the Slack names, so errors use them
        conv_names = (LEGACY_CONVERSATION, *CONVERSATION_NAMES)
        root_names = (LEGACY_ROOT, *ROOT_NAMES)
    conversation = required_text(data, conv_names, where, max_chars=MAX_FIELD_CHARS)
    root = required_text(data, root_names, where, max_chars=MAX_FIELD_CHARS)
    try:
        return Coordinates(platform=platform, conversation_id=conversation, root_message_id=root)  # type: ignore[arg-type]
    except ValidationError as exc:  # defensive: lengths are checked above
        raise ApiError(400, "invalid_field", field=conv_names[0]) from exc


def positive_int(name: str, value: Any, code: str) -> int:
    if isinstance(value, bool):
        raise ApiError(400, code, field=name)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 12:
        number = int(value.strip())
    elif isinstance(value, float) and value.is_integer() and abs(value) < 1e12:
        number = int(value)
    else:
        raise ApiError(400, code, field=name)
    if number <= 0:
        raise ApiError(400, code, field=name)
    return number


def history_limit(data: dict[str, Any], max_limit: int) -> int:
    found = pick(data, ("limit",))
    if found is None:
        return max_limit
    return min(positive_int("limit", found[1], "invalid_limit"), max_limit)


def json_field(data: dict[str, Any], names: Sequence[str]) -> Any:
    """A structured value given as JSON or as a JSON string; a bad string names only the field."""
    found = pick(data, names)
    if found is None:
        return None
    name, value = found
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            raise ApiError(400, "invalid_json_field", field=name) from None
    return value


def boolean(data: dict[str, Any], names: Sequence[str], default: bool) -> bool:
    found = pick(data, names)
    if found is None:
        return default
    name, value = found
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.lower() in ("true", "1", "yes")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ApiError(400, "invalid_field", field=name)


def decode_base64(name: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise ApiError(400, "invalid_content_base64", field=name)
    compact = "".join(value.split())
    try:
        content = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid_content_base64", field=name) from None
    if not content:
        raise ApiError(400, "invalid_content_base64", field=name)
    return content


# ---- the requests -------------------------------------------------------------------------

HISTORY_FORMATS = ("json", "text")
POST_KINDS = ("progress", "final", "block", "wait")
POST_FORMATS = ("markdown", "text", "rich_text", "card")
STATE_KINDS = ("wait", "block", "final")
RICH_NAMES = ("richText", "rich_text")
MAX_TEXT_CHARS = 200_000


@dataclass(frozen=True)
class HistoryQuery:
    coords: Coordinates
    before_message_id: str | None
    limit: int
    format: str


def history_query(data: dict[str, Any], max_limit: int, *, legacy: bool = False) -> HistoryQuery:
    coords = coordinates(data, "query", legacy=legacy)
    before_names = ("before_ts", "beforeMessageId", "before_message_id") if legacy else ()
    before_names = before_names or ("beforeMessageId", "before_message_id", "before_ts")
    before = optional_text(data, before_names, max_chars=MAX_FIELD_CHARS)
    limit = history_limit(data, max_limit)
    fmt = choice(data, ("format",), HISTORY_FORMATS, "invalid_format", "json")
    return HistoryQuery(coords=coords, before_message_id=before, limit=limit, format=fmt or "json")


@dataclass(frozen=True)
class PostMessage:
    coords: Coordinates
    text: str
    kind: str
    reason: str | None
    format: str
    rich: Any


def post_message(data: dict[str, Any], *, legacy: bool = False) -> PostMessage:
    coords = coordinates(data, "body", legacy=legacy)
    kind = choice(data, ("kind",), POST_KINDS, "invalid_kind", "progress") or "progress"
    fmt = choice(data, ("format",), POST_FORMATS, "invalid_format", None)
    rich_text = json_field(data, RICH_NAMES)
    card = json_field(data, ("card",))
    if fmt is None:
        fmt = "card" if card is not None else "rich_text" if rich_text is not None else "markdown"
    text = optional_text(data, ("text",), max_chars=MAX_TEXT_CHARS) or ""
    rich = card if fmt == "card" else rich_text if fmt == "rich_text" else None
    if fmt == "card" and card is None:
        raise missing("body", "card")
    if fmt == "rich_text" and rich_text is None:
        raise missing("body", "richText")
    if fmt in ("markdown", "text") and not text.strip():
        raise missing("body", "text")
    if rich is not None:
        refuse_reserved_marks(rich, "card" if fmt == "card" else _sent_name(data, RICH_NAMES))
    reason = optional_text(data, ("reason",), max_chars=MAX_TEXT_CHARS)
    if kind in ("block", "wait") and not (reason and reason.strip()):
        raise ApiError(400, "missing_reason", field="reason")
    return PostMessage(coords=coords, text=text, kind=kind, reason=reason, format=fmt, rich=rich)


def refuse_reserved_marks(rich: Any, field: str) -> None:
    """Blocks and cards from Codex must not look like the broker's own Stop / Approve buttons."""
    path = reserved_mark(rich)
    if path is not None:
        raise ApiError(400, "reserved_action_id", field=field, detail=path[:200])


def _sent_name(data: dict[str, Any], names: Sequence[str]) -> str:
    found = pick(data, names)
    return found[0] if found is not None else names[0]


@dataclass(frozen=True)
class PostState:
    coords: Coordinates
    kind: str
    reason: str | None


def post_state(data: dict[str, Any]) -> PostState:
    coords = coordinates(data, "body")
    found = pick(data, ("kind",))
    if found is None:
        raise missing("body", "kind")
    kind = choice(data, ("kind",), STATE_KINDS, "invalid_kind", None) or ""
    reason = optional_text(data, ("reason",), max_chars=MAX_TEXT_CHARS)
    if kind in ("block", "wait") and not (reason and reason.strip()):
        raise ApiError(400, "missing_reason", field="reason")
    return PostState(coords=coords, kind=kind, reason=reason)


@dataclass(frozen=True)
class PostFile:
    coords: Coordinates
    file_path: str | None
    content: bytes | None
    filename: str | None
    title: str | None
    initial_comment: str | None
    alt_text: str | None
    snippet_type: str | None
    content_type: str | None


FILE_PATH_NAMES = ("filePath", "file_path")
CONTENT_NAMES = ("contentBase64", "content_base64")


def post_file(data: dict[str, Any], *, legacy: bool = False) -> PostFile:
    coords = coordinates(data, "body", legacy=legacy)
    path = pick(data, FILE_PATH_NAMES)
    inline = pick(data, CONTENT_NAMES)
    if (path is None) == (inline is None):
        raise ApiError(400, "provide_exactly_one_file_source", allowed=[*FILE_PATH_NAMES, *CONTENT_NAMES])
    filename = optional_text(data, ("filename",), max_chars=255)
    content: bytes | None = None
    if inline is not None:
        if not filename:
            raise missing("body", "filename")
        content = decode_base64(*inline)
    return PostFile(
        coords=coords,
        file_path=as_text(*path, max_chars=4096) if path is not None else None,
        content=content,
        filename=filename,
        title=optional_text(data, ("title",), max_chars=1000),
        initial_comment=optional_text(
            data, ("initialComment", "initial_comment", "text"), max_chars=MAX_TEXT_CHARS
        ),
        alt_text=optional_text(data, ("altText", "alt_text"), max_chars=2000),
        snippet_type=optional_text(data, ("snippetType", "snippet_type"), max_chars=64),
        content_type=optional_text(data, ("contentType", "content_type"), max_chars=255),
    )


# ---- jobs ---------------------------------------------------------------------------------

JOB_KIND_CHARS = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
TIMEOUT_NAMES = ("timeoutSeconds", "timeout_seconds", "timeout")


@dataclass(frozen=True)
class JobRegistration:
    coords: Coordinates
    script: str
    cwd: str | None
    kind: str
    restart_on_boot: bool
    timeout_s: int


def job_registration(
    data: dict[str, Any], *, max_timeout_s: int, default_timeout_s: int, max_script_bytes: int
) -> JobRegistration:
    coords = coordinates(data, "body")
    script = pick(data, ("script",))
    command = pick(data, ("command",))
    if script is None and command is None:
        raise missing("body", "script")
    if script is not None and command is not None:
        raise ApiError(400, "provide_exactly_one_job_source", allowed=["script", "command"])
    source = script or command
    assert source is not None
    if not isinstance(source[1], str):
        raise ApiError(400, "invalid_field", field=source[0])
    if len(source[1].encode()) > max_script_bytes:
        raise ApiError(400, "script_too_large", field=source[0])
    kind = optional_text(data, ("kind",)) or "generic"
    if not JOB_KIND_CHARS.match(kind):
        raise ApiError(400, "invalid_field", field="kind")
    found = pick(data, TIMEOUT_NAMES)
    timeout_s = default_timeout_s
    if found is not None:
        timeout_s = positive_int(found[0], found[1], "invalid_timeout")
        if timeout_s > max_timeout_s:
            raise ApiError(400, "invalid_timeout", field=found[0])
    return JobRegistration(
        coords=coords,
        script=source[1],
        cwd=optional_text(data, ("cwd",), max_chars=4096),
        kind=kind,
        restart_on_boot=boolean(data, ("restartOnBoot", "restart_on_boot"), True),
        timeout_s=timeout_s,
    )


@dataclass(frozen=True)
class JobCallbackInput:
    summary: str
    details: Any


def job_callback(data: dict[str, Any]) -> JobCallbackInput:
    summary = optional_text(data, ("summary", "message", "text"), max_chars=MAX_TEXT_CHARS) or ""
    details = json_field(data, ("detailsJson", "details_json", "details"))
    return JobCallbackInput(summary=summary, details=details)
