"""Prometheus metrics shared by every service. Labels stay bounded: never a session or user id."""

from __future__ import annotations

import re

from prometheus_client import Counter, Gauge, Histogram

_SHARD_SUFFIX = re.compile(r":\d+$")
_PREFIX = re.compile(r"^[^:]+:stream:")


def stream_label(stream: str) -> str:
    """'cb:stream:inbound:3' → 'inbound'; per-runner control streams → 'control'."""
    name = _PREFIX.sub("", _SHARD_SUFFIX.sub("", stream))
    return name.split(":", 1)[0] if name.startswith("control") else name


STREAM_PUBLISHED = Counter("cb_stream_published_total", "Entries published to a stream", ["stream"])
STREAM_CONSUMED = Counter("cb_stream_consumed_total", "Entries delivered to a handler", ["stream"])
STREAM_ACKED = Counter("cb_stream_acked_total", "Entries acked after successful handling", ["stream"])
STREAM_RECLAIMED = Counter(
    "cb_stream_reclaimed_total", "Entries reclaimed from an idle or dead consumer", ["stream"]
)
STREAM_DEAD_LETTERED = Counter(
    "cb_stream_dead_lettered_total", "Entries moved to the dead-letter stream", ["stream"]
)
STREAM_ENTRIES_MISSING = Counter(
    "cb_stream_entries_missing_total",
    "Pending entries found gone from their stream at reclaim (trimmed or deleted unhandled): each "
    "is reported and dead-lettered by id; any increase is an alert",
    ["stream"],
)
STREAM_UNHANDLED = Gauge(
    "cb_stream_unhandled_entries",
    "Entries kept in a stream trimmed only below its groups' ack horizon (not yet handled by every "
    "group); above STREAM_MAXLEN a consumer is down or behind: alert",
    ["stream"],
)
STREAM_HANDLER_ERRORS = Counter(
    "cb_stream_handler_errors_total", "Handler failures left pending for redelivery", ["stream"]
)
STREAM_PROCESSING_SECONDS = Histogram(
    "cb_stream_processing_seconds",
    "Time to handle one entry",
    ["stream"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
REDIS_ERRORS = Counter("cb_redis_errors_total", "Redis connection or command errors", ["operation"])
HEARTBEAT_TIMESTAMP = Gauge("cb_heartbeat_timestamp_seconds", "Last heartbeat written by this process")
SERVICE_INFO = Gauge("cb_service_up", "1 while the service runs", ["service"])
