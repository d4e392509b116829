"""Persist long-connection events into Redis, synchronously, before the handler returns.

Runs on the long connection's own thread and loop: lark acks an event when the handler returns,
so the event is in Redis first (persist before ack). A failure raises, lark answers 500, and
Feishu pushes the event again. De-duplication on the event id (`feishu:<message_id>`) happens
after the XADD succeeded, so a crash between the two can only cause a duplicate that the next
delivery's check — or the orchestrator's own idempotency — absorbs, never a loss.

The sender's display name comes from `users.UserNames`: its cache entry is read in the same round
trip as the duplicate check; a miss costs one bounded lookup, a failure falls back to the id.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis import Redis as SyncRedis

from codex_broker.ingress_feishu import metrics
from codex_broker.ingress_feishu.normalize import (
    Ignored,
    InboundPolicy,
    card_action_to_inbound,
    message_to_inbound,
)
from codex_broker.ingress_feishu.users import UserNames
from codex_broker.libs.contracts import InboundEvent, encode
from codex_broker.libs.keys import Keys
from codex_broker.libs.rawlog import RawLog

log = logging.getLogger(__name__)

DEDUPE_SCOPE = "inbound-feishu"
DEAD_LETTER_SOURCE = "feishu:long-connection"
DEAD_LETTER_GROUP = "ingress-feishu"
DEAD_LETTER_MAXLEN = 50_000
DEAD_LETTER_DATA_MAX = 64 * 1024
DEDUPE_TTL_S = 24 * 3600
DATA_FIELD = "data"


@dataclass
class InboundSink:
    redis: SyncRedis
    keys: Keys
    policy: Callable[[], InboundPolicy]
    stream_maxlen: int = 100_000
    raw_log: RawLog | None = None  # LOG_RAW_FEISHU_EVENTS (a no-op RawLog when switched off)
    names: UserNames | None = None  # None: events go out with ids only

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
        self.redis.xadd(
            self.keys.dead_letter_stream,
            {
                "source_stream": DEAD_LETTER_SOURCE,
                "source_id": _event_id_of(payload),
                "group": DEAD_LETTER_GROUP,
                "reason": reason[:2000],
                "deliveries": "1",
                DATA_FIELD: payload[:DEAD_LETTER_DATA_MAX].decode("utf-8", errors="replace"),
                "at_ms": str(int(time.time() * 1000)),
            },
            maxlen=DEAD_LETTER_MAXLEN,
            approximate=True,
        )
        metrics.INBOUND_EVENTS.labels(type="unknown", result="dead_letter").inc()
        log.warning("malformed feishu event dead-lettered", extra={"reason": reason[:300]})

    def _persist(self, event_type: str, result: InboundEvent | Ignored) -> None:
        if isinstance(result, Ignored):
            metrics.INBOUND_IGNORED.labels(reason=result.reason).inc()
            metrics.INBOUND_EVENTS.labels(type=event_type, result="ignored").inc()
            return
        started = time.perf_counter()
        dedupe_key = self.keys.idempotency(DEDUPE_SCOPE, result.event_id)
        names = self.names if self.names is not None and self.names.wanted(result.actor) else None
        name_key = names.cache_key(result.actor.id) if names is not None else None
        cached: bytes | None = None
        if name_key is None:
            duplicate = self.redis.exists(dedupe_key)
        else:
            pipe = self.redis.pipeline(transaction=False)
            pipe.exists(dedupe_key)
            pipe.get(name_key)
            duplicate, cached = pipe.execute()
        if duplicate:
            metrics.INBOUND_EVENTS.labels(type=event_type, result="duplicate").inc()
            return
        if names is not None:
            name = names.resolve(result.actor.id, cached)
            result = result.model_copy(
                update={"actor": result.actor.model_copy(update={"display_name": name})}
            )
        stream = self.keys.inbound_stream_for(result.session_key)
        # two commands, not one pipeline: a pipeline would still run SET when XADD fails,
        # and a marker without its entry is a lost message
        self.redis.xadd(stream, {DATA_FIELD: encode(result)}, maxlen=self.stream_maxlen, approximate=True)
        self.redis.set(dedupe_key, "done:", ex=DEDUPE_TTL_S)
        metrics.INBOUND_PERSIST_SECONDS.observe(time.perf_counter() - started)
        metrics.INBOUND_EVENTS.labels(type=event_type, result="persisted").inc()
        log.info(
            "inbound event persisted",
            extra={"event_id": result.event_id, "session_key": result.session_key, "kind": result.kind},
        )


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
