"""The two read RPCs: a thread's history and downloading a message's files."""

from __future__ import annotations

import asyncio
import logging
import mimetypes
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codex_broker.ingress_feishu.api import FeishuApi
from codex_broker.ingress_feishu.content import parse_content, parse_mentions, replace_mentions
from codex_broker.ingress_feishu.resources import parse_resource_url
from codex_broker.libs.contracts import (
    Actor,
    Attachment,
    Coordinates,
    DownloadPayload,
    HistoryMessage,
    HistoryPayload,
)
from codex_broker.libs.paths import safe_name
from codex_broker.libs.safe_files import UnsafePath, relative_parts, write_file

log = logging.getLogger(__name__)

PAGE_SIZE = 50
MAX_PAGES = 20


class RpcError(Exception):
    """A request that cannot succeed as asked (bad path, too large): answered with ok=False."""


def to_history_message(item: dict[str, Any], bot_open_id: str) -> HistoryMessage:
    sender = item.get("sender") or {}
    body = item.get("body") or {}
    message_id = str(item.get("message_id") or "")
    content = parse_content(str(item.get("msg_type") or ""), str(body.get("content") or ""), message_id)
    sender_id = str(sender.get("id") or "unknown")
    return HistoryMessage(
        message_id=message_id,
        actor=Actor(
            id=sender_id,
            display_name=str(sender.get("sender_name") or ""),
            is_bot=sender.get("sender_type") not in (None, "", "user"),
        ),
        text=replace_mentions(content.text, parse_mentions(item.get("mentions")), bot_open_id),
        ts=_ms(item.get("create_time")),
        attachments=content.attachments,
    )


def select_history(
    items_newest_first: list[dict[str, Any]], *, before: str | None, limit: int, root: str | None
) -> tuple[list[dict[str, Any]], bool]:
    """Pure paging rule: skip up to and including `before`, keep the thread's messages, stop at
    `limit`. Returns (kept newest first, whether `before` has been passed)."""
    kept: list[dict[str, Any]] = []
    passed = before is None
    for item in items_newest_first:
        if item.get("deleted"):
            continue
        message_id = item.get("message_id")
        if not passed:
            passed = message_id == before
            continue
        if root is not None and message_id != root and item.get("root_id") != root:
            continue
        kept.append(item)
        if len(kept) >= limit:
            break
    return kept, passed


async def history(
    api: FeishuApi, coords: Coordinates, payload: HistoryPayload, bot_open_id: str
) -> list[HistoryMessage]:
    """The thread's messages, oldest first, before an exclusive message id."""
    root_message: dict[str, Any] = {}
    if coords.root_message_id == coords.conversation_id:
        container, container_id, root = "chat", coords.conversation_id, None
    else:
        root_message = await api.get_message(coords.root_message_id)
        thread_id = str(root_message.get("thread_id") or "")
        if thread_id:
            container, container_id, root = "thread", thread_id, None
        else:  # a reply chain without a thread: the chat's messages that belong to the root
            container, container_id, root = "chat", coords.conversation_id, coords.root_message_id
    collected: list[dict[str, Any]] = []
    before = payload.before_message_id
    page_token: str | None = None
    for _ in range(MAX_PAGES):
        items, page_token = await api.list_messages(
            container_type=container, container_id=container_id, page_token=page_token, page_size=PAGE_SIZE
        )
        kept, passed = select_history(items, before=before, limit=payload.limit - len(collected), root=root)
        collected.extend(kept)
        if passed:
            before = None
        if len(collected) >= payload.limit or page_token is None:
            break
    if container == "thread" and len(collected) < payload.limit and page_token is None and before is None:
        # the thread's first message, in case the listing leaves it out
        collected = _with_root(collected, root_message)
    return [to_history_message(item, bot_open_id) for item in reversed(collected)]


def _with_root(collected: list[dict[str, Any]], root_message: dict[str, Any]) -> list[dict[str, Any]]:
    if not root_message or any(
        item.get("message_id") == root_message.get("message_id") for item in collected
    ):
        return collected
    return [*collected, root_message]


async def download(api: FeishuApi, payload: DownloadPayload, data_root: Path) -> list[Attachment]:
    """Each file saved into the session's directory; Codex's shell writes there too, so the write
    goes through `libs.safe_files` (a planted symlink is refused or replaced, never followed)."""
    dest = Path(payload.dest_dir)
    sessions_root = Path(data_root) / "sessions"
    try:  # lexical: a symlink on the way is refused when the directory is opened
        relative_parts(sessions_root, dest)
    except UnsafePath:
        raise RpcError("dest_dir must be inside DATA_ROOT/sessions") from None
    files = []
    for attachment in payload.attachments:
        ref = parse_resource_url(attachment.url)
        if ref is None:
            raise RpcError(f"not a Feishu message resource: {attachment.id}")
        got = await api.download_resource(ref.message_id, ref.file_key, ref.kind)
        if len(got.data) > payload.max_bytes:
            raise RpcError(f"file too large: {len(got.data)} bytes > {payload.max_bytes}")
        name = _file_name(attachment, got.file_name, got.content_type)
        try:
            path = await asyncio.to_thread(write_file, sessions_root, dest, name, got.data)
        except UnsafePath as exc:
            raise RpcError(f"unsafe_path: {exc}") from exc
        files.append(
            attachment.model_copy(
                update={
                    "local_path": str(path),
                    "size": len(got.data),
                    "mimetype": got.content_type or attachment.mimetype,
                    "is_image": ref.kind == "image" or got.content_type.startswith("image/"),
                }
            )
        )
    return files


def _file_name(attachment: Attachment, served_name: str | None, content_type: str) -> str:
    name = served_name or attachment.name or attachment.id
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, (mimetypes.guess_extension(content_type.split(";")[0].strip()) or "").lstrip(".")
    clean_stem = safe_name(stem)
    clean_suffix = "".join(ch for ch in suffix if ch.isalnum())[:10]
    return f"{clean_stem}.{clean_suffix}" if clean_suffix else clean_stem


def _ms(raw: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(raw) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
