"""Long-connection events → InboundEvents in Redis (the kit's `InboundStore`), before the handler
returns.

The handlers run on the long connection's own thread and loop: lark acks an event when the
handler returns, so the event is in Redis first (persist before ack). The store runs on the
service's loop (`loop`), and the handler waits for it at most `PERSIST_TIMEOUT_S`; a failure
raises, lark answers 500, and Feishu pushes the event again. The kit de-duplicates on the event id
(`feishu:<message_id>`). A payload that can never be handled goes to the kit's
`DeadLetterWriter`.

The sender's display name comes from `users.UserNames`: a cache hit costs one read, a miss one
bounded lookup, a failure falls back to the id.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from redis import exceptions as redis_errors

from codex_broker.ingress_feishu import metrics
from codex_broker.ingress_feishu.normalize import (
    Ignored,
    InboundPolicy,
    card_action_to_inbound,
    message_to_inbound,
)
from codex_broker.ingress_feishu.users import UserNames
from codex_broker.libs.contracts import InboundEvent
from codex_broker.libs.ingress_kit.deadletter import DeadLetterWriter
from codex_broker.libs.ingress_kit.inbound import InboundStore, StillInProgress
from codex_broker.libs.rawlog import RawLog

log = logging.getLogger(__name__)

DEAD_LETTER_SOURCE = "feishu:long-connection"
DEAD_LETTER_GROUP = "ingress-feishu"
PERSIST_TIMEOUT_S = 2.5  # inside Feishu's ~3 s ack window

T = TypeVar("T")


class NotStored(RuntimeError):
    """The store could not be reached from the connection's thread (not wired, shutting down)."""


# failing to store: lark answers 500 and Feishu pushes the event again, as it should
NOT_STORED = (
    redis_errors.RedisError,
    OSError,
    TimeoutError,
    StillInProgress,
    NotStored,
    concurrent.futures.CancelledError,
)


@dataclass
class FeishuInbound:
    store: InboundStore
    dead_letters: DeadLetterWriter
    policy: Callable[[], InboundPolicy]
    raw_log: RawLog | None = None  # LOG_RAW_FEISHU_EVENTS (a no-op RawLog when switched off)
    names: UserNames | None = None  # None: events go out with ids only
    loop: asyncio.AbstractEventLoop | None = None  # the service's loop, where the store runs

    def on_message(self, payload: dict[str, Any]) -> None:
        result = message_to_inbound(payload, self.policy())
        self._log_raw("im.message.receive_v1", payload, result)
        self._persist("message", result)

    def on_card_action(self, payload: dict[str, Any]) -> str | None:
        """Returns the toast to show the clicker, or None for a button that is not ours."""
        result = card_action_to_inbound(payload)
        self._log_raw("card.action.trigger", payload, result)
        self._persist("card_action", result)
        if isinstance(result, Ignored):
            return None
        action = result.action.action if result.action else ""
        return {"stop": "Stopping…", "approve": "Approved", "deny": "Denied", "retry": "Retrying…"}.get(
            action, "Received"
        )

    def _log_raw(self, event_type: str, payload: dict[str, Any], result: InboundEvent | Ignored) -> None:
        if self.raw_log is not None and self.raw_log.enabled:
            session_key = None if isinstance(result, Ignored) else result.session_key
            self.raw_log.write({"type": event_type, "payload": payload}, session_key=session_key)

    def dead_letter(self, payload: bytes, reason: str) -> None:
        """An event payload that can never be handled, on the dead-letter stream with the reason."""
        body = payload.decode("utf-8", errors="replace")
        self._on_loop(self.dead_letters.write(body, reason, source_id=_event_id_of(payload)))
        metrics.INBOUND_EVENTS.labels(type="unknown", result="dead_letter").inc()
        log.warning("malformed feishu event dead-lettered", extra={"reason": reason[:300]})

    def _persist(self, event_type: str, result: InboundEvent | Ignored) -> None:
        if isinstance(result, Ignored):
            metrics.INBOUND_IGNORED.labels(reason=result.reason).inc()
            metrics.INBOUND_EVENTS.labels(type=event_type, result="ignored").inc()
            return
        started = time.perf_counter()
        if self.names is not None and self.names.wanted(result.actor):
            name = self.names.name_of(result.actor.id)
            result = result.model_copy(
                update={"actor": result.actor.model_copy(update={"display_name": name})}
            )
        if not self._on_loop(self.store.persist(result)):
            metrics.INBOUND_EVENTS.labels(type=event_type, result="duplicate").inc()
            return
        metrics.INBOUND_PERSIST_SECONDS.observe(time.perf_counter() - started)
        metrics.INBOUND_EVENTS.labels(type=event_type, result="persisted").inc()
        log.info(
            "inbound event persisted",
            extra={"event_id": result.event_id, "session_key": result.session_key, "kind": result.kind},
        )

    def _on_loop(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the service's loop and wait for it (a TimeoutError is not stored)."""
        loop = self.loop
        if loop is None or loop.is_closed() or _running_loop() is loop:
            work.close()  # not wired, or waiting here would block the very loop the work needs
            raise NotStored("the feishu inbound store is not reachable from this thread")
        future = asyncio.run_coroutine_threadsafe(work, loop)
        try:
            return future.result(timeout=PERSIST_TIMEOUT_S)
        except TimeoutError:
            future.cancel()
            raise


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _event_id_of(payload: bytes) -> str:
    try:
        header = json.loads(payload).get("header") or {}
        return str(header.get("event_id") or "")[:256]
    except Exception:  # any garbage: there is no id to show
        return ""


def event_to_dict(event: Any) -> dict[str, Any]:
    """lark's event objects → the plain JSON envelope the pure normalizers take."""
    import lark_oapi as lark

    raw = lark.JSON.marshal(event)
    value = json.loads(raw) if raw else {}
    return value if isinstance(value, dict) else {}
