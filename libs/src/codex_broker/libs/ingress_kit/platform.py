"""The one interface every chat platform implements; the kit's machinery is written on top of it.

An adapter does only platform I/O: it renders the platform-neutral payloads of the contracts
(Markdown text, `Button`s, a `ProgressPayload` snapshot) into its own messages and calls its
API. Idempotency, leases, pacing, dead letters and RPC replies belong to the kit, so they are
written once. An adapter reports a failed call as `PlatformError`: `permanent` ones (a bad
request, a missing channel) are dead-lettered at once and answered; the rest are retried by
redelivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from codex_broker.libs.contracts import (
    Attachment,
    Button,
    DownloadPayload,
    HistoryMessage,
    OpenViewPayload,
    OutboundAction,
    PostPayload,
    ProgressPayload,
    StatusPayload,
    UploadPayload,
)


class PlatformError(Exception):
    """A platform call failed. `permanent`: retrying the same call cannot succeed."""

    def __init__(self, error: str, *, permanent: bool, method: str = "") -> None:
        super().__init__(f"{method}: {error}" if method else error)
        self.error = error
        self.permanent = permanent
        self.method = method


@dataclass(frozen=True)
class Target:
    """Where an action lands: the thread (conversation + root message) and its session."""

    conversation_id: str
    root_message_id: str
    session_key: str | None = None

    @classmethod
    def of(cls, action: OutboundAction) -> Target:
        return cls(action.conversation_id, action.root_message_id, action.session_key)


# A live view's platform state between snapshots (message ids, a stream handle), kept by the kit in
# Redis so another replica can continue the view. Plain JSON-able data.
ViewHandle = dict[str, Any]


@dataclass(frozen=True)
class Downloaded:
    saved: list[Attachment]
    errors: dict[str, str]


@runtime_checkable
class Platform(Protocol):
    """What one chat platform can do. Every method is one effect (or one read) on the platform."""

    name: str

    async def post(self, target: Target, payload: PostPayload, *, parts_id: str) -> list[str]:
        """Post Markdown (split at the platform's limits, buttons under the last piece); returns
        every piece's message id. `parts_id` is stable across redeliveries of the same action,
        for adapters that resume a half-posted long answer."""
        ...

    async def update(self, target: Target, message_id: str, text: str, buttons: Sequence[Button]) -> str:
        """Replace one message's text and buttons; returns its id."""
        ...

    async def set_status(self, target: Target, status: StatusPayload) -> str:
        """Show (or clear) the thread's 'working' indicator; returns the surface used."""
        ...

    async def react(self, target: Target, message_id: str, emoji: str, *, remove: bool) -> None: ...

    async def upload(self, target: Target, payload: UploadPayload) -> dict[str, Any]:
        """Send a file into the thread; returns what the requester may want (file id, link)."""
        ...

    async def ephemeral(self, target: Target, user_id: str, text: str, buttons: Sequence[Button]) -> str:
        """A message only `user_id` sees (or the platform's nearest equivalent)."""
        ...

    async def thread_link(self, target: Target, root_message_id: str) -> str:
        """Markdown that takes a reader to the thread `root_message_id` of the target's
        conversation, or "" where the platform has no link to a thread."""
        ...

    async def open_form(self, target: Target, payload: OpenViewPayload) -> dict[str, Any]:
        """Show `payload.form` (the contracts' neutral `Form`) to the user who pressed a button,
        rendered the platform's way — a modal, or a form message in the thread where the platform
        has no modals; `payload.view` is a platform-native view from older producers.
        PlatformError (permanent) when the platform cannot show it."""
        ...

    async def history(
        self, target: Target, before_message_id: str | None, limit: int
    ) -> list[HistoryMessage]:
        """The thread's messages, oldest first, before an exclusive message id."""
        ...

    async def download(self, target: Target, payload: DownloadPayload) -> Downloaded:
        """Fetch the attachments into `payload.dest_dir` (below DATA_ROOT/sessions, safely)."""
        ...

    async def view_open(self, target: Target, snapshot: ProgressPayload) -> ViewHandle:
        """Show the run's live view for the first time."""
        ...

    async def view_update(self, target: Target, handle: ViewHandle, snapshot: ProgressPayload) -> ViewHandle:
        """Show a newer snapshot in the view that `handle` names."""
        ...

    async def view_finish(
        self, target: Target, handle: ViewHandle | None, snapshot: ProgressPayload
    ) -> ViewHandle:
        """Close the view with the final snapshot and deliver `snapshot.final_text` (the answer)
        when it is set. `handle` None: the run ended before any view was shown."""
        ...


class ViewSurface(Protocol):
    """An adapter's live view on its own (the three `Platform.view_*` steps, named plainly)."""

    async def open(self, target: Target, snapshot: ProgressPayload) -> ViewHandle: ...

    async def update(self, target: Target, handle: ViewHandle, snapshot: ProgressPayload) -> ViewHandle: ...

    async def finish(
        self, target: Target, handle: ViewHandle | None, snapshot: ProgressPayload
    ) -> ViewHandle: ...


class ViewsIn:
    """Mixin: a `Platform` whose live view is a `ViewSurface` of its own module (`self.views`)."""

    views: ViewSurface

    async def view_open(self, target: Target, snapshot: ProgressPayload) -> ViewHandle:
        return await self.views.open(target, snapshot)

    async def view_update(self, target: Target, handle: ViewHandle, snapshot: ProgressPayload) -> ViewHandle:
        return await self.views.update(target, handle, snapshot)

    async def view_finish(
        self, target: Target, handle: ViewHandle | None, snapshot: ProgressPayload
    ) -> ViewHandle:
        return await self.views.finish(target, handle, snapshot)
