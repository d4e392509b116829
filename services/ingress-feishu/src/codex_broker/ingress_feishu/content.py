"""Feishu message content (the JSON string in `message.content`) → plain text and attachments.

Pure functions: used for inbound events and for the history RPC alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from codex_broker.ingress_feishu.resources import resource_url
from codex_broker.libs.contracts import Attachment

_SPACES = re.compile(r"[ \t]{2,}")


@dataclass(frozen=True)
class Mention:
    key: str  # placeholder in the text, e.g. "@_user_1"
    open_id: str
    name: str


@dataclass
class Content:
    text: str = ""
    attachments: list[Attachment] = field(default_factory=list)


def parse_mentions(raw: Iterable[Mapping[str, Any]] | None) -> list[Mention]:
    mentions = []
    for item in raw or []:
        ids = item.get("id") or {}
        open_id = ids.get("open_id", "") if isinstance(ids, Mapping) else str(ids)
        mentions.append(
            Mention(key=str(item.get("key", "")), open_id=open_id, name=str(item.get("name", "")))
        )
    return mentions


def replace_mentions(text: str, mentions: list[Mention], bot_open_id: str) -> str:
    """Drop the bot's own mention (it only addresses the bot); others become readable @names."""
    # longest keys first: "@_user_10" must not be hit by "@_user_1"
    for mention in sorted(mentions, key=lambda m: len(m.key), reverse=True):
        if not mention.key:
            continue
        if bot_open_id and mention.open_id == bot_open_id:
            text = re.sub(re.escape(mention.key) + r"(?![0-9]) ?", "", text)
        else:
            readable = "@" + mention.name.replace("\\", "\\\\")  # a literal replacement, not a template
            text = re.sub(re.escape(mention.key) + r"(?![0-9])", readable, text)
    return _SPACES.sub(" ", text).strip()


def parse_content(message_type: str, raw_content: str, message_id: str) -> Content:
    try:
        body = json.loads(raw_content) if raw_content else {}
    except json.JSONDecodeError:
        return Content(text=raw_content)
    if not isinstance(body, dict):
        return Content()
    parser = _PARSERS.get(message_type)
    if parser is None:
        return Content(text=f"[{message_type} message]")
    return parser(body, message_id)


def _text(body: dict[str, Any], _: str) -> Content:
    return Content(text=str(body.get("text", "")))


def _image(body: dict[str, Any], message_id: str) -> Content:
    key = str(body.get("image_key", ""))
    if not key:
        return Content()
    return Content(attachments=[_attachment(message_id, key, "image", name=f"{key}.png")])


def _file(body: dict[str, Any], message_id: str) -> Content:
    key = str(body.get("file_key", ""))
    if not key:
        return Content()
    name = str(body.get("file_name") or key)
    return Content(attachments=[_attachment(message_id, key, "file", name=name)])


def _post(body: dict[str, Any], message_id: str) -> Content:
    post = _localized_post(body)
    lines: list[str] = []
    attachments: list[Attachment] = []
    title = str(post.get("title") or "").strip()
    if title:
        lines.append(title)
    for paragraph in post.get("content") or []:
        if not isinstance(paragraph, list):
            continue
        parts: list[str] = []
        for element in paragraph:
            if not isinstance(element, dict):
                continue
            text, attachment = _post_element(element, message_id)
            parts.append(text)
            if attachment is not None:
                attachments.append(attachment)
        lines.append("".join(parts).strip())
    return Content(text="\n".join(lines).strip(), attachments=attachments)


def _localized_post(body: dict[str, Any]) -> dict[str, Any]:
    """Events carry {title, content}; the send format wraps it per locale ({"zh_cn": {...}})."""
    if "content" in body:
        return body
    for value in body.values():
        if isinstance(value, dict) and "content" in value:
            return value
    return {}


def _post_element(element: dict[str, Any], message_id: str) -> tuple[str, Attachment | None]:
    tag = element.get("tag")
    if tag in ("text", "md"):
        return str(element.get("text", "")), None
    if tag == "a":
        text, href = str(element.get("text", "")), str(element.get("href", ""))
        return (f"[{text}]({href})" if text and text != href else href), None
    if tag == "at":
        # in events the user id is the mention key; replace_mentions resolves it afterwards
        user = str(element.get("user_id", ""))
        return (user if user.startswith("@_") else f"@{element.get('user_name') or user}"), None
    if tag == "img":
        key = str(element.get("image_key", ""))
        return "", (_attachment(message_id, key, "image", name=f"{key}.png") if key else None)
    if tag == "media":
        key = str(element.get("file_key", ""))
        return "", (_attachment(message_id, key, "file", name=key) if key else None)
    if tag == "code_block":
        language = str(element.get("language", "")).lower()
        return f"\n```{language}\n{element.get('text', '')}\n```\n", None
    if tag == "emotion":
        return f":{element.get('emoji_type', '')}:", None
    if tag == "hr":
        return "\n---\n", None
    return str(element.get("text", "")), None


def _attachment(message_id: str, key: str, kind: str, *, name: str) -> Attachment:
    return Attachment(id=key, name=name, is_image=kind == "image", url=resource_url(message_id, key, kind))


_PARSERS = {
    "text": _text,
    "post": _post,
    "image": _image,
    "file": _file,
}
