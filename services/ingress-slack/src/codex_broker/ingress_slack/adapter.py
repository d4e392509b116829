"""The `slack` platform: the ingress kit's `Platform` over the Slack Web API.

Only platform I/O lives here — rendering the contracts' payloads as mrkdwn and blocks and making
the calls. Doing each action once, the failure policy, refs, RPC replies and the live view's
ordering, pacing and lease are the kit's (`libs.ingress_kit`). A failed call raises
`SlackCallError`, a `PlatformError`: permanent ones (and refusals) are dead-lettered by the kit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from codex_broker.ingress_slack import files
from codex_broker.ingress_slack.api import SlackApi
from codex_broker.ingress_slack.capabilities import ASSISTANT_STATUS, Capabilities
from codex_broker.ingress_slack.errors import SlackCallError
from codex_broker.ingress_slack.mrkdwn import UPDATE_LIMIT, to_mrkdwn, trim
from codex_broker.ingress_slack.normalize import (
    BotIdentity,
    history_user_ids,
    select_history,
    to_history_message,
    wrap_view_metadata,
)
from codex_broker.ingress_slack.posting import Poster
from codex_broker.ingress_slack.render import (
    STATUS_REACTIONS,
    actions_block,
    form_view,
    message_blocks,
    post_chunks,
    section_blocks,
)
from codex_broker.ingress_slack.users import UserDirectory
from codex_broker.ingress_slack.view import SlackViews
from codex_broker.libs.contracts import (
    CHANNEL_SCOPE,
    Button,
    DownloadPayload,
    HistoryMessage,
    OpenViewPayload,
    PostPayload,
    StatusPayload,
    UploadPayload,
)
from codex_broker.libs.ingress_kit.platform import Downloaded, Target, ViewsIn

HISTORY_PAGE = 200
RUNNING_STATUS = "is working…"
HARMLESS_REACTION_ERRORS = frozenset({"already_reacted", "no_reaction"})


@dataclass(frozen=True)
class FileAccess:
    """Where uploads may come from and downloads may go, and how downloads authenticate."""

    http: aiohttp.ClientSession
    bot_token: str
    data_root: Path
    upload_roots: list[Path]
    download_hosts: frozenset[str]
    download_cap_bytes: int


@dataclass(kw_only=True)
class SlackPlatform(ViewsIn):
    api: SlackApi
    me: BotIdentity
    users: UserDirectory
    capabilities: Capabilities
    poster: Poster
    views: SlackViews
    files: FileAccess
    history_max_pages: int
    name: str = field(default="slack", init=False)

    # ---- messages ----------------------------------------------------------------------------------

    async def post(self, target: Target, payload: PostPayload, *, parts_id: str) -> list[str]:
        if payload.format == "card" or (payload.format == "rich_text" and isinstance(payload.rich, list)):
            blocks = payload.rich if isinstance(payload.rich, list) else []
            if payload.buttons:
                blocks = [*blocks, actions_block(payload.buttons)]
            data = await self.api.call(
                "chat.postMessage",
                channel=target.conversation_id,
                thread_ts=target.root_message_id,
                text=_short(payload.text),
                blocks=blocks,
            )
            return [str(data.get("ts") or "")]
        return await self.poster.post_pieces(
            channel=target.conversation_id,
            thread_ts=target.root_message_id,
            pieces=post_chunks(payload.text, "markdown" if payload.format != "text" else "text"),
            buttons=payload.buttons,
            parts_id=parts_id,
        )

    async def update(self, target: Target, message_id: str, text: str, buttons: Sequence[Button]) -> str:
        short = _short(text)
        blocks = section_blocks(short)
        if buttons:
            blocks.append(actions_block(buttons))
        await self.api.call(
            "chat.update", channel=target.conversation_id, ts=message_id, text=short, blocks=blocks
        )
        return message_id

    async def ephemeral(self, target: Target, user_id: str, text: str, buttons: Sequence[Button]) -> str:
        short = _short(text)
        args: dict[str, Any] = {"channel": target.conversation_id, "user": user_id, "text": short}
        if target.root_message_id != CHANNEL_SCOPE:  # a command given outside a thread
            args["thread_ts"] = target.root_message_id
        blocks = message_blocks(short, buttons)
        if blocks:
            args["blocks"] = blocks
        data = await self.api.call("chat.postEphemeral", **args)
        return str(data.get("message_ts") or "")

    async def thread_link(self, target: Target, root_message_id: str) -> str:
        """Slack's own permalink of the thread's first message (chat.getPermalink, no scope
        needed): a link that opens the thread, in the app or the browser."""
        data = await self.api.call(
            "chat.getPermalink", channel=target.conversation_id, message_ts=root_message_id
        )
        permalink = str(data.get("permalink") or "")
        return f"[Open the thread]({permalink})" if permalink else ""

    async def open_form(self, target: Target, payload: OpenViewPayload) -> dict[str, Any]:
        view = form_view(payload.form) if payload.form is not None else dict(payload.view)
        view["private_metadata"] = wrap_view_metadata(
            target.conversation_id, target.root_message_id, str(view.get("private_metadata") or "")
        )
        data = await self.api.call("views.open", trigger_id=payload.trigger_id, view=view)
        return {"view_id": (data.get("view") or {}).get("id")}

    # ---- status and reactions ------------------------------------------------------------------

    async def set_status(self, target: Target, status: StatusPayload) -> str:
        if await self.capabilities.allowed(ASSISTANT_STATUS):
            text = (status.text or RUNNING_STATUS) if status.state == "running" else ""
            try:
                await self.api.call(
                    "assistant.threads.setStatus",
                    channel_id=target.conversation_id,
                    thread_ts=target.root_message_id,
                    status=text,
                )
                return "assistant_status"
            except SlackCallError as exc:
                if exc.verdict == "refused":
                    await self.capabilities.refuse(ASSISTANT_STATUS, f"{exc.method}: {exc.error}")
                elif not exc.permanent:
                    raise
                # a permanent error for this thread only: fall through to a reaction this time
        if not status.message_id:
            return "none"
        if status.state != "running":
            await self.react(target, status.message_id, STATUS_REACTIONS["running"], remove=True)
        emoji = STATUS_REACTIONS.get(status.state)
        if emoji and status.state != "idle":
            await self.react(target, status.message_id, emoji, remove=False)
        return "reaction"

    async def react(self, target: Target, message_id: str, emoji: str, *, remove: bool) -> None:
        method = "reactions.remove" if remove else "reactions.add"
        try:
            await self.api.call(
                method, channel=target.conversation_id, timestamp=message_id, name=emoji.strip(":")
            )
        except SlackCallError as exc:
            if exc.error not in HARMLESS_REACTION_ERRORS:
                raise

    # ---- files -----------------------------------------------------------------------------------

    async def upload(self, target: Target, payload: UploadPayload) -> dict[str, Any]:
        return await files.upload(
            self.api,
            payload,
            self.files.upload_roots,
            channel=target.conversation_id,
            thread_ts=target.root_message_id,
        )

    async def download(self, target: Target, payload: DownloadPayload) -> Downloaded:
        saved, errors = await files.download(
            self.files.http,
            token=self.files.bot_token,
            payload=payload,
            sessions_root=self.files.data_root / "sessions",
            hosts=self.files.download_hosts,
            cap_bytes=self.files.download_cap_bytes,
        )
        return Downloaded(saved=saved, errors=errors)

    # ---- reads -----------------------------------------------------------------------------------

    async def history(
        self, target: Target, before_message_id: str | None, limit: int
    ) -> list[HistoryMessage]:
        raw: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(self.history_max_pages):
            args: dict[str, Any] = {
                "channel": target.conversation_id,
                "ts": target.root_message_id,
                "limit": HISTORY_PAGE,
            }
            if before_message_id:
                args.update(latest=before_message_id, inclusive=False)
            if cursor:
                args["cursor"] = cursor
            data = await self.api.call("conversations.replies", **args)
            raw.extend(data.get("messages") or [])
            cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        selected = select_history(raw, before_message_id, limit)
        names = await self.users.names(history_user_ids(selected, self.me))
        return [to_history_message(m, self.me, names) for m in selected]


def _short(text: str) -> str:
    """Markdown as mrkdwn that chat.update / chat.postEphemeral accept in one message."""
    return trim(to_mrkdwn(text), UPDATE_LIMIT) or " "
