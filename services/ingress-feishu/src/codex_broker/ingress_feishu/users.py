"""Display names of Feishu users for inbound events: a Redis cache, then contact/v3 user get.

Feishu's events carry ids only. The name is needed while the long connection's handler runs —
lark acks when it returns and Feishu re-pushes what is not acked within ~3 s — so a cache miss
waits for the REST call (which runs on the service's own loop) for at most `timeout_s`, and any
failure (timeout, missing scope, unknown user, 5xx) gives the id instead. Failures are cached
too, for FAILED_TTL_S, so that a missing scope or a slow API does not cost every message the wait.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from redis import Redis as SyncRedis
from redis.exceptions import RedisError

from codex_broker.ingress_feishu import metrics
from codex_broker.libs.contracts import Actor
from codex_broker.libs.keys import Keys

log = logging.getLogger(__name__)

PLATFORM = "feishu"
LOOKUP_TIMEOUT_S = 1.5  # inside Feishu's ~3 s ack window, with room for the XADD
FAILED_TTL_S = 60
DEFAULT_TTL_S = 3600


@dataclass
class UserNames:
    redis: SyncRedis
    keys: Keys
    lookup: Callable[[str], Coroutine[Any, Any, str]]  # open_id → name ("" = not visible); raises on failure
    ttl_s: int = DEFAULT_TTL_S  # 0 = no cache
    timeout_s: float = LOOKUP_TIMEOUT_S
    loop: asyncio.AbstractEventLoop | None = None  # the service's loop, where `lookup` runs

    def wanted(self, actor: Actor) -> bool:
        return not actor.is_bot and not actor.display_name and actor.id not in ("", "unknown")

    def cache_key(self, open_id: str) -> str | None:
        return self.keys.user_name(PLATFORM, open_id) if self.ttl_s > 0 else None

    def name_of(self, open_id: str) -> str:
        """The name to show: the cache, else a bounded lookup; the id when neither answers."""
        key = self.cache_key(open_id)
        cached: bytes | None = None
        if key is not None:
            try:
                cached = self.redis.get(key)  # type: ignore[assignment]
            except RedisError as exc:  # the event matters more than the cache
                log.warning("could not read a cached user name", extra={"error": str(exc)[:200]})
        return self.resolve(open_id, cached)

    def resolve(self, open_id: str, cached: bytes | None) -> str:
        """The name to show; `cached` is the cache entry, read by the caller in its own round trip."""
        if cached is not None:
            metrics.USER_NAMES.labels(result="cached").inc()
            return cached.decode() or open_id
        name = self._lookup(open_id)
        metrics.USER_NAMES.labels(result="looked_up" if name else "failed").inc()
        key = self.cache_key(open_id)
        if key is not None:
            try:
                self.redis.set(key, name, ex=self.ttl_s if name else FAILED_TTL_S)
            except RedisError as exc:  # the event matters more than the cache
                log.warning("could not cache a user name", extra={"error": str(exc)[:200]})
        return name or open_id

    def _lookup(self, open_id: str) -> str:
        loop = self.loop
        if loop is None or loop.is_closed() or _running_loop() is loop:
            return ""  # not wired, or we would block the very loop the lookup needs
        future = asyncio.run_coroutine_threadsafe(self.lookup(open_id), loop)
        try:
            name = future.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            log.warning(
                "user name lookup timed out; using the id",
                extra={"open_id": open_id, "timeout_s": self.timeout_s},
            )
            return ""
        except Exception as exc:
            log.warning(
                "user name lookup failed; using the id", extra={"open_id": open_id, "error": str(exc)[:300]}
            )
            return ""
        if not name:
            log.warning("user has no name visible to the app; using the id", extra={"open_id": open_id})
        return name


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
