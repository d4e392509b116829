"""Consumer of the Slack outbound stream: every OutboundAction becomes its Slack effect, once.

Effects are guarded by `action_id` (Idempotency scope "outbound"); reads (history, download) are
repeatable and not guarded. Failures: rate limits and transient errors are retried inside
SlackApi; what is still failing leaves the entry pending (redelivered, dead-lettered after
MAX_DELIVERIES); a permanent Slack error dead-letters the entry at once with its reason and
answers the requester, if one waits.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from codex_broker.ingress_slack import files, metrics
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
from codex_broker.ingress_slack.progress import ProgressViews
from codex_broker.ingress_slack.render import (
    STATUS_REACTIONS,
    actions_block,
    message_blocks,
    post_chunks,
    section_blocks,
)
from codex_broker.ingress_slack.slack_api import SlackApi
from codex_broker.ingress_slack.users import UserDirectory
from codex_broker.libs.bus import DeadLetter, Delivery, loads
from codex_broker.libs.contracts import (
    CHANNEL_SCOPE,
    EphemeralPayload,
    HistoryPayload,
    OpenViewPayload,
    OutboundAction,
    OutboundResult,
    PostPayload,
    ProgressPayload,
    ReactPayload,
    StatusPayload,
    UpdatePayload,
    UploadPayload,
    decode,
    encode,
)
from codex_broker.libs.idempotency import Idempotency
from codex_broker.libs.keys import Keys
from codex_broker.libs.rpc import send_reply

log = logging.getLogger(__name__)

DONE_TTL_S = 86400
# A short lease renewed while the effect runs: when a replica dies mid-effect, its lease lapses
# within CLAIM_LEASE_MS, and the replica that gets the entry again waits that out instead of
# failing every redelivery until the entry is dead-lettered (a lost answer; found by the chaos test).
CLAIM_LEASE_MS = 15_000
LEASE_RENEW_S = 5.0
HOLDER_WAIT_S = CLAIM_LEASE_MS / 1000 + 2
HISTORY_PAGE = 200
RUNNING_STATUS = "is working…"
HARMLESS_REACTION_ERRORS = frozenset({"already_reacted", "no_reaction"})


def partition_key(delivery: Delivery) -> str:
    """One Slack thread's actions stay in order; different threads run concurrently."""
    data = loads(delivery)
    return f"{data.get('conversation_id')}:{data.get('root_message_id')}"


@dataclass
class OutboundContext:
    """Everything the handlers need, built once the bot identity is known."""

    api: SlackApi
    redis: Redis
    keys: Keys
    me: BotIdentity
    users: UserDirectory
    capabilities: Capabilities
    poster: Poster
    progress: ProgressViews
    http: aiohttp.ClientSession
    bot_token: str
    data_root: Path
    upload_roots: list[Path]
    download_hosts: frozenset[str]
    download_cap_bytes: int
    history_max_pages: int


class Outbound:
    def __init__(self, context: Callable[[], Awaitable[OutboundContext]]) -> None:
        self._context = context

    async def handle(self, delivery: Delivery) -> None:
        action = decode(OutboundAction, delivery.data)
        if action.platform != "slack":
            raise DeadLetter(f"platform {action.platform} on the slack stream")
        ctx = await self._context()
        kind = action.kind
        try:
            if kind == "progress":
                await ctx.progress.handle(action)
                await self._mark_answer_done(ctx, action, OutboundResult(action_id=action.action_id, ok=True))
            elif kind in ("history", "download"):
                await self._reply(ctx, action, await self._read(ctx, action))
            else:
                await self._effect_once(ctx, action)
        except SlackCallError as exc:
            if not exc.permanent:
                metrics.OUTBOUND.labels(kind=kind, result="retry").inc()
                raise
            metrics.OUTBOUND.labels(kind=kind, result="dead_letter").inc()
            failed = OutboundResult(action_id=action.action_id, ok=False, error=exc.error)
            await self._mark_answer_done(ctx, action, failed)
            await self._reply(ctx, action, failed)
            raise DeadLetter(f"slack {exc.method}: {exc.error}") from exc
        except DeadLetter as exc:
            metrics.OUTBOUND.labels(kind=kind, result="dead_letter").inc()
            await self._reply(
                ctx, action, OutboundResult(action_id=action.action_id, ok=False, error=str(exc))
            )
            raise
        metrics.OUTBOUND.labels(kind=kind, result="done").inc()

    async def _mark_answer_done(
        self, ctx: OutboundContext, action: OutboundAction, result: OutboundResult
    ) -> None:
        """A finished live view (the run's answer) is marked done like any other action: the
        orchestrator waits for that marker before it sends the thread's next answer."""
        payload = action.payload
        if isinstance(payload, ProgressPayload) and payload.phase == "finish":
            await Idempotency(ctx.redis, ctx.keys, "outbound").complete(
                action.action_id, encode(result), ttl_s=DONE_TTL_S
            )

    async def _reply(self, ctx: OutboundContext, action: OutboundAction, result: OutboundResult) -> None:
        if action.reply_to:
            await send_reply(ctx.redis, action.reply_to, result)

    # ---- effects, at most once per action_id -----------------------------------------------------

    async def _effect_once(self, ctx: OutboundContext, action: OutboundAction) -> None:
        guard = Idempotency(ctx.redis, ctx.keys, "outbound")
        # another replica holds it: done soon, or its lease lapses
        claim = await guard.claim_waiting(action.action_id, lease_ms=CLAIM_LEASE_MS, wait_s=HOLDER_WAIT_S)
        if claim.status == "done":
            metrics.OUTBOUND.labels(kind=action.kind, result="duplicate").inc()
            if action.reply_to and claim.result:
                await ctx.redis.rpush(action.reply_to, claim.result)
                await ctx.redis.expire(action.reply_to, 120)
            return
        if claim.status == "in_progress":
            raise RuntimeError(f"action {action.action_id} is being done by another consumer")
        try:
            async with guard.renewing(action.action_id, lease_ms=CLAIM_LEASE_MS, every_s=LEASE_RENEW_S):
                result = await self._effect(ctx, action)
        except BaseException:
            await guard.release(action.action_id)
            raise
        await guard.complete(action.action_id, encode(result), ttl_s=DONE_TTL_S)
        await self._reply(ctx, action, result)

    async def _effect(self, ctx: OutboundContext, action: OutboundAction) -> OutboundResult:
        payload = action.payload
        ok = OutboundResult(action_id=action.action_id, ok=True)
        if isinstance(payload, PostPayload):
            ok.message_ids = await self._post(ctx, action, payload)
        elif isinstance(payload, UpdatePayload):
            ok.message_ids = [await self._update(ctx, action, payload)]
        elif isinstance(payload, StatusPayload):
            ok.data = {"surface": await self._status(ctx, action, payload)}
        elif isinstance(payload, ReactPayload):
            await self._react(
                ctx.api, action.conversation_id, payload.message_id, payload.emoji, payload.remove
            )
        elif isinstance(payload, UploadPayload):
            ok.data = await files.upload(
                ctx.api,
                payload,
                ctx.upload_roots,
                channel=action.conversation_id,
                thread_ts=action.root_message_id,
            )
        elif isinstance(payload, EphemeralPayload):
            ok.message_ids = [await self._ephemeral(ctx, action, payload)]
        elif isinstance(payload, OpenViewPayload):
            ok.data = await self._open_view(ctx, action, payload)
        else:
            raise DeadLetter(f"unsupported payload kind {action.kind}")
        return ok

    async def _post(self, ctx: OutboundContext, action: OutboundAction, payload: PostPayload) -> list[str]:
        if payload.format == "card" or (payload.format == "rich_text" and isinstance(payload.rich, list)):
            blocks = payload.rich if isinstance(payload.rich, list) else []
            text = trim(to_mrkdwn(payload.text), UPDATE_LIMIT) or " "
            if payload.buttons:
                blocks = [*blocks, actions_block(payload.buttons)]
            data = await ctx.api.call(
                "chat.postMessage",
                channel=action.conversation_id,
                thread_ts=action.root_message_id,
                text=text,
                blocks=blocks,
            )
            timestamps = [str(data.get("ts") or "")]
        else:
            fmt = "markdown" if payload.format != "text" else "text"
            timestamps = await ctx.poster.post_pieces(
                channel=action.conversation_id,
                thread_ts=action.root_message_id,
                pieces=post_chunks(payload.text, fmt),
                buttons=payload.buttons,
                parts_id=action.action_id,
            )
        if payload.ref:
            await ctx.poster.remember_ref(payload.ref, action.conversation_id, timestamps)
        return timestamps

    async def _update(self, ctx: OutboundContext, action: OutboundAction, payload: UpdatePayload) -> str:
        channel, ts = action.conversation_id, payload.message_id
        if payload.ref:
            found = await ctx.poster.resolve_ref(payload.ref)
            if found is None and not ts:
                raise DeadLetter(f"unknown message ref {payload.ref}")
            if found is not None:
                channel, ts = found
        if not ts:
            raise DeadLetter("update without ref or message_id")
        text = trim(to_mrkdwn(payload.text), UPDATE_LIMIT) or " "
        blocks = section_blocks(text)
        if payload.buttons:
            blocks.append(actions_block(payload.buttons))
        await ctx.api.call("chat.update", channel=channel, ts=ts, text=text, blocks=blocks)
        return ts

    async def _status(self, ctx: OutboundContext, action: OutboundAction, payload: StatusPayload) -> str:
        if await ctx.capabilities.allowed(ASSISTANT_STATUS):
            status = (payload.text or RUNNING_STATUS) if payload.state == "running" else ""
            try:
                await ctx.api.call(
                    "assistant.threads.setStatus",
                    channel_id=action.conversation_id,
                    thread_ts=action.root_message_id,
                    status=status,
                )
                return "assistant_status"
            except SlackCallError as exc:
                if exc.verdict == "refused":
                    await ctx.capabilities.refuse(ASSISTANT_STATUS, f"{exc.method}: {exc.error}")
                elif not exc.permanent:
                    raise
                # a permanent error for this thread only: fall through to a reaction this time
        if not payload.message_id:
            return "none"
        channel, ts = action.conversation_id, payload.message_id
        if payload.state != "running":
            await self._react(ctx.api, channel, ts, STATUS_REACTIONS["running"], remove=True)
        emoji = STATUS_REACTIONS.get(payload.state)
        if emoji and payload.state != "idle":
            await self._react(ctx.api, channel, ts, emoji, remove=False)
        return "reaction"

    async def _react(self, api: SlackApi, channel: str, ts: str, emoji: str, remove: bool) -> None:
        method = "reactions.remove" if remove else "reactions.add"
        try:
            await api.call(method, channel=channel, timestamp=ts, name=emoji.strip(":"))
        except SlackCallError as exc:
            if exc.error not in HARMLESS_REACTION_ERRORS:
                raise

    async def _ephemeral(
        self, ctx: OutboundContext, action: OutboundAction, payload: EphemeralPayload
    ) -> str:
        text = trim(to_mrkdwn(payload.text), UPDATE_LIMIT) or " "
        args: dict[str, Any] = {"channel": action.conversation_id, "user": payload.user_id, "text": text}
        if action.root_message_id != CHANNEL_SCOPE:  # a command given outside a thread
            args["thread_ts"] = action.root_message_id
        blocks = message_blocks(text, payload.buttons)
        if blocks:
            args["blocks"] = blocks
        data = await ctx.api.call("chat.postEphemeral", **args)
        return str(data.get("message_ts") or "")

    async def _open_view(
        self, ctx: OutboundContext, action: OutboundAction, payload: OpenViewPayload
    ) -> dict[str, Any]:
        view = dict(payload.view)
        view["private_metadata"] = wrap_view_metadata(
            action.conversation_id, action.root_message_id, str(view.get("private_metadata") or "")
        )
        data = await ctx.api.call("views.open", trigger_id=payload.trigger_id, view=view)
        return {"view_id": (data.get("view") or {}).get("id")}

    # ---- reads (RPC) -------------------------------------------------------------------------------

    async def _read(self, ctx: OutboundContext, action: OutboundAction) -> OutboundResult:
        payload = action.payload
        if isinstance(payload, HistoryPayload):
            return OutboundResult(
                action_id=action.action_id,
                ok=True,
                messages=await self._history(ctx, action, payload),
            )
        assert payload.kind == "download"
        saved, errors = await files.download(
            ctx.http,
            token=ctx.bot_token,
            payload=payload,
            sessions_root=ctx.data_root / "sessions",
            hosts=ctx.download_hosts,
            cap_bytes=ctx.download_cap_bytes,
        )
        return OutboundResult(
            action_id=action.action_id,
            ok=not errors,
            error=(", ".join(f"{k}: {v}" for k, v in errors.items()) or None),
            files=saved,
            data={"errors": errors} if errors else {},
        )

    async def _history(
        self, ctx: OutboundContext, action: OutboundAction, payload: HistoryPayload
    ) -> list[Any]:
        raw: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(ctx.history_max_pages):
            args: dict[str, Any] = {
                "channel": action.conversation_id,
                "ts": action.root_message_id,
                "limit": HISTORY_PAGE,
            }
            if payload.before_message_id:
                args.update(latest=payload.before_message_id, inclusive=False)
            if cursor:
                args["cursor"] = cursor
            data = await ctx.api.call("conversations.replies", **args)
            raw.extend(data.get("messages") or [])
            cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        selected = select_history(raw, payload.before_message_id, payload.limit)
        names = await ctx.users.names(history_user_ids(selected, ctx.me))
        return [to_history_message(m, ctx.me, names) for m in selected]
