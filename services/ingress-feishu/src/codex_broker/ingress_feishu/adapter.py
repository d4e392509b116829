"""The `feishu` platform: the ingress kit's `Platform` over Feishu / Lark's open API.

Only platform I/O lives here — rendering the contracts' payloads as posts and cards and making
the calls. Doing each action once, the failure policy, refs, RPC replies and the live view's
ordering, pacing and lease are the kit's (`libs.ingress_kit`). A failed call raises
`FeishuError`, a `PlatformError`; what cannot succeed as asked (a file too large, a path outside
DATA_ROOT) is a permanent `PlatformError` of its own. When the kit gives up on a Feishu failure,
`report_failure` says so in the thread.

Feishu de-duplicates sends with the same uuid for an hour, so every send carries one derived
from the action (`parts_id`): a redelivered long answer re-sends its pieces harmlessly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

from redis.asyncio import Redis

from codex_broker.ingress_feishu import files
from codex_broker.ingress_feishu.api import FeishuApi, FeishuError
from codex_broker.ingress_feishu.markdown import mention, post_content, split_text, text_content
from codex_broker.ingress_feishu.normalize import select_history, to_history_message
from codex_broker.ingress_feishu.render import (
    EMOJI_ALIASES,
    STATUS_EMOJI,
    buttons_card,
    form_card,
    markdown_card,
)
from codex_broker.ingress_feishu.resources import (
    FILE_MAX_BYTES,
    classify_upload,
    feishu_file_type,
    is_image_name,
)
from codex_broker.ingress_feishu.surface import coordinates, message_uuid, post_markdown, post_text, send
from codex_broker.ingress_feishu.view import FeishuViews
from codex_broker.libs.contracts import (
    Button,
    DownloadPayload,
    HistoryMessage,
    OpenViewPayload,
    OutboundAction,
    PostPayload,
    StatusPayload,
    UploadPayload,
)
from codex_broker.libs.ingress_kit.outbound import current_action_id
from codex_broker.libs.ingress_kit.platform import Downloaded, PlatformError, Target, ViewsIn
from codex_broker.libs.keys import Keys

log = logging.getLogger(__name__)

REF_TTL_S = 7 * 24 * 3600
HISTORY_PAGE = 50
HISTORY_MAX_PAGES = 20


def refused(error: str, method: str) -> PlatformError:
    """An action that cannot succeed as asked: answered with ok=false, never retried."""
    return PlatformError(error, permanent=True, method=method)


def _send_key(kind: str) -> str:
    """The uuid base of an effect's sends: its action id, so a retried send is not shown twice."""
    action_id = current_action_id()
    return action_id if action_id is not None else f"{kind}:{uuid4().hex}"


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class FeishuPlatform(ViewsIn):
    api: FeishuApi
    redis: Redis
    keys: Keys
    views: FeishuViews
    data_root: Path
    bot_open_id: str = ""
    name: str = field(default="feishu", init=False)

    # ---- messages ----------------------------------------------------------------------------------

    async def post(self, target: Target, payload: PostPayload, *, parts_id: str) -> list[str]:
        coords = coordinates(target)
        if payload.format == "card" and isinstance(payload.rich, dict):
            ids = [await send(self.api, coords, "interactive", payload.rich, uuid=message_uuid(parts_id))]
            msg_type = "interactive"
        elif payload.format == "rich_text" and isinstance(payload.rich, dict):
            ids = [await send(self.api, coords, "post", payload.rich, uuid=message_uuid(parts_id))]
            msg_type = "post"
        elif payload.buttons:
            chunks = split_text(payload.text) or [""]
            ids = await post_markdown(self.api, coords, "\n\n".join(chunks[:-1]), uuid_base=parts_id)
            card = buttons_card(chunks[-1], payload.buttons, coords)
            ids.append(await send(self.api, coords, "interactive", card, uuid=message_uuid(parts_id, 999)))
            msg_type = "interactive"
        elif payload.format == "text":
            ids = await post_text(self.api, coords, payload.text, uuid_base=parts_id)
            msg_type = "text"
        else:
            ids = await post_markdown(self.api, coords, payload.text, uuid_base=parts_id)
            msg_type = "post"
        if payload.ref and ids:  # an update by ref needs to know how the message was sent
            await self.redis.set(self._type_key(ids[-1]), msg_type, ex=REF_TTL_S)
        return ids

    async def update(self, target: Target, message_id: str, text: str, buttons: Sequence[Button]) -> str:
        msg_type = _s(await self.redis.get(self._type_key(message_id)) or "post")
        first = (split_text(text) or [" "])[0]
        if buttons:
            await self.api.patch_card_message(
                message_id, buttons_card(first, list(buttons), coordinates(target))
            )
        elif msg_type == "interactive":
            await self.api.patch_card_message(message_id, markdown_card(first))
        elif msg_type == "text":
            await self.api.edit_message(message_id, "text", text_content(first))
        else:
            await self.api.edit_message(message_id, "post", post_content(first))
        return message_id

    def _type_key(self, message_id: str) -> str:
        return self.keys.outbound_ref("feishu", f"msgtype:{message_id}")

    async def ephemeral(self, target: Target, user_id: str, text: str, buttons: Sequence[Button]) -> str:
        # Feishu's ephemeral messages are cards in groups only; a reply that names the user is the
        # portable equivalent
        ids = await post_text(
            self.api, coordinates(target), f"{mention(user_id)} {text}", uuid_base=_send_key("ephemeral")
        )
        return ids[-1]

    async def thread_link(self, target: Target, root_message_id: str) -> str:
        return ""  # Feishu has no link a message can carry to a topic; the title names it

    async def open_form(self, target: Target, payload: OpenViewPayload) -> dict[str, Any]:
        """Feishu has no modals: the form is a card in the thread (only neutral forms; a
        platform-native view is another platform's)."""
        if payload.form is None:
            raise refused("unsupported_on_feishu: open_view", "open_form")
        coords = coordinates(target)
        card = form_card(payload.form, coords)
        message_id = await send(self.api, coords, "interactive", card, uuid=message_uuid(_send_key("form")))
        return {"message_id": message_id}

    async def report_failure(self, action: OutboundAction, error: PlatformError) -> None:
        """The kit gave up on an action because Feishu refused it: say so in the thread."""
        if not isinstance(error, FeishuError):
            return  # a refusal concerns its requester, who is answered
        await send(
            self.api,
            coordinates(Target.of(action)),
            "text",
            text_content(
                f"⚠️ Could not deliver a {action.kind} to this thread (Feishu error {error.code}: {error.msg})"
            ),
            uuid=message_uuid(f"error:{action.action_id}"),
        )

    # ---- status and reactions ------------------------------------------------------------------

    async def set_status(self, target: Target, status: StatusPayload) -> str:
        """A reaction on the user's message; best effort (a refused emoji is not worth an error)."""
        if not status.message_id:
            return "none"
        try:
            if status.state == "running":
                await self._react(status.message_id, STATUS_EMOJI["running"], remove=False)
                return "reaction"
            await self._react(status.message_id, STATUS_EMOJI["running"], remove=True)
            if status.state in STATUS_EMOJI:
                await self._react(status.message_id, STATUS_EMOJI[status.state], remove=False)
        except FeishuError as exc:
            if not exc.permanent:
                raise
            log.info("status reaction refused", extra={"error": str(exc)})
        return "reaction"

    async def react(self, target: Target, message_id: str, emoji: str, *, remove: bool) -> None:
        await self._react(message_id, EMOJI_ALIASES.get(emoji, emoji), remove)

    async def _react(self, message_id: str, emoji: str, remove: bool) -> None:
        """Feishu removes a reaction by its id: the ids we added are kept per message."""
        key = self.keys.outbound_ref("feishu", f"reactions:{message_id}")
        if remove:
            reaction_id = await self.redis.hget(key, emoji)
            if reaction_id:
                await self.api.delete_reaction(message_id, _s(reaction_id))
                await self.redis.hdel(key, emoji)
            return
        if await self.redis.hexists(key, emoji):
            return
        reaction_id = await self.api.add_reaction(message_id, emoji)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, emoji, reaction_id)
        pipe.expire(key, REF_TTL_S)
        await pipe.execute()

    # ---- files -----------------------------------------------------------------------------------

    async def upload(self, target: Target, payload: UploadPayload) -> dict[str, Any]:
        coords = coordinates(target)
        try:
            data, name = await asyncio.to_thread(files.upload_bytes, payload, self.data_root)
        except files.Refused as exc:
            raise refused(str(exc), "upload") from exc
        kind = classify_upload(len(data), is_image=is_image_name(name, payload.content_type))
        if kind == "too_large":
            raise refused(
                f"file_too_large: {name} is {len(data)} bytes; Feishu takes images up to 10 MB "
                f"and files up to {FILE_MAX_BYTES // (1024 * 1024)} MB",
                "upload",
            )
        uuid_base = _send_key("upload")
        ids: list[str] = []
        if payload.initial_comment:
            ids += await post_markdown(
                self.api, coords, payload.initial_comment, uuid_base=f"{uuid_base}/comment"
            )
        if kind == "image":
            image_key = await self.api.upload_image(data)
            content, msg_type = {"image_key": image_key}, "image"
        else:
            file_key = await self.api.upload_file(name, data, feishu_file_type(name))
            content, msg_type = {"file_key": file_key}, "file"
        ids.append(await send(self.api, coords, msg_type, content, uuid=message_uuid(uuid_base)))
        return {"message_ids": ids}

    async def download(self, target: Target, payload: DownloadPayload) -> Downloaded:
        saved, errors = await files.download(self.api, payload, self.data_root)
        return Downloaded(saved=saved, errors=errors)

    # ---- reads -----------------------------------------------------------------------------------

    async def history(
        self, target: Target, before_message_id: str | None, limit: int
    ) -> list[HistoryMessage]:
        """The thread's messages, oldest first, before an exclusive message id."""
        coords = coordinates(target)
        root_message: dict[str, Any] = {}
        if coords.root_message_id == coords.conversation_id:
            container, container_id, root = "chat", coords.conversation_id, None
        else:
            root_message = await self.api.get_message(coords.root_message_id)
            thread_id = str(root_message.get("thread_id") or "")
            if thread_id:
                container, container_id, root = "thread", thread_id, None
            else:  # a reply chain without a thread: the chat's messages that belong to the root
                container, container_id, root = "chat", coords.conversation_id, coords.root_message_id
        collected: list[dict[str, Any]] = []
        before = before_message_id
        page_token: str | None = None
        for _ in range(HISTORY_MAX_PAGES):
            items, page_token = await self.api.list_messages(
                container_type=container,
                container_id=container_id,
                page_token=page_token,
                page_size=HISTORY_PAGE,
            )
            kept, passed = select_history(items, before=before, limit=limit - len(collected), root=root)
            collected.extend(kept)
            if passed:
                before = None
            if len(collected) >= limit or page_token is None:
                break
        if container == "thread" and len(collected) < limit and page_token is None and before is None:
            # the thread's first message, in case the listing leaves it out
            collected = _with_root(collected, root_message)
        return [to_history_message(item, self.bot_open_id) for item in reversed(collected)]


def _with_root(collected: list[dict[str, Any]], root_message: dict[str, Any]) -> list[dict[str, Any]]:
    if not root_message or any(
        item.get("message_id") == root_message.get("message_id") for item in collected
    ):
        return collected
    return [*collected, root_message]
