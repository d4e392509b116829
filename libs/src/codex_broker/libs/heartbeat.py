"""Per-instance heartbeat keys with a TTL: what `codex-broker status`, /readyz and probes read."""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs import metrics
from codex_broker.libs.keys import Keys


@functools.cache
def broker_version() -> str:
    """The release this process runs (the installed codex-broker-libs, bumped with every tag):
    reported in every heartbeat so that `status` and the admin page see a half-done rollout."""
    try:
        return importlib.metadata.version("codex-broker-libs")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def versions(heartbeats: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """Version → the `service/instance` heartbeats reporting it (a beat without one: "unknown",
    an older release)."""
    found: dict[str, list[str]] = {}
    for beat in heartbeats:
        version = str(beat.get("version") or "unknown")
        found.setdefault(version, []).append(f"{beat.get('service')}/{beat.get('instance')}")
    return dict(sorted(found.items()))


def mixed_versions(heartbeats: Iterable[dict[str, Any]]) -> dict[str, list[str]] | None:
    """The versions in play when more than one (a rollout half done, or a stuck old pod)."""
    found = versions(heartbeats)
    return found if len(found) > 1 else None


@dataclass
class Heartbeat:
    redis: Redis
    keys: Keys
    service: str
    instance: str
    ttl_s: int
    started_at: float = 0.0
    details: Callable[[], dict[str, Any]] | None = None

    def payload(self, redis_at: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "service": self.service,
            "instance": self.instance,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": self.started_at,
            "at": time.time(),
            "version": broker_version(),
        }
        if redis_at is not None:
            # Redis's clock at the beat: liveness is judged against Redis TIME, one clock for
            # every host (`at` is this host's, for people reading `status`)
            body["redis_at"] = redis_at
        if self.details is not None:
            body.update(self.details())
        return body

    async def beat(self) -> None:
        redis_at = redis_seconds(await self.redis.time())
        await self.redis.set(
            self.keys.heartbeat(self.service, self.instance),
            json.dumps(self.payload(redis_at)),
            ex=self.ttl_s,
        )
        metrics.HEARTBEAT_TIMESTAMP.set(time.time())

    async def clear(self) -> None:
        await self.redis.delete(self.keys.heartbeat(self.service, self.instance))


def redis_seconds(reply: Any) -> float:
    """Redis TIME's (seconds, microseconds) as epoch seconds."""
    seconds, micros = reply
    return int(seconds) + int(micros) / 1_000_000


def seen_at(beat: dict[str, Any]) -> float:
    """When a heartbeat was written, on Redis's clock (an older release's beat: its host's)."""
    return float(beat.get("redis_at") or beat.get("at") or 0)


async def read_heartbeats(redis: Redis, keys: Keys) -> list[dict[str, Any]]:
    """All live heartbeats (expired ones are gone by TTL), sorted by service then instance."""
    found: list[dict[str, Any]] = []
    async for key in redis.scan_iter(match=keys.heartbeat_pattern(), count=500):
        raw = await redis.get(key)
        if raw is None:
            continue
        try:
            found.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return sorted(found, key=lambda hb: (str(hb.get("service")), str(hb.get("instance"))))
