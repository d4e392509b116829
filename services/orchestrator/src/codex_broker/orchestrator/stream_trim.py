"""Trimming the answer and run-event streams without dropping anything unhandled.

Their producers add no MAXLEN (libs/bus.py `keeps_unhandled`); this loop trims each stream below
the ack horizon of its groups instead: the outbound streams (every replica trims them; the trim is
idempotent) and the run-event streams of the shards this replica holds. A stream that grows past
STREAM_MAXLEN anyway has a consumer down or behind: the gauge `cb_stream_unhandled_entries` and a
warning say so, and nothing is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from codex_broker.libs.bus import trim_handled
from codex_broker.libs.contracts import PLATFORMS
from codex_broker.libs.keys import Keys

log = logging.getLogger(__name__)

TRIM_INTERVAL_S = 10.0


@dataclass
class StreamTrimmer:
    redis: Redis
    keys: Keys
    held: Callable[[], set[int]]
    alert_above: int
    interval_s: float = TRIM_INTERVAL_S

    def streams(self) -> list[str]:
        outbound = [self.keys.outbound_stream(p) for p in PLATFORMS]
        return outbound + [self.keys.run_events_stream(s) for s in sorted(self.held())]

    async def run_once(self) -> None:
        for stream in self.streams():
            await trim_handled(self.redis, stream, alert_above=self.alert_above)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception as exc:  # Redis away: the next pass trims what this one did not
                log.warning("stream trim pass failed", extra={"error": str(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
