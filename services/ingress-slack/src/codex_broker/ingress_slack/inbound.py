"""Socket Mode envelopes → InboundEvents in Redis, acked only once they are stored.

Bolt runs with `process_before_response=True`: the envelope is acked when a listener returns
(events) or calls `ack()` (actions, views) — and a listener that raises leaves it un-acked, so
Slack re-sends it. Every listener therefore stores first and returns (or acks) last.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app, send_async_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.response import BoltResponse
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from codex_broker.ingress_slack import metrics
from codex_broker.ingress_slack.normalize import (
    SLASH_COMMAND,
    BotIdentity,
    block_action_to_inbound,
    ignore_reason,
    scrub_surrogates,
    slash_command_to_inbound,
    to_inbound,
    user_ids_to_resolve,
    view_submission_to_inbound,
)
from codex_broker.ingress_slack.progress import recipient_key
from codex_broker.ingress_slack.users import UserDirectory
from codex_broker.libs import metrics as libs_metrics
from codex_broker.libs.bus import DATA_FIELD, DEAD_LETTER_MAXLEN
from codex_broker.libs.contracts import InboundEvent, encode
from codex_broker.libs.idempotency import DONE_PREFIX, Idempotency
from codex_broker.libs.keys import Keys, session_key_of
from codex_broker.libs.rawlog import RawLog

log = logging.getLogger(__name__)

DEDUP_SCOPE = "inbound-slack"
DEDUP_TTL_S = 86400
RECIPIENT_TTL_S = 2 * 86400
CLAIM_LEASE_MS = 30_000
CLAIM_WAIT_S = 3.0
ANY = re.compile(r".*")
COMMAND_NOT_STORED = "Sorry, I could not take that command just now. Please try again."


class StillInProgress(RuntimeError):
    """Another delivery of the same event is being stored right now: do not ack this one yet."""


# failing to store (Redis away, the twin mid-store) is not acked, so that Slack re-sends the event
NOT_STORED = (redis_errors.RedisError, OSError, TimeoutError, StillInProgress)
# what a payload of the wrong shape raises, in our normalization or in Bolt's own matching
# (and a payload no listener matches: Bolt raises BoltUnhandledRequestError for it)
MALFORMED = (TypeError, ValueError, AttributeError, KeyError, IndexError, BoltUnhandledRequestError)
DEAD_LETTER_SOURCE = "slack:socket-mode"
DEAD_LETTER_GROUP = "ingress-slack"
DEAD_LETTER_DATA_MAX = 64 * 1024


class InboundStore:
    """Dedup lease → XADD (+ done marker) in one round trip; a failure releases the lease."""

    def __init__(self, redis: Redis, keys: Keys, *, maxlen: int) -> None:
        self.redis = redis
        self.keys = keys
        self.maxlen = maxlen
        self.guard = Idempotency(redis, keys, DEDUP_SCOPE)

    async def persist(self, event: InboundEvent, *, recipient: str | None = None) -> bool:
        """True when stored now, False when it was stored before (a duplicate). Raises → no ack."""
        if await self._claim(event.event_id) == "done":
            return False
        stream = self.keys.inbound_stream_for(event.session_key)
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.xadd(stream, {DATA_FIELD: encode(event)}, maxlen=self.maxlen, approximate=True)
            pipe.set(self.keys.idempotency(DEDUP_SCOPE, event.event_id), DONE_PREFIX, ex=DEDUP_TTL_S)
            if recipient:
                key = recipient_key(self.keys, event.conversation_id, event.root_message_id)
                pipe.set(key, recipient, ex=RECIPIENT_TTL_S)
            await pipe.execute()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.guard.release(event.event_id)
            raise
        libs_metrics.STREAM_PUBLISHED.labels(stream=libs_metrics.stream_label(stream)).inc()
        return True

    async def dead_letter(self, body: Any, reason: str) -> None:
        """A payload that can never be handled, on the dead-letter stream (like a bad stream entry)."""
        body = scrub_surrogates(body)
        source_id = (body.get("event_id") or body.get("trigger_id") or "") if isinstance(body, dict) else ""
        fields = {
            "source_stream": DEAD_LETTER_SOURCE,
            "source_id": str(source_id)[:256],
            "group": DEAD_LETTER_GROUP,
            "reason": reason[:2000],
            "deliveries": "1",
            DATA_FIELD: json.dumps(body, default=str)[:DEAD_LETTER_DATA_MAX],
            "at_ms": str(int(time.time() * 1000)),
        }
        await self.redis.xadd(
            self.keys.dead_letter_stream,
            fields,  # type: ignore[arg-type]
            maxlen=DEAD_LETTER_MAXLEN,
            approximate=True,
        )

    async def _claim(self, event_id: str) -> str:
        deadline = time.monotonic() + CLAIM_WAIT_S
        while True:
            claim = await self.guard.claim(event_id, lease_ms=CLAIM_LEASE_MS)
            if claim.status != "in_progress":
                return claim.status
            if time.monotonic() > deadline:
                raise StillInProgress(event_id)
            await asyncio.sleep(0.02)  # the twin (app_mention vs message) is mid-XADD: wait for it


def raw_session_key(body: Mapping[str, Any]) -> str | None:
    """The session a raw envelope belongs to, when it names a channel and a message."""
    event = body.get("event") if isinstance(body.get("event"), Mapping) else None
    if event is None or not event.get("channel") or not (event.get("thread_ts") or event.get("ts")):
        return None
    return session_key_of("slack", str(event["channel"]), str(event.get("thread_ts") or event["ts"]))


class SlackInbound:
    def __init__(
        self, store: InboundStore, users: UserDirectory, me: BotIdentity, raw_log: RawLog | None = None
    ) -> None:
        self.store = store
        self.users = users
        self.me = me
        self.raw_log = raw_log if raw_log is not None and raw_log.enabled else None

    def register(self, app: AsyncApp) -> None:
        if self.raw_log is not None:
            app.use(self.log_raw)
        app.event(ANY)(self.on_event)
        app.action(ANY)(self.on_action)
        app.view(ANY)(self.on_view)
        app.view({"type": "view_closed", "callback_id": ANY})(_ack_only)
        app.command(SLASH_COMMAND)(self.on_command)
        app.command(ANY)(_ack_only)
        app.shortcut(ANY)(_ack_only)
        app.options(ANY)(_ack_only)
        app.error(self.on_error)

    async def log_raw(self, body: dict[str, Any], next: Callable[[], Awaitable[Any]]) -> Any:
        """LOG_RAW_SLACK_EVENTS: every envelope's payload, redacted and truncated by RawLog."""
        assert self.raw_log is not None
        self.raw_log.write({"payload": body}, session_key=raw_session_key(body))
        return await next()

    def ignorable(self, payload: Any) -> bool:
        """An Events API payload that `on_event` would ignore (our own posts echoed back, edits,
        joins, other bots…): it is acked without going through Bolt's per-envelope middleware
        and listener matching, which cost more than the rest of its handling. Not when every
        envelope is to be raw-logged."""
        if self.raw_log is not None or not isinstance(payload, dict):
            return False
        event = payload.get("event")
        if payload.get("type") != "event_callback" or not isinstance(event, dict):
            return False
        me = replace(self.me, app_id=str(payload.get("api_app_id") or self.me.app_id))
        if ignore_reason(event, me) is None:
            return False
        kind = event.get("type")
        metrics.INBOUND.labels(
            kind=kind if kind in ("message", "app_mention") else "other", result="ignored"
        ).inc()
        return True

    async def on_event(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        started = time.perf_counter()
        body, event = scrub_surrogates(body), scrub_surrogates(event)
        me = replace(self.me, app_id=str(body.get("api_app_id") or self.me.app_id))
        kind = str(event.get("type") or "unknown")
        kind_label = kind if kind in ("message", "app_mention") else "other"
        reason = ignore_reason(event, me)
        if reason is not None:
            metrics.INBOUND.labels(kind=kind_label, result="ignored").inc()
            log.debug("ignored slack event", extra={"event_type": kind, "reason": reason})
            return
        names = await self.users.names(user_ids_to_resolve(event, me))
        inbound = to_inbound(event, me, names)
        if inbound is None:
            metrics.INBOUND.labels(kind=kind_label, result="ignored").inc()
            return
        inbound.actor.email = self.users.email(inbound.actor.id)
        recipient = f"{body.get('team_id') or event.get('team') or me.team_id}:{event.get('user') or ''}"
        await self._persist(kind_label, inbound, started, recipient if event.get("user") else None)

    async def on_action(self, body: dict[str, Any], ack: Callable[..., Awaitable[Any]]) -> None:
        started = time.perf_counter()
        body = scrub_surrogates(body)
        user_id = str((body.get("user") or {}).get("id") or "")
        inbound = block_action_to_inbound(body, await self.users.names([user_id]))
        if inbound is not None:
            await self._persist("block_actions", inbound, started, None)
        else:
            metrics.INBOUND.labels(kind="block_actions", result="ignored").inc()
        await ack()

    async def on_view(self, body: dict[str, Any], ack: Callable[..., Awaitable[Any]]) -> None:
        started = time.perf_counter()
        body = scrub_surrogates(body)
        user_id = str((body.get("user") or {}).get("id") or "")
        inbound = view_submission_to_inbound(body, await self.users.names([user_id]))
        if inbound is not None:
            await self._persist("view_submission", inbound, started, None)
        else:
            metrics.INBOUND.labels(kind="view_submission", result="ignored").inc()
        await ack()

    async def on_command(self, body: dict[str, Any], ack: Callable[..., Awaitable[Any]]) -> None:
        """`/codex …`: stored, then acked with nothing to show; the orchestrator answers
        ephemerally in the thread (or the channel). Slack never re-sends a command, so one that
        cannot be stored is acked with a note instead of left to time out."""
        started = time.perf_counter()
        body = scrub_surrogates(body)
        inbound = slash_command_to_inbound(body, await self.users.names([str(body.get("user_id") or "")]))
        if inbound is None:
            metrics.INBOUND.labels(kind="slash_command", result="ignored").inc()
            await ack()
            return
        try:
            await self._persist("slash_command", inbound, started, None)
        except NOT_STORED:
            await ack(text=COMMAND_NOT_STORED, response_type="ephemeral")
            return
        await ack()

    async def _persist(self, kind: str, inbound: InboundEvent, started: float, recipient: str | None) -> None:
        try:
            stored = await self.store.persist(inbound, recipient=recipient)
        except Exception as exc:
            metrics.INBOUND.labels(kind=kind, result="failed").inc()
            log.warning(
                "could not store slack event; not acking so Slack re-sends it",
                extra={"event_id": inbound.event_id, "error": f"{type(exc).__name__}: {exc}"},
            )
            raise
        metrics.INBOUND.labels(kind=kind, result="persisted" if stored else "duplicate").inc()
        metrics.INBOUND_PERSIST_SECONDS.observe(time.perf_counter() - started)
        if stored:
            log.info(
                "slack event stored",
                extra={
                    "event_id": inbound.event_id,
                    "session_key": inbound.session_key,
                    "kind": inbound.kind,
                },
            )

    async def on_error(self, error: Exception, body: Any) -> BoltResponse | None:
        """Bolt's error handler: a payload of the wrong shape is dead-lettered and acked (Slack
        must not re-send garbage); anything else stays un-acked, so Slack re-sends it."""
        reason = f"{type(error).__name__}: {error}"
        if isinstance(error, NOT_STORED) or not isinstance(error, MALFORMED):
            log.warning("slack payload not handled; not acking", extra={"error": reason[:300]})
            return None
        return await self.reject(body, reason)

    async def reject(self, body: Any, reason: str) -> BoltResponse | None:
        """Dead-letter a malformed payload; the response acks it (None: could not record it)."""
        try:
            await self.store.dead_letter(body, reason)
        except Exception as exc:
            log.warning(
                "could not dead-letter a malformed slack payload; not acking",
                extra={"error": f"{type(exc).__name__}: {exc}"[:300], "reason": reason[:300]},
            )
            return None
        kind = body.get("type") if isinstance(body, dict) else None
        label = kind if kind in ("block_actions", "view_submission") else "other"
        metrics.INBOUND.labels(kind=label, result="dead_letter").inc()
        log.warning("malformed slack payload dead-lettered", extra={"reason": reason[:300]})
        return BoltResponse(status=200, body="")


class GuardedSocketModeHandler(AsyncSocketModeHandler):
    """Bolt itself raises on some payloads of the wrong shape (building a listener's arguments,
    before any listener or error handler runs), and such an envelope would never be acked: it is
    dead-lettered and acked here instead. Events the ingress ignores anyway (`ignorable`) are
    acked at once, without Bolt. Otherwise the same as Bolt's `handle`."""

    def __init__(
        self,
        app: AsyncApp,
        app_token: str,
        *,
        reject: Callable[[Any, str], Awaitable[BoltResponse | None]],
        ignorable: Callable[[Any], bool] = lambda _: False,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, app_token, **kwargs)
        self._reject = reject
        self._ignorable = ignorable

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        started = time.time()
        if req.type == "events_api" and self._ignorable(req.payload):
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        try:
            response = await run_async_bolt_app(self.app, req)
        except Exception as exc:
            rejected = await self._reject(req.payload, f"{type(exc).__name__}: {exc}")
            if rejected is None:
                return
            response = rejected
        await send_async_response(client, req, response, started)


async def _ack_only(ack: Callable[..., Awaitable[Any]]) -> None:
    await ack()
