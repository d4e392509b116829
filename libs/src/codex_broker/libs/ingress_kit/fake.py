"""An in-memory `Platform` for tests: it records every call and what a thread would show.

`fail(method, error)` makes the next calls of one method raise a `PlatformError`, for the
failure-policy tests; `calls` is the full log in order. History is what was posted (plus what a
test `seed`s), oldest first.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from codex_broker.libs.contracts import (
    Actor,
    Attachment,
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


@dataclass
class FakeMessage:
    message_id: str
    target: Target
    text: str
    buttons: list[Button] = field(default_factory=list)
    user_id: str = "bot"
    only_for: str | None = None
    reactions: set[str] = field(default_factory=set)


@dataclass
class _Failure:
    error: str
    permanent: bool
    times: int


class FakePlatform:
    def __init__(self, name: str = "web") -> None:
        self.name = name
        self.messages: dict[str, FakeMessage] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.statuses: list[tuple[Target, str]] = []
        self.views: dict[str, list[tuple[str, ProgressPayload]]] = {}  # view id → (op, snapshot)
        self.uploads: list[tuple[Target, UploadPayload]] = []
        self._failures: dict[str, _Failure] = {}
        self._ids = itertools.count(1)

    # ---- test controls -----------------------------------------------------------------------

    def fail(self, method: str, error: str = "boom", *, permanent: bool = False, times: int = 1) -> None:
        self._failures[method] = _Failure(error, permanent, times)

    def seed(self, target: Target, user_id: str, text: str) -> str:
        return self._add(target, text, user_id=user_id).message_id

    def thread(self, target: Target) -> list[FakeMessage]:
        return [m for m in self.messages.values() if m.target.root_message_id == target.root_message_id]

    def count(self, method: str) -> int:
        return sum(1 for name, _ in self.calls if name == method)

    # ---- Platform ----------------------------------------------------------------------------

    async def post(self, target: Target, payload: PostPayload, *, parts_id: str) -> list[str]:
        self._call("post", text=payload.text, parts_id=parts_id)
        return [self._add(target, payload.text, buttons=payload.buttons).message_id]

    async def update(self, target: Target, message_id: str, text: str, buttons: Sequence[Button]) -> str:
        self._call("update", message_id=message_id, text=text)
        message = self.messages.get(message_id)
        if message is None:
            raise PlatformError("message_not_found", permanent=True, method="update")
        message.text, message.buttons = text, list(buttons)
        return message_id

    async def set_status(self, target: Target, status: StatusPayload) -> str:
        self._call("set_status", state=status.state)
        self.statuses.append((target, status.state))
        return "fake"

    async def react(self, target: Target, message_id: str, emoji: str, *, remove: bool) -> None:
        self._call("react", message_id=message_id, emoji=emoji, remove=remove)
        message = self.messages[message_id]
        (message.reactions.discard if remove else message.reactions.add)(emoji)

    async def upload(self, target: Target, payload: UploadPayload) -> dict[str, Any]:
        self._call("upload", filename=payload.filename)
        self.uploads.append((target, payload))
        return {"file_id": f"F{next(self._ids)}"}

    async def ephemeral(self, target: Target, user_id: str, text: str, buttons: Sequence[Button]) -> str:
        self._call("ephemeral", user_id=user_id, text=text)
        return self._add(target, text, buttons=list(buttons), only_for=user_id).message_id

    async def thread_link(self, target: Target, root_message_id: str) -> str:
        self._call("thread_link", root_message_id=root_message_id)
        return f"[the thread](fake://{target.conversation_id}/{root_message_id})"

    async def open_form(self, target: Target, payload: OpenViewPayload) -> dict[str, Any]:
        self._call("open_form", trigger_id=payload.trigger_id)
        return {"view_id": f"V{next(self._ids)}"}

    async def history(
        self, target: Target, before_message_id: str | None, limit: int
    ) -> list[HistoryMessage]:
        self._call("history", before=before_message_id, limit=limit)
        found = [m for m in self.thread(target) if m.only_for is None]
        if before_message_id is not None:
            ids = [m.message_id for m in found]
            found = found[: ids.index(before_message_id)] if before_message_id in ids else found
        return [
            HistoryMessage(
                message_id=m.message_id,
                actor=Actor(id=m.user_id, is_bot=m.user_id == "bot"),
                text=m.text,
                ts=datetime.now(UTC),
            )
            for m in found[-limit:]
        ]

    async def download(self, target: Target, payload: DownloadPayload) -> Downloaded:
        self._call("download", count=len(payload.attachments))
        saved = [
            Attachment(**{**a.model_dump(), "local_path": f"{payload.dest_dir}/{a.name}"})
            for a in payload.attachments
        ]
        return Downloaded(saved=saved, errors={})

    async def view_open(self, target: Target, snapshot: ProgressPayload) -> ViewHandle:
        self._call("view_open", seq=snapshot.seq)
        message = self._add(target, snapshot.answer_text or snapshot.activity)
        self.views.setdefault(snapshot.progress_id, []).append(("open", snapshot))
        return {"message_id": message.message_id}

    async def view_update(self, target: Target, handle: ViewHandle, snapshot: ProgressPayload) -> ViewHandle:
        self._call("view_update", seq=snapshot.seq)
        self.messages[handle["message_id"]].text = snapshot.answer_text or snapshot.activity
        self.views.setdefault(snapshot.progress_id, []).append(("update", snapshot))
        return handle

    async def view_finish(
        self, target: Target, handle: ViewHandle | None, snapshot: ProgressPayload
    ) -> ViewHandle:
        self._call("view_finish", seq=snapshot.seq)
        self.views.setdefault(snapshot.progress_id, []).append(("finish", snapshot))
        if handle is not None:
            self.messages[handle["message_id"]].text = snapshot.activity or "done"
        if snapshot.final_text:
            self._add(target, snapshot.final_text)
        return handle or {}

    # ---- internals ---------------------------------------------------------------------------

    def _call(self, method: str, **details: Any) -> None:
        self.calls.append((method, details))
        failure = self._failures.get(method)
        if failure is not None and failure.times > 0:
            failure.times -= 1
            raise PlatformError(failure.error, permanent=failure.permanent, method=method)

    def _add(
        self,
        target: Target,
        text: str,
        *,
        user_id: str = "bot",
        buttons: list[Button] | None = None,
        only_for: str | None = None,
    ) -> FakeMessage:
        message = FakeMessage(
            f"m{next(self._ids)}", target, text, list(buttons or []), user_id=user_id, only_for=only_for
        )
        self.messages[message.message_id] = message
        return message
