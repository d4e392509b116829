"""Socket Mode envelopes → InboundEvents in Redis (the kit's `InboundStore`), acked only once
they are stored.

Bolt runs with `process_before_response=True`: the envelope is acked when a listener returns
(events) or calls `ack()` (actions, views) — and a listener that raises leaves it un-acked, so
Slack re-sends it. Every listener therefore stores first and returns (or acks) last. A payload
of the wrong shape goes to the kit's `DeadLetterWriter` and is acked.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from slack_bolt.async_app import AsyncApp
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.response import BoltResponse

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
from codex_broker.ingress_slack.users import UserDirectory
from codex_broker.ingress_slack.view import recipient_key
from codex_broker.libs.contracts import InboundEvent
from codex_broker.libs.ingress_kit.deadletter import DeadLetterWriter
from codex_broker.libs.ingress_kit.inbound import InboundStore, StillInProgress
from codex_broker.libs.keys import Keys, session_key_of
from codex_broker.libs.rawlog import RawLog

log = logging.getLogger(__name__)

RECIPIENT_TTL_S = 2 * 86400
ANY = re.compile(r".*")
COMMAND_NOT_STORED = "Sorry, I could not take that command just now. Please try again."


# failing to store (Redis away, the twin mid-store) is not acked, so that Slack re-sends the event
NOT_STORED = (redis_errors.RedisError, OSError, TimeoutError, StillInProgress)
# what a payload of the wrong shape raises, in our normalization or in Bolt's own matching
# (and a payload no listener matches: Bolt raises BoltUnhandledRequestError for it)
MALFORMED = (TypeError, ValueError, AttributeError, KeyError, IndexError, BoltUnhandledRequestError)
DEAD_LETTER_SOURCE = "slack:socket-mode"
DEAD_LETTER_GROUP = "ingress-slack"


def inbound_store(redis: Redis, keys: Keys, *, maxlen: int) -> InboundStore:
    return InboundStore(redis, keys, platform="slack", maxlen=maxlen)


def dead_letters(redis: Redis, keys: Keys) -> DeadLetterWriter:
    return DeadLetterWriter(redis, keys, source=DEAD_LETTER_SOURCE, group=DEAD_LETTER_GROUP)


def raw_session_key(body: Mapping[str, Any]) -> str | None:
    """The session a raw envelope belongs to, when it names a channel and a message."""
    event = body.get("event") if isinstance(body.get("event"), Mapping) else None
    if event is None or not event.get("channel") or not (event.get("thread_ts") or event.get("ts")):
        return None
    return session_key_of("slack", str(event["channel"]), str(event.get("thread_ts") or event["ts"]))


class SlackInbound:
    def __init__(
        self,
        store: InboundStore,
        users: UserDirectory,
        me: BotIdentity,
        raw_log: RawLog | None = None,
        *,
        dead_letters: DeadLetterWriter | None = None,
    ) -> None:
        self.store = store
        self.dead_letters = dead_letters
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
        also_set = None
        if recipient:
            key = recipient_key(self.store.keys, inbound.conversation_id, inbound.root_message_id)
            also_set = {key: (recipient, RECIPIENT_TTL_S)}
        try:
            stored = await self.store.persist(inbound, also_set=also_set)
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
        body = scrub_surrogates(body)
        source_id = (body.get("event_id") or body.get("trigger_id") or "") if isinstance(body, dict) else ""
        try:
            assert self.dead_letters is not None
            await self.dead_letters.write(body, reason, source_id=str(source_id))
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


async def _ack_only(ack: Callable[..., Awaitable[Any]]) -> None:
    await ack()
