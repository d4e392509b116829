"""libs.channel_defaults on real Redis: save / load / delete, an unreadable entry is no entry,
and the orchestrator's cache re-reads the hash only after its TTL."""

from __future__ import annotations

from redis.asyncio import Redis

from codex_broker.libs import channel_defaults as stored
from codex_broker.libs.keys import Keys


async def test_store_and_cache(redis: Redis, keys: Keys) -> None:
    await stored.save(redis, keys, "slack", "C1", stored.ChannelDefaults(model="m1"))
    await redis.hset(keys.channel_defaults, "slack:C9", "{not json")
    assert (await stored.load(redis, keys, "slack", "C1")) == stored.ChannelDefaults(model="m1")
    assert await stored.load(redis, keys, "slack", "C9") is None
    assert list(await stored.all_entries(redis, keys)) == ["slack:C1"]

    held = stored.Cache(ttl_s=3600)
    fresh = stored.Cache(ttl_s=0)
    assert (await held.get(redis, keys, "slack", "C1")).model == "m1"  # type: ignore[union-attr]
    await stored.save(redis, keys, "slack", "C1", stored.ChannelDefaults(model="m2"))
    assert (await held.get(redis, keys, "slack", "C1")).model == "m1"  # type: ignore[union-attr]
    assert (await fresh.get(redis, keys, "slack", "C1")).model == "m2"  # type: ignore[union-attr]
    assert await stored.delete(redis, keys, "slack", "C1")
    assert not await stored.delete(redis, keys, "slack", "C1")
    assert await fresh.get(redis, keys, "slack", "C1") is None
