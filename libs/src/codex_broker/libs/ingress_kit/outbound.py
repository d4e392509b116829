"""The outbound executor: every OutboundAction of one platform becomes its effect, once.

For an effect (post, update, status, react, upload, ephemeral, form): claim the action id →
hold the claim with a renewed short lease while the platform call runs → done marker holding
the result → RPC reply when a requester waits. A replica that finds another's claim waits it
out: done → nothing happens again (the stored result is the reply); lapsed (its holder died) →
it does the effect. Reads (history, download) are repeatable and not guarded. Live view
snapshots go to `LiveViews`; a finished view is marked done like an effect, because the
orchestrator waits for that marker before it sends the thread's next answer.

Failure policy: a `PlatformError` that is not permanent (and any other exception) leaves the
entry pending — it is redelivered and dead-lettered after MAX_DELIVERIES by the consumer. A
permanent one dead-letters the entry at once, answers the requester with ok=false, and marks a
finished view done, so nothing waits for an answer that can never be posted. With
`max_deliveries` set, a transient failure on the last delivery is given up the same way (the
consumer would drop the entry next, and the requester would wait for nothing). `on_give_up`
lets an adapter tell the thread (Feishu posts a notice); it is best effort.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from codex_broker.libs.bus import Consumer, ConsumerConfig, DeadLetter, Delivery, StreamBus, loads
from codex_broker.libs.contracts import (
    DownloadPayload,
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
from codex_broker.libs.ingress_kit import metrics
from codex_broker.libs.ingress_kit.live_view import LiveViews
from codex_broker.libs.ingress_kit.platform import Platform, PlatformError, Target
from codex_broker.libs.ingress_kit.refs import MessageRefs
from codex_broker.libs.keys import GROUP_INGRESS, Keys
from codex_broker.libs.rpc import REPLY_TTL_S, send_reply

log = logging.getLogger(__name__)

DONE_SCOPE = "outbound"
DONE_TTL_S = 86400
# short and renewed: a replica that dies mid-effect blocks the action for about one lease
CLAIM_LEASE_MS = 15_000
LEASE_RENEW_S = 5.0
HOLDER_GRACE_S = 2.0  # waited beyond one lease for another replica's claim to finish or lapse
HOLDER_WAIT_S = CLAIM_LEASE_MS / 1000 + HOLDER_GRACE_S


_action_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("outbound_action_id", default=None)


def current_action_id() -> str | None:
    """Inside a `Platform` effect: the id of the action being done (stable across its
    redeliveries), for a platform that de-duplicates sends by a key of its own (Feishu's uuid)."""
    return _action_id.get()


GiveUpHook = Callable[[OutboundAction, PlatformError], Awaitable[None]]


class ClaimHeld(RuntimeError):
    """A live replica is still doing this action after HOLDER_WAIT_S: redeliver later."""


def partition_key(delivery: Delivery) -> str:
    """One thread's actions stay in order; different threads run concurrently."""
    data = loads(delivery)
    return f"{data.get('conversation_id')}:{data.get('root_message_id')}"


class OutboundExecutor:
    def __init__(
        self,
        platform: Platform,
        redis: Redis,
        keys: Keys,
        views: LiveViews,
        *,
        lease_ms: int = CLAIM_LEASE_MS,
        renew_s: float = LEASE_RENEW_S,
        max_deliveries: int | None = None,
        on_give_up: GiveUpHook | None = None,
    ) -> None:
        self.platform = platform
        self.redis = redis
        self.keys = keys
        self.views = views
        self.guard = Idempotency(redis, keys, DONE_SCOPE)
        self.refs = MessageRefs(redis, keys, platform.name)
        self.lease_ms = lease_ms
        self.renew_s = renew_s
        self.max_deliveries = max_deliveries
        self.on_give_up = on_give_up

    async def handle(self, delivery: Delivery) -> None:
        action = decode(OutboundAction, delivery.data)
        last = self.max_deliveries is not None and delivery.deliveries >= self.max_deliveries
        if action.platform != self.platform.name:
            raise DeadLetter(f"platform {action.platform} on the {self.platform.name} stream")
        kind = action.kind
        try:
            if isinstance(action.payload, ProgressPayload):
                await self.views.handle(action)
                await self._mark_view_done(action, OutboundResult(action_id=action.action_id, ok=True))
            elif isinstance(action.payload, (HistoryPayload, DownloadPayload)):
                await self._reply(action, await self._read(action))
            else:
                await self._effect_once(action)
        except PlatformError as exc:
            if not exc.permanent and not last:
                metrics.OUTBOUND.labels(platform=self.platform.name, kind=kind, result="retry").inc()
                raise
            await self._give_up(action, exc.error)
            await self._tell_thread(action, exc)
            raise DeadLetter(f"{self.platform.name} {exc}") from exc
        except DeadLetter as exc:
            await self._give_up(action, str(exc))
            raise
        metrics.OUTBOUND.labels(platform=self.platform.name, kind=kind, result="done").inc()

    async def _give_up(self, action: OutboundAction, error: str) -> None:
        metrics.OUTBOUND.labels(platform=self.platform.name, kind=action.kind, result="dead_letter").inc()
        failed = OutboundResult(action_id=action.action_id, ok=False, error=error[:500])
        await self._mark_view_done(action, failed)
        await self._reply(action, failed)

    async def _tell_thread(self, action: OutboundAction, exc: PlatformError) -> None:
        if self.on_give_up is None or isinstance(action.payload, (HistoryPayload, DownloadPayload)):
            return  # a failed read concerns only its requester
        try:
            await self.on_give_up(action, exc)
        except Exception as report_exc:
            log.warning(
                "could not report a failed action in the thread",
                extra={"kind": action.kind, "error": repr(report_exc)[:200]},
            )

    async def _mark_view_done(self, action: OutboundAction, result: OutboundResult) -> None:
        payload = action.payload
        if isinstance(payload, ProgressPayload) and payload.phase == "finish":
            await self.guard.complete(action.action_id, encode(result), ttl_s=DONE_TTL_S)

    async def _reply(self, action: OutboundAction, result: OutboundResult) -> None:
        if action.reply_to:
            await send_reply(self.redis, action.reply_to, result)

    # ---- effects, at most once per action id ------------------------------------------------------

    async def _effect_once(self, action: OutboundAction) -> None:
        claim = await self.guard.claim_waiting(
            action.action_id, lease_ms=self.lease_ms, wait_s=self.lease_ms / 1000 + HOLDER_GRACE_S
        )
        if claim.status == "done":
            metrics.OUTBOUND.labels(platform=self.platform.name, kind=action.kind, result="duplicate").inc()
            if action.reply_to and claim.result:
                pipe = self.redis.pipeline(transaction=False)
                pipe.rpush(action.reply_to, claim.result)
                pipe.expire(action.reply_to, REPLY_TTL_S)
                await pipe.execute()
            return
        if claim.status == "in_progress":
            raise ClaimHeld(action.action_id)
        try:
            token = _action_id.set(action.action_id)
            try:
                async with self.guard.renewing(
                    action.action_id, lease_ms=self.lease_ms, every_s=self.renew_s
                ):
                    result = await self._effect(action)
            finally:
                _action_id.reset(token)
        except BaseException:
            await self.guard.release(action.action_id)
            raise
        await self.guard.complete(action.action_id, encode(result), ttl_s=DONE_TTL_S)
        await self._reply(action, result)

    async def _effect(self, action: OutboundAction) -> OutboundResult:
        payload, target = action.payload, Target.of(action)
        ok = OutboundResult(action_id=action.action_id, ok=True)
        if isinstance(payload, PostPayload):
            ok.message_ids = await self.platform.post(target, payload, parts_id=action.action_id)
            if payload.ref:
                await self.refs.remember(payload.ref, action.conversation_id, ok.message_ids)
        elif isinstance(payload, UpdatePayload):
            ok.message_ids = [await self._update(action, payload)]
        elif isinstance(payload, StatusPayload):
            ok.data = {"surface": await self.platform.set_status(target, payload)}
        elif isinstance(payload, ReactPayload):
            await self.platform.react(target, payload.message_id, payload.emoji, remove=payload.remove)
        elif isinstance(payload, UploadPayload):
            ok.data = await self.platform.upload(target, payload)
        elif isinstance(payload, EphemeralPayload):
            text = await self._with_thread_link(target, payload)
            ok.message_ids = [await self.platform.ephemeral(target, payload.user_id, text, payload.buttons)]
        elif isinstance(payload, OpenViewPayload):
            ok.data = await self.platform.open_form(target, payload)
        else:
            raise DeadLetter(f"unsupported payload kind {action.kind}")
        return ok

    async def _with_thread_link(self, target: Target, payload: EphemeralPayload) -> str:
        """The text with the platform's link to `payload.thread` below it. A link the platform
        refuses for good leaves the text alone (it names the thread already); a passing failure
        is retried with the whole action, like any other call's."""
        if not payload.thread:
            return payload.text
        try:
            link = await self.platform.thread_link(target, payload.thread)
        except PlatformError as exc:
            if not exc.permanent:
                raise
            log.warning("thread link not made", extra={"thread_root": payload.thread, "error": str(exc)})
            return payload.text
        return f"{payload.text}\n{link}" if link else payload.text

    async def _update(self, action: OutboundAction, payload: UpdatePayload) -> str:
        target, message_id = Target.of(action), payload.message_id
        if payload.ref:
            found = await self.refs.resolve(payload.ref)
            if found is not None:
                target = Target(found[0], action.root_message_id, action.session_key)
                message_id = found[1]
            elif not message_id:
                raise DeadLetter(f"unknown message ref {payload.ref}")
        if not message_id:
            raise DeadLetter("update without ref or message_id")
        return await self.platform.update(target, message_id, payload.text, payload.buttons)

    # ---- reads (RPC) ---------------------------------------------------------------------------------

    async def _read(self, action: OutboundAction) -> OutboundResult:
        payload, target = action.payload, Target.of(action)
        if isinstance(payload, HistoryPayload):
            messages = await self.platform.history(target, payload.before_message_id, payload.limit)
            return OutboundResult(action_id=action.action_id, ok=True, messages=messages)
        assert isinstance(payload, DownloadPayload)
        got = await self.platform.download(target, payload)
        return OutboundResult(
            action_id=action.action_id,
            ok=not got.errors,
            error=", ".join(f"{k}: {v}" for k, v in got.errors.items()) or None,
            files=got.saved,
            data={"errors": got.errors} if got.errors else {},
        )


def outbound_consumer(
    executor: OutboundExecutor,
    bus: StreamBus,
    *,
    consumer: str,
    concurrency: int = 8,
    block_ms: int = 2000,
    max_deliveries: int = 5,
    claim_idle_ms: int = 30_000,
    streams: Sequence[str] | None = None,
) -> Consumer:
    """The consumer of `outbound:{platform}` that feeds the executor, partitioned by thread."""
    return Consumer(
        bus=bus,
        streams=list(streams or [executor.keys.outbound_stream(executor.platform.name)]),
        config=ConsumerConfig(
            group=GROUP_INGRESS,
            consumer=consumer,
            concurrency=concurrency,
            block_ms=block_ms,
            max_deliveries=max_deliveries,
            claim_idle_ms=claim_idle_ms,
        ),
        handler=executor.handle,
        partition_key=partition_key,
    )


@dataclass(frozen=True)
class OutboundConfig:
    """How an ingress consumes its outbound stream (from its settings)."""

    consumer: str  # the instance id
    interval_s: float  # the live view's pace: least seconds between two updates of one view
    concurrency: int = 8
    block_ms: int = 2000
    max_deliveries: int = 5
    claim_idle_ms: int = 30_000


async def run_outbound(
    platform: Platform,
    redis: Redis,
    keys: Keys,
    bus: StreamBus,
    stop: asyncio.Event,
    config: OutboundConfig,
    *,
    on_give_up: GiveUpHook | None = None,
) -> None:
    """An ingress's whole outbound side until `stop`: the live views, the executor (giving up on
    the last delivery) and the consumer; parked snapshots are applied on the way out."""
    views = LiveViews(platform, redis, keys, interval_s=config.interval_s)
    executor = OutboundExecutor(
        platform, redis, keys, views, max_deliveries=config.max_deliveries, on_give_up=on_give_up
    )
    consumer = outbound_consumer(
        executor,
        bus,
        consumer=config.consumer,
        concurrency=config.concurrency,
        block_ms=config.block_ms,
        max_deliveries=config.max_deliveries,
        claim_idle_ms=config.claim_idle_ms,
    )
    try:
        await consumer.run(stop)
    finally:
        await views.close()
