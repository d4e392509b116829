"""Shard readers and per-session ordered workers.

Each held shard has one reader task: on taking the shard it claims every entry still pending in
the group (the previous holder's unfinished work) and then blocks on XREADGROUP over the shard's
inbound, job-callback and run-event streams. Every entry — and every timer firing or lost-run report — becomes
a `WorkItem` for its session. Items of one session run strictly in order in one worker task
(created on demand, gone when idle); different sessions run concurrently. So a session's state is
only ever changed by one coroutine at a time, and a slow history or download RPC in one thread
never delays another thread.

Platform events and job callbacks come on streams of their own (different writers, different
Redis users); each event is taken only from its own family (stream_admission.py): one on the
wrong one is dead-lettered, never handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from redis import exceptions as redis_errors

from codex_broker.libs.bus import DeadLetter, Delivery, StreamBus, entry_data, missing_ids
from codex_broker.libs.contracts import ContractError, InboundEvent, RunEvent, decode
from codex_broker.libs.keys import GROUP_ORCHESTRATOR, Keys
from codex_broker.libs.run_fence import FenceMode
from codex_broker.orchestrator import metrics
from codex_broker.orchestrator.stream_admission import Family, admit

log = logging.getLogger(__name__)

ItemKind = Literal["inbound", "run_event", "tick", "run_lost"]
REDIS_ERRORS = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)


@dataclass
class WorkItem:
    kind: ItemKind
    shard: int
    session_key: str
    delivery: Delivery | None = None
    inbound: InboundEvent | None = None
    run_event: RunEvent | None = None
    member: str = ""  # tick: the timer member
    tick_kind: str = ""
    run_id: str = ""  # run_lost
    reason: str = ""
    fence: FenceMode = "gone"  # run_lost: how the run is fenced (libs/run_fence.py)


Handler = Callable[[WorkItem], Awaitable[None]]


@dataclass
class AckBatcher:
    """Group commit for XACK: the acks of every item finished while one XACK round trip is in
    flight go out together in the next one, so a burst costs a round trip per batch instead of
    one per item. An item counts as done only once its ack landed (a crash before that
    redelivers it, as with one XACK per item)."""

    redis: Any
    group: str
    _pending: dict[str, list[str]] = field(default_factory=dict)
    _next: asyncio.Future[None] | None = None
    _flusher: asyncio.Task[None] | None = None

    @property
    def unsent(self) -> int:
        """Acks queued for the next batch (not yet handed to Redis)."""
        return sum(len(ids) for ids in self._pending.values())

    def ack(self, stream: str, entry_id: str) -> asyncio.Future[None]:
        """Queue the ack; the future resolves when the batch holding it has been acked."""
        self._pending.setdefault(stream, []).append(entry_id)
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        if self._flusher is None:
            # started on the next loop turn: items finishing in this turn join the same batch
            self._flusher = asyncio.create_task(self._flush())
        return self._next

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)
            while self._next is not None:
                batch, done = self._pending, self._next
                self._pending, self._next = {}, None
                try:
                    pipe = self.redis.pipeline(transaction=False)
                    for stream, ids in batch.items():
                        pipe.xack(stream, self.group, *ids)
                    await pipe.execute()
                except asyncio.CancelledError:
                    done.cancel()
                    raise
                except Exception as exc:  # every item of the batch sees the error and retries
                    done.set_exception(exc)
                    done.exception()  # retrieved: an item cancelled meanwhile must not warn
                else:
                    done.set_result(None)
        finally:
            self._flusher = None
            if self._next is not None:  # cancelled with acks waiting: they fail and are retried
                self._next.cancel()
                self._next, self._pending = None, {}

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)


@dataclass
class SessionDispatcher:
    bus: StreamBus
    handler: Handler
    stop: asyncio.Event
    max_attempts: int = 5
    on_item_done: Callable[[WorkItem], Awaitable[None]] | None = None
    _queues: dict[str, deque[WorkItem]] = field(default_factory=dict)
    _shard_load: dict[int, int] = field(default_factory=dict)
    _idle: asyncio.Condition = field(default_factory=asyncio.Condition)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    max_concurrent: int = 96
    _slots: asyncio.Semaphore | None = None
    in_flight_entries: set[str] = field(default_factory=set)
    _acks: AckBatcher | None = None

    def submit(self, item: WorkItem) -> None:
        self._shard_load[item.shard] = self._shard_load.get(item.shard, 0) + 1
        if item.delivery is not None:
            self.in_flight_entries.add(item.delivery.entry_id)
        queue = self._queues.get(item.session_key)
        if queue is not None:
            queue.append(item)
            return
        self._queues[item.session_key] = deque([item])
        task = asyncio.create_task(self._worker(item.session_key), name=f"session-{item.shard}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def load(self, shard: int) -> int:
        return self._shard_load.get(shard, 0)

    @property
    def sessions_busy(self) -> int:
        return len(self._queues)

    async def wait_below(self, shard: int, limit: int) -> None:
        async with self._idle:
            await self._idle.wait_for(lambda: self.load(shard) < limit)

    async def wait_shard_idle(self, shard: int) -> None:
        async with self._idle:
            await self._idle.wait_for(lambda: self.load(shard) == 0)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._acks is not None:
            await self._acks.close()

    async def _worker(self, session_key: str) -> None:
        queue = self._queues[session_key]
        try:
            while queue:
                item = queue[0]
                if self._slots is None:
                    self._slots = asyncio.Semaphore(self.max_concurrent)
                acked: asyncio.Future[None] | None = None
                try:
                    async with self._slots:  # bounds Redis connections and memory in a burst
                        acked = await self._run(item)
                finally:
                    queue.popleft()
                    if acked is None:
                        await self._finished(item)
                    else:  # the session's next item need not wait for this one's XACK
                        acked.add_done_callback(functools.partial(self._after_ack, item))
        finally:
            self._queues.pop(session_key, None)

    def _after_ack(self, item: WorkItem, done: asyncio.Future[None]) -> None:
        """The item counts as finished (shard load, in-flight set) only once its ack landed.

        An ack that failed leaves the entry pending: it is reclaimed and handled again, which
        the handlers' idempotency makes a no-op."""
        if not done.cancelled() and done.exception() is not None:  # (cancelled: shutting down)
            log.warning("xack failed; the entry will be redelivered", extra={"session_key": item.session_key})
        task = asyncio.ensure_future(self._finished(item))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finished(self, item: WorkItem) -> None:
        if item.delivery is not None:
            self.in_flight_entries.discard(item.delivery.entry_id)
        if self.on_item_done is not None:
            with contextlib.suppress(Exception):
                await self.on_item_done(item)
        async with self._idle:
            self._shard_load[item.shard] = self._shard_load.get(item.shard, 1) - 1
            self._idle.notify_all()

    async def _run(self, item: WorkItem) -> asyncio.Future[None] | None:
        """Handle with in-place retries, so a later item of the session never overtakes this one.
        Returns the pending ack of a handled entry (None: nothing to wait for)."""
        attempt = 0
        backoff = 0.1
        while True:
            try:
                await self.handler(item)
                metrics.ITEMS.labels(kind=item.kind, result="ok").inc()
                return self._ack(item)
            except (DeadLetter, ContractError) as exc:
                await self._dead_letter(item, f"{type(exc).__name__}: {exc}")
                return None
            except REDIS_ERRORS as exc:
                log.warning("redis error while handling; retrying: %r", exc, extra={"error": str(exc)})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                metrics.ITEMS.labels(kind=item.kind, result="error").inc()
                log.exception(
                    "handler failed",
                    extra={"session_key": item.session_key, "kind": item.kind, "attempt": attempt},
                )
                if attempt >= self.max_attempts:
                    await self._dead_letter(
                        item, f"gave up after {attempt} attempts: {type(exc).__name__}: {exc}"
                    )
                    return None
            if self.stop.is_set():
                return None  # left pending: the next holder of the shard handles it
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, 5.0)

    def _ack(self, item: WorkItem) -> asyncio.Future[None] | None:
        if item.delivery is None:
            return None
        if self._acks is None:
            self._acks = AckBatcher(self.bus.redis, GROUP_ORCHESTRATOR)
        return self._acks.ack(item.delivery.stream, item.delivery.entry_id)

    async def _dead_letter(self, item: WorkItem, reason: str) -> None:
        metrics.ITEMS.labels(kind=item.kind, result="dead_letter").inc()
        if item.delivery is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                await self.bus.dead_letter(item.delivery, GROUP_ORCHESTRATOR, reason)
        else:
            log.error("internal work item dropped", extra={"session_key": item.session_key, "reason": reason})


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class ShardReader:
    """Feeds one shard's three streams into the dispatcher, each in stream order."""

    bus: StreamBus
    keys: Keys
    shard: int
    consumer: str
    dispatcher: SessionDispatcher
    inflight_limit: int = 500
    block_ms: int = 1000
    count: int = 100
    claim_idle_ms: int = 30_000
    # Keys.job_callback_streams_since, read on taking the shard (stream_admission.py)
    job_streams_since_ms: int = field(default=0, init=False)

    @property
    def streams(self) -> list[str]:
        return [
            self.keys.inbound_stream(self.shard),
            self.keys.job_callback_stream(self.shard),
            self.keys.run_events_stream(self.shard),
        ]

    def _family(self, stream: str) -> Family | None:
        """The InboundEvent family of one of this shard's streams (None: the run events)."""
        if stream == self.keys.inbound_stream(self.shard):
            return "inbound"
        if stream == self.keys.job_callback_stream(self.shard):
            return "job_callbacks"
        return None

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.2
        taken_over = False
        last_reclaim = asyncio.get_running_loop().time()
        while not stop.is_set():
            try:
                if not taken_over:
                    self.job_streams_since_ms = await self._job_streams_since()
                    for stream in self.streams:
                        await self.bus.ensure_group(stream, GROUP_ORCHESTRATOR)
                        await self._claim(stream, min_idle_ms=0)
                    taken_over = True
                now = asyncio.get_running_loop().time()
                if now - last_reclaim > self.claim_idle_ms / 1000:
                    last_reclaim = now
                    for stream in self.streams:
                        await self._claim(stream, min_idle_ms=self.claim_idle_ms)
                await self.dispatcher.wait_below(self.shard, self.inflight_limit)
                await self._read()
                backoff = 0.2
            except REDIS_ERRORS as exc:
                log.warning("shard reader: redis unavailable", extra={"shard": self.shard, "error": str(exc)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, 10.0)
            except redis_errors.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                taken_over = False

    async def _job_streams_since(self) -> int:
        """When job callbacks got their own streams: the first reader sets it (Redis's clock,
        the clock of entry ids), every later one reads the same value."""
        seconds, micros = await self.bus.redis.time()
        pipe = self.bus.redis.pipeline(transaction=False)
        pipe.set(self.keys.job_callback_streams_since, seconds * 1000 + micros // 1000, nx=True)
        pipe.get(self.keys.job_callback_streams_since)
        _, since = await pipe.execute()
        return int(since)

    async def _read(self) -> None:
        response: Any = await self.bus.redis.xreadgroup(
            GROUP_ORCHESTRATOR,
            self.consumer,
            dict.fromkeys(self.streams, ">"),
            count=self.count,
            block=self.block_ms,
        )
        for stream, entries in response or []:
            for entry_id, fields in entries:
                await self._submit(_text(stream), _text(entry_id), fields)

    async def _claim(self, stream: str, *, min_idle_ms: int) -> None:
        """Take over pending entries (all of them on shard takeover), oldest first."""
        cursor = "0-0"
        while True:
            result: Any = await self.bus.redis.xautoclaim(
                stream,
                GROUP_ORCHESTRATOR,
                self.consumer,
                min_idle_time=min_idle_ms,
                start_id=cursor,
                count=self.count,
            )
            cursor = _text(result[0])
            entries = result[1] or []
            deleted = missing_ids(result)
            if deleted:  # gone while pending: reported (log, metric, dead letter), never silently
                await self.bus.report_missing(stream, GROUP_ORCHESTRATOR, deleted)
            for entry_id, fields in entries:
                if fields and _text(entry_id) not in self.dispatcher.in_flight_entries:
                    metrics.RECLAIMED.inc()
                    await self._submit(stream, _text(entry_id), fields)
            if cursor in ("0-0", "0"):
                return

    async def _submit(self, stream: str, entry_id: str, fields: Any) -> None:
        data, undecodable = entry_data(fields)
        delivery = Delivery(stream=stream, entry_id=entry_id, data=data)
        try:
            if undecodable is not None:  # bytes that are not UTF-8: never kill the reader
                raise ContractError(undecodable)
            family = self._family(stream)
            if family is not None:
                event = decode(InboundEvent, delivery.data)
                admission = admit(family, event, entry_id, self.job_streams_since_ms)
                if not admission.accepted:
                    metrics.WRONG_STREAM.labels(kind=event.kind).inc()
                    await self.bus.dead_letter(delivery, GROUP_ORCHESTRATOR, f"refused: {admission.reason}")
                    return
                if admission.legacy:
                    metrics.LEGACY_JOB_CALLBACKS.inc()
                    log.info(
                        "job callback of the previous release on an inbound stream", extra={"stream": stream}
                    )
                item = WorkItem("inbound", self.shard, event.session_key, delivery=delivery, inbound=event)
            else:
                run_event = decode(RunEvent, delivery.data)
                item = WorkItem(
                    "run_event", self.shard, run_event.session_key, delivery=delivery, run_event=run_event
                )
        except ContractError as exc:
            await self.bus.dead_letter(delivery, GROUP_ORCHESTRATOR, f"ContractError: {exc}")
            return
        self.dispatcher.submit(item)
