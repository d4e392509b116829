"""A session's read-only transcript for the admin page, from what the broker itself kept.

Web sessions: the web chat's own thread store holds every message in full (ingress-web writes
it; the admin only reads). Slack and Feishu sessions: the broker keeps no copy of their threads
beyond the session timeline the orchestrator writes — each message, steer and answer as an event,
cut to a few hundred characters — so that is the transcript (asking the platform for the full
history would need the ingress's tokens, which stay there).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from redis.asyncio import Redis

from codex_broker.http_api.admin.sessions import exists, platform_of, text
from codex_broker.http_api.errors import ApiError
from codex_broker.libs.keys import Keys
from codex_broker.libs.logs import Redactor

WEB = "web"
TIMELINE_READ = 500
WEB_MESSAGES_READ = 2000
SPOKEN = {"message": "user", "steer": "user", "answer": "codex"}


def web_root(session_key: str) -> str | None:
    """The web thread's root id of a web session key (`web:<conversation>:<root>`)."""
    parts = session_key.split(":", 2)
    return parts[2] if len(parts) == 3 and parts[0] == WEB and parts[2] else None


def web_chat_link(chat_url: str | None, session_key: str) -> str | None:
    """The web chat opened on this session's thread (its page reads `#t=<root>`)."""
    root = web_root(session_key)
    if root is None or not chat_url:
        return None
    return f"{chat_url.split('#', 1)[0]}#t={quote(root, safe='')}"


def _split_speaker(summary: str) -> tuple[str, str]:
    who, sep, said = summary.partition(": ")
    return (who, said) if sep and who and len(who) <= 80 else ("", summary)


def from_timeline(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Timeline entries (newest first, as stored) → the conversation, oldest first (pure)."""
    turns = []
    for entry in reversed(entries):
        role = SPOKEN.get(str(entry.get("kind")))
        if role is None:
            continue
        summary = str(entry.get("summary") or "")
        who, said = _split_speaker(summary) if role == "user" else ("Codex", summary)
        turns.append({"at_ms": entry.get("at_ms"), "role": role, "author": who or None, "text": said})
    return turns


def from_web_messages(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The web chat's stored messages → the conversation in id order (pure); a live view counts
    by the answer it shows, a private (ephemeral) note is left out."""
    turns = []
    for record in sorted(records, key=lambda r: str(r.get("id", ""))):
        if record.get("only_for") or not record.get("text"):
            continue
        author = record.get("author") or {}
        turns.append(
            {
                "at_ms": record.get("created_ms"),
                "role": "codex" if author.get("bot") else "user",
                "author": author.get("name") or author.get("id"),
                "text": str(record["text"]),
                "files": [f.get("name") for f in record.get("files") or [] if isinstance(f, dict)],
            }
        )
    return turns


def _loads(raw: Any) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


async def of_session(redis: Redis, keys: Keys, session_key: str, redactor: Redactor) -> dict[str, Any]:
    if not await exists(redis, keys, session_key):
        raise ApiError(404, "unknown_session")
    root = web_root(session_key)
    if root is not None:
        raw = await redis.hvals(keys.web_messages(root))  # type: ignore[misc]
        records = [r for r in (_loads(v) for v in raw[:WEB_MESSAGES_READ]) if r is not None]
        turns, source = from_web_messages(records), "web-thread"
    else:
        raw = await redis.lrange(keys.session_timeline(session_key), 0, TIMELINE_READ - 1)  # type: ignore[misc]
        entries = [e for e in (_loads(text(v)) for v in raw) if e is not None]
        turns, source = from_timeline(entries), "timeline"
    return {
        "session_key": session_key,
        "platform": platform_of(session_key),
        "source": source,
        "messages": redactor.value(turns),
    }
