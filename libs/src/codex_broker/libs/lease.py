"""Leases in Redis: a key holding its holder's id with a TTL, renewed only while still ours.

Used for the orchestrator's shard leases, the one Feishu long connection per app, and the one
housekeeping replica. Renew and release compare the holder first (a Lua script), so a replica
whose lease already lapsed and was taken over can never extend or delete the new holder's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

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
