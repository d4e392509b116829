"""The `web` platform: the kit's `Platform` over the web chat's thread store.

A post is a bot message in the thread, a live view is one message of kind "view" redrawn per
snapshot, a status is the thread's state in the sidebar; every change reaches browsers through
the store's feed. The whole Markdown answer fits one message (a browser has no length limit), so
`parts_id` needs no resuming here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codex_broker.ingress_web.files import FileStore, TooLarge, attachment_of
from codex_broker.ingress_web.render import edited, message_record, view_record
from codex_broker.ingress_web.thread_store import ThreadStore
from codex_broker.libs.contracts import (
    Actor,
    Button,
    DownloadPayload,
    HistoryMessage,
    OpenViewPayload,
    PostPayload,
    ProgressPayload,
    StatusPayload,
    UploadPayload,
)
from codex_broker.libs.ingress_kit.platform import Downloaded, PlatformError, Target, ViewHandle

BOT_ID = "codex"
BOT_NAME = "Codex"


class WebPlatform:
    name = "web"

    def __init__(
        self, threads: ThreadStore, files: FileStore, *, outbox_root: Path, max_file_bytes: int
    ) -> None:
        self.threads = threads
        self.files = files
        self.outbox_root = outbox_root
        self.max_file_bytes = max_file_bytes

    async def _bot_message(
        self,
        target: Target,
        text: str,
        *,
        buttons: Sequence[Button] = (),
        files: Sequence[dict[str, Any]] = (),
        only_for: str | None = None,
        markdown: bool = True,
        message_id: str | None = None,
    ) -> str:
        message_id = message_id or await self.threads.new_message_id()
        record = message_record(
            message_id=message_id,
            thread=target.root_message_id,
            author_id=BOT_ID,
            author_name=BOT_NAME,
            is_bot=True,
            text=text,
            markdown=markdown,
            buttons=buttons,
            files=files,
            only_for=only_for,
        )
        await self.threads.put(record)
        return message_id

    async def _existing(self, target: Target, message_id: str, method: str) -> dict[str, Any]:
        record = await self.threads.get(target.root_message_id, message_id)
        if record is None:
            raise PlatformError("message_not_found", permanent=True, method=method)
        return record

    # ---- Platform ------------------------------------------------------------------------------

    async def post(self, target: Target, payload: PostPayload, *, parts_id: str) -> list[str]:
        return [
            await self._bot_message(
                target, payload.text, buttons=payload.buttons, markdown=payload.format != "text"
            )
        ]

    async def update(self, target: Target, message_id: str, text: str, buttons: Sequence[Button]) -> str:
        record = await self._existing(target, message_id, "update")
        await self.threads.put(edited(record, text, buttons))
        return message_id

    async def set_status(self, target: Target, status: StatusPayload) -> str:
        await self.threads.set_status(target.root_message_id, status.state)
        return "thread_status"

    async def react(self, target: Target, message_id: str, emoji: str, *, remove: bool) -> None:
        record = await self._existing(target, message_id, "react")
        reactions = [r for r in record.get("reactions", []) if r != emoji]
        if not remove:
            reactions.append(emoji)
        await self.threads.put({**record, "reactions": reactions})

    async def upload(self, target: Target, payload: UploadPayload) -> dict[str, Any]:
        try:
            stored = await asyncio.to_thread(
                self.files.keep_upload, payload, self.outbox_root, self.max_file_bytes
            )
        except TooLarge as exc:
            raise PlatformError("file_too_large", permanent=True, method="upload") from exc
        await self.files.remember(stored, owner=BOT_ID, thread=target.root_message_id)
        message_id = await self._bot_message(target, payload.initial_comment or "", files=[stored.public()])
        return {"file_id": stored.id, "message_id": message_id}

    async def ephemeral(self, target: Target, user_id: str, text: str, buttons: Sequence[Button]) -> str:
        return await self._bot_message(target, text, buttons=buttons, only_for=user_id)

    async def thread_link(self, target: Target, root_message_id: str) -> str:
        return ""  # the web chat lists its threads beside the conversation: the title is enough

    async def open_form(self, target: Target, payload: OpenViewPayload) -> dict[str, Any]:
        raise PlatformError("forms_not_supported", permanent=True, method="open_form")

    async def history(
        self, target: Target, before_message_id: str | None, limit: int
    ) -> list[HistoryMessage]:
        found = [
            m
            for m in await self.threads.messages(target.root_message_id)
            if m.get("kind") == "message"
            and m.get("only_for") is None
            and (before_message_id is None or m["id"] < before_message_id)
        ]
        return [
            HistoryMessage(
                message_id=m["id"],
                actor=Actor(
                    id=m["author"]["id"], display_name=m["author"]["name"], is_bot=m["author"]["bot"]
                ),
                text=m["text"],
                attachments=[attachment_of(f) for f in m.get("files", [])],
            )
            for m in found[-limit:]
        ]

    async def download(self, target: Target, payload: DownloadPayload) -> Downloaded:
        saved, errors = await self.files.to_workspace(
            payload.attachments, payload.dest_dir, payload.max_bytes
        )
        return Downloaded(saved=saved, errors=errors)

    # ---- the live view: one message redrawn per snapshot -------------------------------------------

    async def view_open(self, target: Target, snapshot: ProgressPayload) -> ViewHandle:
        message_id = await self.threads.new_message_id()
        record = view_record(message_id, target.root_message_id, snapshot, created_ms=0)
        record["created_ms"] = record["updated_ms"]
        await self.threads.put(record)
        return {"message_id": message_id, "created_ms": record["created_ms"]}

    async def view_update(self, target: Target, handle: ViewHandle, snapshot: ProgressPayload) -> ViewHandle:
        record = view_record(
            handle["message_id"], target.root_message_id, snapshot, created_ms=int(handle["created_ms"])
        )
        await self.threads.put(record)
        return handle

    async def view_finish(
        self, target: Target, handle: ViewHandle | None, snapshot: ProgressPayload
    ) -> ViewHandle:
        if handle is not None:
            await self.view_update(target, handle, snapshot)
        if snapshot.final_text:
            # the same id on a redelivery (a crash before the view's state was saved): no second answer
            answer_id, _ = await self.threads.message_id_for_client(f"answer:{snapshot.progress_id}")
            await self._bot_message(target, snapshot.final_text, message_id=answer_id)
            return {**(handle or {}), "answer_id": answer_id}
        return handle or {}
