"""A named singleton lease in Redis: only its holder runs housekeeping, so two replicas never
delete the same tree at once. Renewed every round; lapses by TTL when the holder dies."""

from __future__ import annotations

from redis.asyncio import Redis

_ACQUIRE_OR_RENEW = """
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

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    def __init__(self, redis: Redis, key: str, holder: str, ttl_ms: int) -> None:
        self.redis = redis
        self.key = key
        self.holder = holder
        self.ttl_ms = ttl_ms

    async def acquire(self) -> bool:
        """Take the lease, or extend it when we already hold it."""
        held = await self.redis.eval(_ACQUIRE_OR_RENEW, 1, self.key, self.holder, str(self.ttl_ms))  # type: ignore[misc]
        return bool(held)

    async def release(self) -> None:
        await self.redis.eval(_RELEASE, 1, self.key, self.holder)  # type: ignore[misc]
