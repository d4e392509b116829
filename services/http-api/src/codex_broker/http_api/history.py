"""Rendering thread history for Codex: JSON objects or plain text lines (pure)."""

from __future__ import annotations

from typing import Any

from codex_broker.libs.contracts import HistoryMessage


def message_json(message: HistoryMessage) -> dict[str, Any]:
    return {
        "messageId": message.message_id,
        "userId": message.actor.id,
        "userName": message.actor.display_name,
        "isBot": message.actor.is_bot,
        "text": message.text,
        "ts": message.ts.isoformat() if message.ts else None,
        "attachments": [
            {"name": a.name, "mimetype": a.mimetype, "size": a.size, "isImage": a.is_image}
            for a in message.attachments
        ],
    }


def message_line(message: HistoryMessage) -> str:
    when = message.ts.strftime("%Y-%m-%d %H:%M:%SZ") if message.ts else message.message_id
    who = message.actor.display_name or message.actor.id
    role = " (bot)" if message.actor.is_bot else ""
    files = "".join(f" [file: {a.name or a.id}]" for a in message.attachments)
    return f"[{when}] {who}{role} <{message.actor.id}> #{message.message_id}: {message.text}{files}"


def render_text(messages: list[HistoryMessage]) -> str:
    if not messages:
        return "(no messages)\n"
    return "\n".join(message_line(m) for m in messages) + "\n"
