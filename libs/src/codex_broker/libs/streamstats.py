"""Backlog gauges for every stream: length, per-group pending and lag, dead letters.

Stream depth is a property of Redis, not of a process, so one process (the http-api) samples it
periodically and exports it; with several replicas, dashboards take max() over instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import Gauge
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from codex_broker.libs import metrics
from codex_broker.libs.contracts import PLATFORMS
from codex_broker.libs.keys import Keys

log = logging.getLogger(__name__)

STREAM_LENGTH = Gauge("cb_stream_length", "Entries currently in the stream (summed over shards)", ["stream"])
STREAM_PENDING = Gauge(
    "cb_stream_pending", "Entries delivered to a group but not yet acked", ["stream", "group"]
)
STREAM_LAG = Gauge("cb_stream_lag", "Entries not yet delivered to the group", ["stream", "group"])
DEAD_LETTER_ENTRIES = Gauge("cb_dead_letter_entries", "Entries in the dead-letter stream")
ACTIVE_RUNS = Gauge("cb_active_runs", "Runs the orchestrator holds as active (all replicas)")
OLDEST_ACTIVE_RUN_SECONDS = Gauge(
    "cb_oldest_active_run_seconds", "Age of the oldest active run (0 when none): a stuck turn grows it"
)


@dataclass
class StreamStat:
    stream: str
    length: int
    groups: list[dict[str, Any]]


def known_streams(keys: Keys) -> list[str]:
    return [
        *keys.all_shard_streams(),
        keys.runs_stream,
        *(keys.outbound_stream(p) for p in PLATFORMS),
        keys.dead_letter_stream,
    ]


async def read_stream_stats(redis: Redis, streams: list[str]) -> list[StreamStat]:
    pipe = redis.pipeline(transaction=False)
    for stream in streams:
        pipe.xlen(stream)
    lengths = await pipe.execute()
    stats = []
    for stream, length in zip(streams, lengths, strict=True):
        groups: list[dict[str, Any]] = []
        if length:
            with contextlib.suppress(redis_errors.ResponseError):
                groups = [_decode_group(g) for g in await redis.xinfo_groups(stream)]
        stats.append(StreamStat(stream=stream, length=int(length), groups=groups))
    return stats


def _decode_group(raw: dict[Any, Any]) -> dict[str, Any]:
    out = {}
    for key, value in raw.items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        out[name] = value.decode() if isinstance(value, bytes) else value
    return out


def export(stats: list[StreamStat], keys: Keys) -> None:
    lengths: dict[str, int] = {}
    pending: dict[tuple[str, str], int] = {}
    lag: dict[tuple[str, str], int] = {}
    for stat in stats:
        label = metrics.stream_label(stat.stream)
        lengths[label] = lengths.get(label, 0) + stat.length
        for info in stat.groups:
            key = (label, str(info.get("name", "")))
            pending[key] = pending.get(key, 0) + int(info.get("pending") or 0)
            lag[key] = lag.get(key, 0) + int(info.get("lag") or 0)
        if stat.stream == keys.dead_letter_stream:
            DEAD_LETTER_ENTRIES.set(stat.length)
    for label, value in lengths.items():
        STREAM_LENGTH.labels(stream=label).set(value)
    for (label, group), value in pending.items():
        STREAM_PENDING.labels(stream=label, group=group).set(value)
    for (label, group), value in lag.items():
        STREAM_LAG.labels(stream=label, group=group).set(value)


async def export_active_runs(redis: Redis, keys: Keys) -> None:
    pipe = redis.pipeline(transaction=False)
    pipe.zcard(keys.active_runs)
    pipe.zrange(keys.active_runs, 0, 0, withscores=True)
    count, oldest = await pipe.execute()
    ACTIVE_RUNS.set(int(count))
    started_ms = float(oldest[0][1]) if oldest else None
    OLDEST_ACTIVE_RUN_SECONDS.set(max(0.0, time.time() - started_ms / 1000) if started_ms else 0.0)


async def stream_stats_task(redis: Redis, keys: Keys, stop: asyncio.Event, interval_s: float = 15.0) -> None:
    streams = known_streams(keys)
    while not stop.is_set():
        try:
            export(await read_stream_stats(redis, streams), keys)
            await export_active_runs(redis, keys)
        except (redis_errors.RedisError, OSError) as exc:
            metrics.REDIS_ERRORS.labels(operation="stream_stats").inc()
            log.warning("stream stats failed", extra={"error": str(exc)})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
