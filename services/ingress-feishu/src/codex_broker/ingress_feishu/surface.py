"""Where a session's messages go on Feishu, and the shared 'post text into the thread' effect."""

from __future__ import annotations

import hashlib
from typing import Any

from codex_broker.ingress_feishu.api import FeishuApi, FeishuError
from codex_broker.ingress_feishu.markdown import TEXT_LIMIT, post_content, split_text, text_content
from codex_broker.libs.contracts import Coordinates
from codex_broker.libs.ingress_kit.platform import Target


def coordinates(target: Target) -> Coordinates:
    return Coordinates(
        platform="feishu", conversation_id=target.conversation_id, root_message_id=target.root_message_id
    )


def reply_target(coords: Coordinates) -> str | None:
    """Group threads are answered in the thread of their root message; a private chat (root =
    chat id) gets plain chat messages."""
    return None if coords.root_message_id == coords.conversation_id else coords.root_message_id


def message_uuid(base: str, index: int = 0) -> str:
    # Feishu de-duplicates sends with the same uuid (≤ 50 chars) for an hour: retries are safe
    return hashlib.sha256(f"{base}:{index}".encode()).hexdigest()[:40]


async def send(
    api: FeishuApi, coords: Coordinates, msg_type: str, content: dict[str, Any], *, uuid: str | None
) -> str:
    return await api.send_message(
        chat_id=coords.conversation_id,
        reply_to=reply_target(coords),
        msg_type=msg_type,
        content=content,
        uuid=uuid,
    )


async def post_markdown(api: FeishuApi, coords: Coordinates, markdown: str, *, uuid_base: str) -> list[str]:
    """Markdown as `post` messages split at 4,000 characters; plain text when a post is refused."""
    ids = []
    for index, chunk in enumerate(split_text(markdown, TEXT_LIMIT)):
        uuid = message_uuid(uuid_base, index)
        try:
            ids.append(await send(api, coords, "post", post_content(chunk), uuid=uuid))
        except FeishuError as exc:
            if not exc.permanent:
                raise
            ids.append(
                await send(
                    api, coords, "text", text_content(chunk), uuid=message_uuid(uuid_base + "/t", index)
                )
            )
    return ids


async def post_text(api: FeishuApi, coords: Coordinates, text: str, *, uuid_base: str) -> list[str]:
    return [
        await send(api, coords, "text", text_content(chunk), uuid=message_uuid(uuid_base, index))
        for index, chunk in enumerate(split_text(text, TEXT_LIMIT))
    ]
