"""Executes `OutboundAction`s from `outbound:feishu`: every payload kind that makes sense here.

Each action runs at most once (idempotency on `action_id`, result kept for redeliveries) and,
when `reply_to` is set, answers with an `OutboundResult`. Rate limits and transient errors are
retried inside the API adapter, then by redelivery; a permanent error is reported in the thread,
answered, and dead-lettered. The consumer loop itself never dies on a bad action.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from codex_broker.ingress_feishu import metrics
from codex_broker.ingress_feishu.api import FeishuApi, FeishuError
from codex_broker.ingress_feishu.cards import buttons_card, markdown_card
from codex_broker.ingress_feishu.markdown import mention, post_content, split_text, text_content
from codex_broker.ingress_feishu.progress import ProgressRenderer
from codex_broker.ingress_feishu.resources import (
    FILE_MAX_BYTES,
    classify_upload,
    feishu_file_type,
    is_image_name,
)
from codex_broker.ingress_feishu.rpc_handlers import RpcError, download, history
from codex_broker.ingress_feishu.surface import message_uuid, post_markdown, post_text, send
from codex_broker.libs import rpc
from codex_broker.libs.bus import DeadLetter, Delivery
from codex_broker.libs.contracts import (
    Coordinates,
    DownloadPayload,
    EphemeralPayload,
    HistoryPayload,
    OutboundAction,
    OutboundResult,
    PostPayload,
    ReactPayload,
    StatusPayload,
    UpdatePayload,
    UploadPayload,
    decode,
    encode,
)
from codex_broker.libs.idempotency import Idempotency
from codex_broker.libs.keys import Keys
from codex_broker.libs.paths import is_within

log = logging.getLogger(__name__)

IDEMPOTENCY_SCOPE = "outbound"
DONE_TTL_S = 3 * 24 * 3600
# A short lease, renewed while the action runs (a 30 MB upload with retries may take minutes):
# when a replica dies mid-action, its lease lapses within CLAIM_LEASE_MS and the replica that gets
# the entry again waits that out and redoes the action, instead of refusing every redelivery
# until the entry is dead-lettered.
CLAIM_LEASE_MS = 15_000
LEASE_RENEW_S = 5.0
HOLDER_GRACE_S = 2.0  # waited beyond one lease for another replica's claim to finish or lapse
REF_TTL_S = 7 * 24 * 3600

STATUS_EMOJI = {"running": "OnIt", "completed": "DONE", "failed": "CrossMark"}
EMOJI_ALIASES = {
    "eyes": "OnIt",
    "white_check_mark": "DONE",
    "heavy_check_mark": "DONE",
    "x": "CrossMark",
    "+1": "THUMBSUP",
    "thumbsup": "THUMBSUP",
    "ok": "OK",
}


class ActionFailed(Exception):
    """An action that cannot succeed as asked; answered with ok=False, not retried."""


@dataclass
class OutboundHandler:
    api: FeishuApi
    redis: Redis
    keys: Keys
    progress: ProgressRenderer
    data_root: Path
    bot_open_id: str = ""
    max_deliveries: int = 5
    lease_ms: int = CLAIM_LEASE_MS
    lease_renew_s: float = LEASE_RENEW_S

    def __post_init__(self) -> None:
        self.idempotency = Idempotency(self.redis, self.keys, IDEMPOTENCY_SCOPE)

    async def handle(self, delivery: Delivery) -> None:
        action = decode(OutboundAction, delivery.data)
        kind = action.payload.kind
        coords = Coordinates(
            platform="feishu", conversation_id=action.conversation_id, root_message_id=action.root_message_id
        )
        if kind == "progress":
            await self._progress(action, coords, delivery)
            return
        claim = await self.idempotency.claim_waiting(
            action.action_id, lease_ms=self.lease_ms, wait_s=self.lease_ms / 1000 + HOLDER_GRACE_S
        )
        if claim.status == "done":
            metrics.OUTBOUND_ACTIONS.labels(kind=kind, result="duplicate").inc()
            if action.reply_to and claim.result:
                await rpc.send_reply(self.redis, action.reply_to, decode(OutboundResult, claim.result))
            return
        if claim.status == "in_progress":  # a live replica is still at it: try again on redelivery
            raise RuntimeError(f"action {action.action_id} is being executed elsewhere")
        try:
            async with self.idempotency.renewing(
                action.action_id, lease_ms=self.lease_ms, every_s=self.lease_renew_s
            ):
                result = await self._execute(action, coords)
        except (ActionFailed, RpcError) as exc:
            log.warning("outbound action refused", extra={"kind": kind, "error": str(exc)[:300]})
            result = OutboundResult(action_id=action.action_id, ok=False, error=str(exc))
        except FeishuError as exc:
            if exc.permanent or delivery.deliveries >= self.max_deliveries:
                await self._give_up(action, coords, exc)
                raise DeadLetter(str(exc)) from exc
            await self.idempotency.release(action.action_id)
            raise
        except BaseException:
            await self.idempotency.release(action.action_id)
            raise
        await self.idempotency.complete(action.action_id, encode(result), ttl_s=DONE_TTL_S)
        metrics.OUTBOUND_ACTIONS.labels(kind=kind, result="ok" if result.ok else "refused").inc()
        if action.reply_to:
            await rpc.send_reply(self.redis, action.reply_to, result)

    async def _progress(self, action: OutboundAction, coords: Coordinates, delivery: Delivery) -> None:
        assert action.payload.kind == "progress"
        try:
            await self.progress.apply(action.payload, coords)
        except FeishuError as exc:
            if delivery.deliveries >= self.max_deliveries:
                await self._give_up(action, coords, exc)
                raise DeadLetter(str(exc)) from exc
            raise
        metrics.OUTBOUND_ACTIONS.labels(kind="progress", result="ok").inc()
        if action.payload.phase == "finish":
            # the run's answer: marked done like any other action, because the orchestrator
            # waits for that marker before it sends the thread's next answer
            done = OutboundResult(action_id=action.action_id, ok=True)
            await self.idempotency.complete(action.action_id, encode(done), ttl_s=DONE_TTL_S)
        if action.reply_to:
            await rpc.send_reply(
                self.redis, action.reply_to, OutboundResult(action_id=action.action_id, ok=True)
            )

    async def _give_up(self, action: OutboundAction, coords: Coordinates, exc: FeishuError) -> None:
        """Permanent failure: tell the thread and the requester; the entry is dead-lettered."""
        metrics.OUTBOUND_ACTIONS.labels(kind=action.payload.kind, result="dead_letter").inc()
        result = OutboundResult(
            action_id=action.action_id, ok=False, error=f"feishu_error:{exc.code}: {exc.msg}"
        )
        await self.idempotency.complete(action.action_id, encode(result), ttl_s=DONE_TTL_S)
        if action.reply_to:
            await rpc.send_reply(self.redis, action.reply_to, result)
        if action.payload.kind in ("history", "download"):
            return  # a read that failed concerns only its requester
        try:
            await send(
                self.api,
                coords,
                "text",
                text_content(
                    f"⚠️ Could not deliver a {action.payload.kind} to this thread "
                    f"(Feishu error {exc.code}: {exc.msg})"
                ),
                uuid=message_uuid(f"error:{action.action_id}"),
            )
        except Exception as report_exc:
            log.warning(
                "could not report a failed action in the thread", extra={"error": str(report_exc)[:200]}
            )

    # ---- per kind ------------------------------------------------------------------------------

    async def _execute(self, action: OutboundAction, coords: Coordinates) -> OutboundResult:
        payload = action.payload
        ok = OutboundResult(action_id=action.action_id, ok=True)
        if isinstance(payload, PostPayload):
            ok.message_ids = await self._post(action.action_id, coords, payload)
        elif isinstance(payload, UpdatePayload):
            ok.message_ids = await self._update(coords, payload)
        elif isinstance(payload, StatusPayload):
            await self._status(payload)
        elif isinstance(payload, ReactPayload):
            await self._react(
                payload.message_id, EMOJI_ALIASES.get(payload.emoji, payload.emoji), payload.remove
            )
        elif isinstance(payload, UploadPayload):
            ok.message_ids = await self._upload(action.action_id, coords, payload)
        elif isinstance(payload, EphemeralPayload):
            # Feishu's ephemeral messages are cards in groups only; a reply that names the user is
            # the portable equivalent
            ok.message_ids = await post_text(
                self.api, coords, f"{mention(payload.user_id)} {payload.text}", uuid_base=action.action_id
            )
        elif isinstance(payload, HistoryPayload):
            ok.messages = await history(self.api, coords, payload, self.bot_open_id)
        elif isinstance(payload, DownloadPayload):
            ok.files = await download(self.api, payload, self.data_root)
        else:
            raise ActionFailed(f"unsupported_on_feishu: {payload.kind}")
        return ok

    async def _post(self, action_id: str, coords: Coordinates, payload: PostPayload) -> list[str]:
        if payload.format == "card" and isinstance(payload.rich, dict):
            ids = [await send(self.api, coords, "interactive", payload.rich, uuid=message_uuid(action_id))]
            msg_type = "interactive"
        elif payload.format == "rich_text" and isinstance(payload.rich, dict):
            ids = [await send(self.api, coords, "post", payload.rich, uuid=message_uuid(action_id))]
            msg_type = "post"
        elif payload.buttons:
            chunks = split_text(payload.text) or [""]
            ids = await post_markdown(self.api, coords, "\n\n".join(chunks[:-1]), uuid_base=action_id)
            card = buttons_card(chunks[-1], payload.buttons, coords)
            ids.append(await send(self.api, coords, "interactive", card, uuid=message_uuid(action_id, 999)))
            msg_type = "interactive"
        elif payload.format == "text":
            ids = await post_text(self.api, coords, payload.text, uuid_base=action_id)
            msg_type = "text"
        else:
            ids = await post_markdown(self.api, coords, payload.text, uuid_base=action_id)
            msg_type = "post"
        if payload.ref and ids:
            await self._remember_ref(coords, payload.ref, ids[-1], msg_type)
        return ids

    async def _update(self, coords: Coordinates, payload: UpdatePayload) -> list[str]:
        message_id, msg_type = payload.message_id, "post"
        if payload.ref:
            stored = await self.redis.hgetall(self._ref_key(coords, payload.ref))
            message_id = message_id or _s(stored.get(b"message_id", b"")) or None
            msg_type = _s(stored.get(b"msg_type", b"post"))
        if not message_id:
            raise ActionFailed("unknown message: no message_id and no known ref")
        text = (split_text(payload.text) or [" "])[0]
        if payload.buttons:
            await self.api.patch_card_message(message_id, buttons_card(text, payload.buttons, coords))
        elif msg_type == "interactive":
            await self.api.patch_card_message(message_id, markdown_card(text))
        elif msg_type == "text":
            await self.api.edit_message(message_id, "text", text_content(text))
        else:
            await self.api.edit_message(message_id, "post", post_content(text))
        return [message_id]

    def _ref_key(self, coords: Coordinates, ref: str) -> str:
        return self.keys.outbound_ref("feishu", f"ref:{coords.session_key}:{ref}")

    async def _remember_ref(self, coords: Coordinates, ref: str, message_id: str, msg_type: str) -> None:
        key = self._ref_key(coords, ref)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, mapping={"message_id": message_id, "msg_type": msg_type})
        pipe.expire(key, REF_TTL_S)
        await pipe.execute()

    # ---- reactions -----------------------------------------------------------------------------

    async def _status(self, payload: StatusPayload) -> None:
        """A reaction on the user's message; best effort (a refused emoji is not worth an error)."""
        if not payload.message_id:
            return
        try:
            if payload.state == "running":
                await self._react(payload.message_id, STATUS_EMOJI["running"], remove=False)
                return
            await self._react(payload.message_id, STATUS_EMOJI["running"], remove=True)
            if payload.state in STATUS_EMOJI:
                await self._react(payload.message_id, STATUS_EMOJI[payload.state], remove=False)
        except FeishuError as exc:
            if not exc.permanent:
                raise
            log.info("status reaction refused", extra={"error": str(exc)})

    async def _react(self, message_id: str, emoji: str, remove: bool) -> None:
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

    # ---- uploads -------------------------------------------------------------------------------

    async def _upload(self, action_id: str, coords: Coordinates, payload: UploadPayload) -> list[str]:
        data, name = await asyncio.to_thread(self._upload_bytes, payload)
        is_image = is_image_name(name, payload.content_type)
        kind = classify_upload(len(data), is_image=is_image)
        if kind == "too_large":
            raise ActionFailed(
                f"file_too_large: {name} is {len(data)} bytes; Feishu takes images up to 10 MB "
                f"and files up to {FILE_MAX_BYTES // (1024 * 1024)} MB"
            )
        ids: list[str] = []
        if payload.initial_comment:
            ids += await post_markdown(
                self.api, coords, payload.initial_comment, uuid_base=f"{action_id}/comment"
            )
        if kind == "image":
            image_key = await self.api.upload_image(data)
            ids.append(
                await send(self.api, coords, "image", {"image_key": image_key}, uuid=message_uuid(action_id))
            )
        else:
            file_key = await self.api.upload_file(name, data, feishu_file_type(name))
            ids.append(
                await send(self.api, coords, "file", {"file_key": file_key}, uuid=message_uuid(action_id))
            )
        return ids

    def _upload_bytes(self, payload: UploadPayload) -> tuple[bytes, str]:
        if payload.content_base64 is not None:
            try:
                data = base64.b64decode(payload.content_base64, validate=True)
            except ValueError as exc:
                raise ActionFailed("content_base64 is not valid base64") from exc
            return data, payload.filename or "file"
        if not payload.path:
            raise ActionFailed("upload needs path or content_base64")
        path = Path(payload.path)
        if not is_within(path, self.data_root) or not path.is_file():
            raise ActionFailed("upload path must be an existing file inside DATA_ROOT")
        if path.stat().st_size > FILE_MAX_BYTES:
            raise ActionFailed(
                f"file_too_large: {path.name} is {path.stat().st_size} bytes; Feishu takes up to 30 MB"
            )
        return path.read_bytes(), payload.filename or path.name


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def partition_key(delivery: Delivery) -> str:
    """Per-thread order: actions of one thread run one after another."""
    body = json.loads(delivery.data)
    return f"{body.get('conversation_id')}/{body.get('root_message_id')}"
