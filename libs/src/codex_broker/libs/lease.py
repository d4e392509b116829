"""Leases in Redis: a key holding its holder's id with a TTL, renewed only while still ours.

Used for the orchestrator's shard leases, the one Feishu long connection per app, and the one
housekeeping replica. Renew and release compare the holder first (a Lua script), so a replica
whose lease already lapsed and was taken over can never extend or delete the new holder's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

log = logging.getLogger(__name__)

RENEW_IF_HELD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

RELEASE_IF_HELD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

ACQUIRE_OR_RENEW = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if current then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


@dataclass
class Lease:
    redis: Redis
    key: str
    holder: str
    ttl_ms: int
    _scripts: dict[str, Any] = field(default_factory=dict, repr=False)

    def _script(self, source: str) -> Any:
        if source not in self._scripts:
            self._scripts[source] = self.redis.register_script(source)
        return self._scripts[source]

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it."""
        return bool(await self.redis.set(self.key, self.holder, nx=True, px=self.ttl_ms))

    async def renew(self) -> bool:
        """Extend the lease; False when it is no longer ours."""
        return bool(await self._script(RENEW_IF_HELD)(keys=[self.key], args=[self.holder, self.ttl_ms]))

    async def acquire_or_renew(self) -> bool:
        """Take the lease, or extend it when we already hold it."""
        return bool(await self._script(ACQUIRE_OR_RENEW)(keys=[self.key], args=[self.holder, self.ttl_ms]))

    async def release(self) -> None:
        await self._script(RELEASE_IF_HELD)(keys=[self.key], args=[self.holder])

    @contextlib.asynccontextmanager
    async def renewed(self, every_s: float) -> AsyncIterator[None]:
        """Keep a lease we hold alive while the block runs (renewed every `every_s`, well under
        `ttl_ms`), then release it. A holder that dies mid-block stops renewing, so the lease
        lapses one `ttl_ms` later however long the work would have taken."""
        renewing = asyncio.create_task(self._keep(every_s))
        try:
            yield
        finally:
            renewing.cancel()
            await asyncio.wait([renewing])  # unlike `await renewing`, never swallows our own cancel
            with contextlib.suppress(Exception):  # unreleased, it lapses after ttl_ms
                await self.release()

    async def _keep(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                if not await self.renew():
                    log.warning("lease lost while held", extra={"key": self.key})
                    return
            except Exception as exc:  # a missed renewal only shortens the lease
                log.warning("lease renewal failed", extra={"key": self.key, "error": str(exc)[:200]})
