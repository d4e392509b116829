"""Capabilities learned per workspace (native streaming, assistant status), shared via Redis.

A refusal (unknown_method, missing_scope, …) is learned once and remembered for a week, so every
replica falls back at once and nobody asks Slack again; after the TTL it is probed again, which
picks up a scope the operator added meanwhile.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis

from codex_broker.ingress_slack import metrics
from codex_broker.libs.keys import Keys

log = logging.getLogger(__name__)

NATIVE_STREAM = "native_stream"
ASSISTANT_STATUS = "assistant_status"
REFUSED_TTL_S = 7 * 86400
LOCAL_TTL_S = 30.0  # how long a replica trusts its own copy before re-reading Redis


class Capabilities:
    def __init__(self, redis: Redis, keys: Keys, workspace: str) -> None:
        self.redis = redis
        self.keys = keys
        self.workspace = workspace or "default"
        self._local: dict[str, tuple[bool, float]] = {}

    def _key(self, capability: str) -> str:
        return self.keys.platform_capability("slack", self.workspace, capability)

    async def allowed(self, capability: str) -> bool:
        cached = self._local.get(capability)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        raw = await self.redis.get(self._key(capability))
        value = (raw.decode() if isinstance(raw, bytes) else raw) != "no"
        self._local[capability] = (value, time.monotonic() + LOCAL_TTL_S)
        return value

    async def refuse(self, capability: str, reason: str) -> None:
        self._local[capability] = (False, time.monotonic() + LOCAL_TTL_S)
        if await self.redis.set(self._key(capability), "no", ex=REFUSED_TTL_S):
            metrics.CAPABILITY_LEARNED.labels(capability=capability).inc()
        log.warning(
            "slack capability refused; using the fallback",
            extra={"capability": capability, "reason": reason, "workspace": self.workspace},
        )
