"""Publishing RunEvents without putting Redis round trips on the turn's path.

Turns hand events to one publisher and move on; the publisher sends everything queued so far in
one pipeline (XADDs in order, plus the run-hash updates that go with them). Order per run is the
order of `publish` calls. A Redis outage holds events in memory and retries with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from dataclasses import dataclass, field

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from codex_broker.libs import metrics as lib_metrics
from codex_broker.libs.bus import DATA_FIELD, xadd_trim
from codex_broker.libs.contracts import RunEvent, encode

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    stream: str
    data: str
    hash_key: str | None = None
    hash_fields: dict[str, str] = field(default_factory=dict)
    done: asyncio.Future[None] | None = None


class EventPublisher:
    def __init__(self, redis: Redis, *, maxlen: int) -> None:
        self.redis = redis
        self.maxlen = maxlen
        self._queue: deque[_Entry] = deque()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._closing = False

    def publish(
        self,
        stream: str,
        event: RunEvent,
        *,
        hash_key: str | None = None,
        hash_fields: dict[str, str] | None = None,
        wait: bool = False,
    ) -> asyncio.Future[None] | None:
        """Queue `event`; with `wait`, returns a future resolved once it is in Redis."""
        done = asyncio.get_running_loop().create_future() if wait else None
        self._queue.append(_Entry(stream, encode(event), hash_key, hash_fields or {}, done))
        self._drained.clear()
        self._wake.set()
        return done

    async def run(self) -> None:
        """Until `close()`: send whatever is queued, one pipeline per batch."""
        backoff = 0.1
        while True:
            if not self._queue:
                self._drained.set()
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = list(self._queue)
            try:
                await self._send(batch)
            except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
                lib_metrics.REDIS_ERRORS.labels(operation="publish").inc()
                log.warning(
                    "cannot publish run events; retrying", extra={"error": str(exc), "queued": len(batch)}
                )
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            for _ in batch:
                entry = self._queue.popleft()
                if entry.done is not None and not entry.done.done():
                    entry.done.set_result(None)

    async def _send(self, batch: list[_Entry]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for entry in batch:
            # run-events streams are trimmed only below the orchestrator's ack horizon (libs/bus.py)
            pipe.xadd(entry.stream, {DATA_FIELD: entry.data}, **xadd_trim(entry.stream, self.maxlen))
            if entry.hash_key and entry.hash_fields:
                pipe.hset(entry.hash_key, mapping=entry.hash_fields)  # type: ignore[arg-type]
        await pipe.execute()
        for entry in batch:
            lib_metrics.STREAM_PUBLISHED.labels(stream=lib_metrics.stream_label(entry.stream)).inc()

    async def close(self, timeout_s: float = 10.0) -> None:
        """Flush what is queued (bounded), then stop `run`."""
        self._closing = True
        self._wake.set()
        if self._queue:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), timeout_s)
        if self._queue:
            log.error("dropping unpublished run events at shutdown", extra={"count": len(self._queue)})
            for entry in self._queue:
                if entry.done is not None and not entry.done.done():
                    entry.done.cancel()
            self._queue.clear()
        self._wake.set()

    @property
    def queued(self) -> int:
        return len(self._queue)


async def wait_published(done: asyncio.Future[None] | None, timeout_s: float) -> None:
    if done is None:
        return
    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(done), timeout_s)
