"""Everything a request handler needs, built once in `main()` (or by a test) and passed down."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from redis import Redis as SyncRedis
from redis.asyncio import Redis

from codex_broker.http_api.config import Settings
from codex_broker.libs.bus import StreamBus
from codex_broker.libs.keys import Keys
from codex_broker.libs.logs import Redactor, redactor


@dataclass
class AppContext:
    settings: Settings
    redis: Redis
    keys: Keys
    bus: StreamBus
    # rq is synchronous: it gets its own blocking client, used only from worker threads
    sync_redis: SyncRedis | None = None
    redactor: Redactor = field(default_factory=redactor)
    started_at: float = field(default_factory=time.time)

    @classmethod
    def create(cls, settings: Settings, *, redis_client: Redis | None = None) -> AppContext:
        client = redis_client or Redis.from_url(
            settings.redis_url, socket_connect_timeout=5, health_check_interval=30
        )
        keys = settings.keys
        return cls(
            settings=settings,
            redis=client,
            keys=keys,
            bus=StreamBus(client, dead_letter_stream=keys.dead_letter_stream, maxlen=settings.stream_maxlen),
            sync_redis=SyncRedis.from_url(settings.redis_url, socket_connect_timeout=5),
        )

    def sync_client(self) -> SyncRedis:
        """The blocking client for rq (created on first use when the context was built by hand)."""
        if self.sync_redis is None:
            self.sync_redis = SyncRedis.from_url(self.settings.redis_url, socket_connect_timeout=5)
        return self.sync_redis

    async def aclose(self) -> None:
        await self.redis.aclose()
        if self.sync_redis is not None:
            self.sync_redis.close()
