"""Persist before ack: a platform event is acknowledged only once it is on its inbound stream.

Dedupe on the event id: a short claim (SET NX) keeps two deliveries of one event (a platform
re-send, the twin of an event arriving as two kinds) from both being stored; the XADD and the
long-lived done marker go out in one round trip, and a failure releases the claim so the
platform's re-send can store it. A twin caught mid-store makes the caller wait briefly, and if
it is still mid-store, `StillInProgress` says "do not ack yet".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping

from redis.asyncio import Redis

from codex_broker.libs import metrics
from codex_broker.libs.bus import DATA_FIELD
from codex_broker.libs.contracts import InboundEvent, encode
from codex_broker.libs.idempotency import DONE_PREFIX, Idempotency
from codex_broker.libs.keys import Keys

DEDUP_TTL_S = 86400
CLAIM_LEASE_MS = 30_000
CLAIM_WAIT_S = 3.0
CLAIM_POLL_S = 0.02


class StillInProgress(RuntimeError):
    """Another delivery of the same event is being stored right now: do not ack this one yet."""


def dedup_scope(platform: str) -> str:
    return f"inbound-{platform}"


class InboundStore:
    def __init__(self, redis: Redis, keys: Keys, *, platform: str, maxlen: int) -> None:
        self.redis = redis
        self.keys = keys
        self.maxlen = maxlen
        self.scope = dedup_scope(platform)
        self.guard = Idempotency(redis, keys, self.scope)

    async def persist(
        self, event: InboundEvent, *, also_set: Mapping[str, tuple[str, int]] | None = None
    ) -> bool:
        """True when stored now, False for a duplicate. Raises → the caller must not ack.

        `also_set` (key → (value, ttl_s)) joins the same round trip, for what the adapter must
        remember with the event (who a thread's stream is for, …)."""
        if await self._claim(event.event_id) == "done":
            return False
        stream = self.keys.inbound_stream_for(event.session_key)
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.xadd(stream, {DATA_FIELD: encode(event)}, maxlen=self.maxlen, approximate=True)
            pipe.set(self.keys.idempotency(self.scope, event.event_id), DONE_PREFIX, ex=DEDUP_TTL_S)
            for key, (value, ttl_s) in (also_set or {}).items():
                pipe.set(key, value, ex=ttl_s)
            await pipe.execute()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.guard.release(event.event_id)
            raise
        metrics.STREAM_PUBLISHED.labels(stream=metrics.stream_label(stream)).inc()
        return True

    async def _claim(self, event_id: str) -> str:
        deadline = time.monotonic() + CLAIM_WAIT_S
        while True:
            claim = await self.guard.claim(event_id, lease_ms=CLAIM_LEASE_MS)
            if claim.status != "in_progress":
                return claim.status
            if time.monotonic() > deadline:
                raise StillInProgress(event_id)
            await asyncio.sleep(CLAIM_POLL_S)  # the twin is mid-XADD: it is done in a moment
