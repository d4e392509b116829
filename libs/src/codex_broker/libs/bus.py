"""Async Redis Streams: publish, consumer-group consume, reclaim, dead-letter.

Delivery is at-least-once. A handler that returns normally gets its entry acked; a handler that
raises leaves the entry pending, and it comes back (to this or another consumer) through
XAUTOCLAIM once it has been idle for `claim_idle_ms`. After `max_deliveries` deliveries, or at
once for data that cannot be decoded or a handler raising `DeadLetter`, the entry moves to the
dead-letter stream with its reason and is acked at the source.

Nothing is trimmed unread from the streams whose entries are answers and turn events (outbound
and run-events: `keeps_unhandled`): they are published without MAXLEN and trimmed only below the
ack horizon of every group (`trim_handled`, XTRIM MINID), so a long consumer outage grows the
stream — watched by `cb_stream_unhandled_entries` — instead of dropping what nobody handled. A
pending entry that is gone anyway (deleted by hand, an older release's MAXLEN) is reported when
a reclaim finds it (`StreamBus.report_missing`: log, `cb_stream_entries_missing_total`, and a
dead-letter record naming its id), never acked silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from codex_broker.libs import metrics
from codex_broker.libs.contracts import ContractError, encode

log = logging.getLogger(__name__)

T = TypeVar("T")

DATA_FIELD = "data"
DEFAULT_MAXLEN = 100_000
DEAD_LETTER_MAXLEN = 50_000
# streams trimmed only below their groups' ack horizon (see the module docstring)
_UNHANDLED_KEPT = re.compile(r":stream:(outbound:[^:]+|run-events:\d+)$")
MISSING_REASON = "entry gone from the stream before it was handled (trimmed or deleted)"


def keeps_unhandled(stream: str) -> bool:
    """Whether `stream` is trimmed only below its groups' ack horizon, never by MAXLEN."""
    return _UNHANDLED_KEPT.search(stream) is not None


def xadd_trim(stream: str, maxlen: int) -> dict[str, Any]:
    """XADD's trim arguments for `stream`: none for a stream that keeps unhandled entries, else
    an approximate MAXLEN. For producers that XADD in their own pipeline."""
    return {} if keeps_unhandled(stream) else {"maxlen": maxlen, "approximate": True}


def ack_horizon(groups: Sequence[tuple[str, str | None]]) -> str | None:
    """The id below which every group has handled every entry (pure), from each group's
    (last-delivered id, lowest pending id or None). None: trim nothing — no group yet (nobody
    consumes the stream: all of it is unread) or a group that has read nothing."""
    if not groups:
        return None
    bounds = [pending or delivered for delivered, pending in groups]
    if any(_id_key(b) == (0, 0) for b in bounds):
        return None
    return min(bounds, key=_id_key)


def missing_ids(xautoclaim_reply: Any) -> list[Any]:
    """The ids an XAUTOCLAIM reply says are gone from the stream: Redis >= 7 lists them third
    (and has already dropped them from the pending list), Redis 6.2 returned them without fields."""
    if not xautoclaim_reply:
        return []
    gone = [eid for eid, fields in xautoclaim_reply[1] or [] if not fields]
    if len(xautoclaim_reply) > 2:
        gone.extend(xautoclaim_reply[2] or [])
    return gone


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def trim_handled(redis: Redis, stream: str, *, alert_above: int, approximate: bool = True) -> int:
    """Trim `stream` below its groups' ack horizon (XTRIM MINID, approximate: whole nodes only,
    never an id at or above the horizon); returns the entries left. Above `alert_above` a
    consumer is down or behind: logged, and the gauge says so."""
    try:
        infos: Any = await redis.xinfo_groups(stream)
    except redis_errors.ResponseError:  # no such stream
        return 0
    groups: list[tuple[str, str | None]] = []
    for info in infos:
        name = _text(info["name"])
        lowest = None
        if int(info.get("pending") or 0):
            summary: Any = await redis.xpending(stream, name)
            lowest = _text(summary["min"]) if summary.get("min") else None
        groups.append((_text(info["last-delivered-id"]), lowest))
    horizon = ack_horizon(groups)
    if horizon is not None:
        await redis.xtrim(stream, minid=horizon, approximate=approximate)
    left = int(await redis.xlen(stream))
    metrics.STREAM_UNHANDLED.labels(stream=metrics.stream_label(stream)).set(left)
    if left > alert_above:
        log.warning(
            "stream holds more unhandled entries than STREAM_MAXLEN; none is dropped, is a consumer down?",
            extra={"stream": stream, "entries": left, "limit": alert_above},
        )
    return left


class DeadLetter(Exception):
    """Raise from a handler: this entry can never succeed; dead-letter it with this reason."""


@dataclass(frozen=True)
class Delivery:
    stream: str
    entry_id: str
    data: str
    deliveries: int = 1
    # why `data` cannot be decoded at all (bytes that are not UTF-8); dead-lettered at once
    undecodable: str | None = None


Handler = Callable[[Delivery], Awaitable[None]]
StreamsProvider = Callable[[], Sequence[str]]


class StreamBus:
    """Publishing side plus the group/dead-letter primitives that consumers share."""

    def __init__(self, redis: Redis, *, dead_letter_stream: str, maxlen: int = DEFAULT_MAXLEN) -> None:
        self.redis = redis
        self.dead_letter_stream = dead_letter_stream
        self.maxlen = maxlen

    async def publish(self, stream: str, message: BaseModel | str, *, maxlen: int | None = None) -> str:
        data = message if isinstance(message, str) else encode(message)
        entry_id = await self.redis.xadd(
            stream, {DATA_FIELD: data}, **xadd_trim(stream, maxlen or self.maxlen)
        )
        metrics.STREAM_PUBLISHED.labels(stream=metrics.stream_label(stream)).inc()
        return _text(entry_id)

    async def ensure_group(self, stream: str, group: str, *, start_id: str = "0") -> None:
        try:
            await self.redis.xgroup_create(stream, group, id=start_id, mkstream=True)
        except redis_errors.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def dead_letter(self, delivery: Delivery, group: str, reason: str) -> None:
        fields = {
            "source_stream": delivery.stream,
            "source_id": delivery.entry_id,
            "group": group,
            "reason": reason[:2000],
            "deliveries": str(delivery.deliveries),
            DATA_FIELD: delivery.data,
            "at_ms": str(int(time.time() * 1000)),
        }
        pipe = self.redis.pipeline(transaction=False)
        pipe.xadd(self.dead_letter_stream, fields, maxlen=DEAD_LETTER_MAXLEN, approximate=True)  # type: ignore[arg-type]
        pipe.xack(delivery.stream, group, delivery.entry_id)
        await pipe.execute()
        metrics.STREAM_DEAD_LETTERED.labels(stream=metrics.stream_label(delivery.stream)).inc()
        log.warning(
            "dead-lettered entry",
            extra={"stream": delivery.stream, "entry_id": delivery.entry_id, "reason": reason[:300]},
        )

    async def report_missing(self, stream: str, group: str, entry_ids: Sequence[Any]) -> None:
        """Pending entries a reclaim found gone from `stream`: each gets a dead-letter record
        naming its id (its data is lost: that is the point of the record), an error log and the
        metric, and only then its ack, so the loss is never silent."""
        ids = [_text(entry_id) for entry_id in entry_ids]
        if not ids:
            return
        pipe = self.redis.pipeline(transaction=False)
        for entry_id in ids:
            fields = {
                "source_stream": stream,
                "source_id": entry_id,
                "group": group,
                "reason": MISSING_REASON,
                "deliveries": "0",
                DATA_FIELD: "",
                "at_ms": str(int(time.time() * 1000)),
            }
            pipe.xadd(self.dead_letter_stream, fields, maxlen=DEAD_LETTER_MAXLEN, approximate=True)  # type: ignore[arg-type]
        pipe.xack(stream, group, *ids)
        await pipe.execute()
        metrics.STREAM_ENTRIES_MISSING.labels(stream=metrics.stream_label(stream)).inc(len(ids))
        log.error(
            "pending entries gone from the stream before they were handled",
            extra={"stream": stream, "group": group, "entry_ids": ids[:20], "count": len(ids)},
        )


@dataclass
class ConsumerConfig:
    group: str
    consumer: str
    count: int = 16
    block_ms: int = 2000
    claim_idle_ms: int = 30_000
    claim_interval_s: float = 5.0
    max_deliveries: int = 5
    # entries with the same partition key are handled in order; different keys concurrently
    concurrency: int = 1
    # entries read but not yet handled, when concurrent (default concurrency * 4); reading waits for room
    max_in_flight: int | None = None
    # on stop, how long entries in flight may take before they are cancelled (they stay pending)
    drain_timeout_s: float = 10.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0


_REDIS_DOWN = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)
EntryKey = tuple[str, str]  # (stream, entry id)


@dataclass
class Consumer:
    """A consumer-group loop over one or more streams.

    `streams` may be a callable so that the set can change while running (shard leases).

    With `concurrency > 1` and a `partition_key`, the reader does not wait for what it read: each
    partition gets an in-order queue worked by its own task (started on demand, ended when the
    queue is empty), at most `concurrency` handlers run at once, and reading pauses while
    `max_in_flight` entries are unfinished. So one slow entry (a Retry-After, a big upload) holds
    up only its own partition. Otherwise entries are handled one after another as read.
    """

    bus: StreamBus
    streams: Sequence[str] | StreamsProvider
    config: ConsumerConfig
    handler: Handler
    partition_key: Callable[[Delivery], str] | None = None
    _known_groups: set[str] = field(default_factory=set)
    _last_claim: float = 0.0
    # entries handed to partition queues and not finished yet → their delivery count
    _in_flight: dict[EntryKey, int] = field(default_factory=dict)
    _queues: dict[str, deque[Delivery]] = field(default_factory=dict)
    _workers: set[asyncio.Task[None]] = field(default_factory=set)
    _room: asyncio.Event = field(default_factory=asyncio.Event)
    _slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(max(1, self.config.concurrency))

    @property
    def concurrent(self) -> bool:
        return self.config.concurrency > 1 and self.partition_key is not None

    @property
    def max_in_flight(self) -> int:
        return max(1, self.config.max_in_flight or self.config.concurrency * 4)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def current_streams(self) -> list[str]:
        streams = self.streams() if callable(self.streams) else self.streams
        return list(streams)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; reconnects with backoff and jitter when Redis goes away.

        On stop, reading ends and the entries in flight get `drain_timeout_s` to finish; what is
        left then is cancelled and stays pending for a later reclaim. Cancelling `run` cancels
        them at once. Either way no handler outlives `run`.
        """
        try:
            await self._consume(stop)
            await self._wait_idle(self.config.drain_timeout_s)
        finally:
            await self._cancel_in_flight()

    async def _consume(self, stop: asyncio.Event) -> None:
        backoff = self.config.backoff_initial_s
        while not stop.is_set():
            try:
                await self.run_once(block=True, stop=stop)
                backoff = self.config.backoff_initial_s
            except _REDIS_DOWN as exc:
                metrics.REDIS_ERRORS.labels(operation="consume").inc()
                self._known_groups.clear()
                log.warning("redis unavailable, retrying", extra={"error": str(exc), "backoff_s": backoff})
                await _sleep_or_stop(stop, backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.config.backoff_max_s)

    async def run_once(self, *, block: bool = False, stop: asyncio.Event | None = None) -> int:
        """One pass: reclaim stale entries when due, then read new ones.

        Returns the entries taken on: handled already, or (when concurrent) queued to their
        partition; waits for room first when `max_in_flight` entries are unfinished.
        """
        streams = self.current_streams()
        if not streams:
            if block:
                await _sleep_or_stop(stop, self.config.block_ms / 1000)
            return 0
        await self._ensure_groups(streams)
        if not await self._wait_for_room(stop):
            return 0
        taken = 0
        if not block or time.monotonic() - self._last_claim >= self.config.claim_interval_s:
            self._last_claim = time.monotonic()
            for stream in streams:
                taken += await self._take(await self._reclaim(stream, self._room_left()))
        if not await self._wait_for_room(stop):
            return taken
        deliveries = await self._read_new(
            streams, block=block and taken == 0, count=self._room_left(), stop=stop
        )
        taken += await self._take(deliveries)
        return taken

    async def drain(self, *, max_rounds: int = 100) -> int:
        """Burst mode for tests: handle everything available now, then return the count.

        Returns only when every entry taken on is handled, also when concurrent.
        """
        total = 0
        try:
            for _ in range(max_rounds):
                n = await self.run_once(block=False)
                total += n
                if n == 0:
                    if not self._workers:
                        break
                    await self._wait_idle(None)  # what they finish may be redelivered: read again
            await self._wait_idle(None)
        finally:
            await self._cancel_in_flight()
        return total

    async def _ensure_groups(self, streams: Sequence[str]) -> None:
        for stream in streams:
            if stream not in self._known_groups:
                await self.bus.ensure_group(stream, self.config.group)
                self._known_groups.add(stream)

    async def _read_new(
        self, streams: Sequence[str], *, block: bool, count: int, stop: asyncio.Event | None = None
    ) -> list[Delivery]:
        read = self.bus.redis.xreadgroup(
            self.config.group,
            self.config.consumer,
            dict.fromkeys(streams, ">"),
            count=count,
            block=self.config.block_ms if block else None,
        )
        try:
            # a stop ends a blocking read at once; entries Redis handed out in that instant stay
            # pending and are reclaimed (redis-py drops the connection of a cancelled command)
            response: Any = await (_unless_stopped(read, stop) if block and stop is not None else read)
        except redis_errors.ResponseError as exc:
            # the stream (and its group) was deleted under us, before or while blocking: recreate
            if "NOGROUP" in str(exc) or "UNBLOCKED" in str(exc):
                self._known_groups.clear()
                return []
            raise
        deliveries = []
        for stream, entries in response or []:
            for entry_id, fields in entries:
                deliveries.append(_delivery(_text(stream), entry_id, fields, 1))
        return deliveries

    async def _reclaim(self, stream: str, count: int) -> list[Delivery]:
        if count <= 0:  # the streams before this one filled the room
            return []
        try:
            result: Any = await self.bus.redis.xautoclaim(
                stream,
                self.config.group,
                self.config.consumer,
                min_idle_time=self.config.claim_idle_ms,
                start_id="0-0",
                count=count,
            )
        except redis_errors.ResponseError as exc:
            if "NOGROUP" in str(exc):  # stream deleted since the group check: recreate next pass
                self._known_groups.discard(stream)
                return []
            raise
        entries = result[1] if result else []
        # entries still being handled here (slower than claim_idle_ms) are not delivered again
        ours = {
            _text(eid): self._in_flight[(stream, _text(eid))]
            for eid, _ in entries
            if (stream, _text(eid)) in self._in_flight
        }
        claimed = [(eid, fields) for eid, fields in entries if fields and _text(eid) not in ours]
        deleted = missing_ids(result)
        if deleted:  # gone while pending (Redis >= 7 hands back their ids): reported, not dropped
            await self.bus.report_missing(stream, self.config.group, deleted)
        if ours:
            await self._restore_delivery_counts(stream, ours)
        if not claimed:
            return []
        counts = await self._delivery_counts(stream, [_text(eid) for eid, _ in claimed])
        metrics.STREAM_RECLAIMED.labels(stream=metrics.stream_label(stream)).inc(len(claimed))
        return [_delivery(stream, eid, fields, counts.get(_text(eid), 2)) for eid, fields in claimed]

    async def _restore_delivery_counts(self, stream: str, counts: dict[str, int]) -> None:
        """XAUTOCLAIM counted a delivery of entries in flight here; put their counts back.

        XCLAIM with JUSTID does not count one and RETRYCOUNT sets the count; an entry acked
        meanwhile is no longer pending, and XCLAIM without FORCE leaves it alone.
        """
        pipe = self.bus.redis.pipeline(transaction=False)
        for entry_id, deliveries in counts.items():
            pipe.xclaim(
                stream,
                self.config.group,
                self.config.consumer,
                0,
                [entry_id],
                retrycount=deliveries,
                justid=True,
            )
        await pipe.execute()

    async def _delivery_counts(self, stream: str, entry_ids: list[str]) -> dict[str, int]:
        pending = await self.bus.redis.xpending_range(
            stream,
            self.config.group,
            min=entry_ids[0],
            max=entry_ids[-1],
            count=len(entry_ids) + 100,
            consumername=self.config.consumer,
        )
        return {_text(p["message_id"]): int(p["times_delivered"]) for p in pending}

    # ---- handing entries to the handler --------------------------------------------------------

    async def _take(self, deliveries: list[Delivery]) -> int:
        if not self.concurrent:
            for delivery in deliveries:
                await self._handle(delivery)
            return len(deliveries)
        for delivery in deliveries:
            self._submit(delivery)
        return len(deliveries)

    def _submit(self, delivery: Delivery) -> None:
        """Queue behind the earlier entries of its partition; start the partition's worker if idle."""
        self._in_flight[(delivery.stream, delivery.entry_id)] = delivery.deliveries
        key = self._partition(delivery)
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(delivery)
            return
        queue = self._queues[key] = deque([delivery])
        worker = asyncio.create_task(self._work(key, queue), name=f"consumer:{self.config.group}:{key}")
        self._workers.add(worker)
        worker.add_done_callback(self._workers.discard)

    async def _work(self, key: str, queue: deque[Delivery]) -> None:
        try:
            while queue:
                delivery = queue[0]
                try:
                    async with self._slots:
                        await self._handle(delivery)
                except _REDIS_DOWN as exc:
                    # this entry and the rest of its queue stay pending; the reclaim brings them back
                    metrics.REDIS_ERRORS.labels(operation="consume").inc()
                    log.warning("redis unavailable while handling an entry", extra={"error": str(exc)})
                    return
                except Exception:
                    log.exception(
                        "handling failed; entry stays pending",
                        extra={"stream": delivery.stream, "entry_id": delivery.entry_id},
                    )
                queue.popleft()
                self._finished(delivery)
        finally:
            # an empty queue is forgotten in the same step as its last check (no await between),
            # so an entry submitted later starts a new worker instead of joining a finished one
            for delivery in queue:
                self._finished(delivery)
            queue.clear()
            if self._queues.get(key) is queue:
                del self._queues[key]

    def _finished(self, delivery: Delivery) -> None:
        self._in_flight.pop((delivery.stream, delivery.entry_id), None)
        self._room.set()

    def _room_left(self) -> int:
        if not self.concurrent:
            return self.config.count
        return max(0, min(self.config.count, self.max_in_flight - len(self._in_flight)))

    async def _wait_for_room(self, stop: asyncio.Event | None) -> bool:
        """Until an entry can be taken on (False: `stop` was set first)."""
        while self._room_left() == 0:
            if stop is not None and stop.is_set():
                return False
            self._room.clear()
            if stop is None:
                await self._room.wait()
            else:
                await _unless_stopped(self._room.wait(), stop)
        return stop is None or not stop.is_set()

    async def _wait_idle(self, timeout_s: float | None) -> None:
        """Until every submitted entry is finished, or `timeout_s` has passed."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._workers:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                log.warning(
                    "entries still in flight after the drain timeout; cancelled, they stay pending",
                    extra={"in_flight": len(self._in_flight), "group": self.config.group},
                )
                return
            await asyncio.wait(set(self._workers), timeout=left)

    async def _cancel_in_flight(self) -> None:
        workers = set(self._workers)
        for worker in workers:
            worker.cancel()
        if workers:
            await asyncio.wait(workers)
        # a worker cancelled before its first step never ran its cleanup
        self._queues.clear()
        self._in_flight.clear()

    def _partition(self, delivery: Delivery) -> str:
        assert self.partition_key is not None
        try:
            return self.partition_key(delivery)
        except Exception:  # undecodable data: its own partition, dead-lettered by the handler
            return f"{delivery.stream}/{delivery.entry_id}"

    async def _handle(self, delivery: Delivery) -> None:
        label = metrics.stream_label(delivery.stream)
        if delivery.deliveries > self.config.max_deliveries:
            await self.bus.dead_letter(
                delivery, self.config.group, f"gave up after {delivery.deliveries - 1} deliveries"
            )
            return
        if delivery.undecodable is not None:
            await self.bus.dead_letter(delivery, self.config.group, delivery.undecodable)
            return
        metrics.STREAM_CONSUMED.labels(stream=label).inc()
        started = time.perf_counter()
        try:
            await self.handler(delivery)
        except (DeadLetter, ContractError) as exc:
            await self.bus.dead_letter(delivery, self.config.group, f"{type(exc).__name__}: {exc}")
            return
        except (redis_errors.ConnectionError, redis_errors.TimeoutError):
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            metrics.STREAM_HANDLER_ERRORS.labels(stream=label).inc()
            log.exception(
                "handler failed; entry stays pending for redelivery",
                extra={"stream": delivery.stream, "entry_id": delivery.entry_id, "error": str(exc)[:300]},
            )
            return
        finally:
            metrics.STREAM_PROCESSING_SECONDS.labels(stream=label).observe(time.perf_counter() - started)
        await self.bus.redis.xack(delivery.stream, self.config.group, delivery.entry_id)
        metrics.STREAM_ACKED.labels(stream=label).inc()


def _delivery(stream: Any, entry_id: Any, fields: Any, deliveries: int) -> Delivery:
    data, undecodable = entry_data(fields)
    return Delivery(
        stream=_text(stream),
        entry_id=_text(entry_id),
        data=data,
        deliveries=deliveries,
        undecodable=undecodable,
    )


def entry_data(fields: Any) -> tuple[str, str | None]:
    """An entry's `data` as text, and the reason it cannot be decoded (None when it can).

    Our producers only write UTF-8; other bytes (a foreign writer, corruption) must not kill the
    reading loop: they are kept with U+FFFD for the dead letter and reported as undecodable.
    """
    raw = fields.get(DATA_FIELD.encode()) or fields.get(DATA_FIELD) or b""
    if not isinstance(raw, bytes):
        return str(raw), None
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return raw.decode("utf-8", errors="replace"), f"data is not UTF-8: {exc.reason} at byte {exc.start}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _unless_stopped(awaitable: Awaitable[T], stop: asyncio.Event) -> T | None:
    """`awaitable`'s result, or None when `stop` is set first (it is cancelled then).

    A result that is ready when `stop` is set too is returned, not dropped.
    """
    work = asyncio.ensure_future(awaitable)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        work.cancel()  # no-op when done
        stopped.cancel()
        await asyncio.gather(work, stopped, return_exceptions=True)
    return None if work.cancelled() else work.result()


async def _sleep_or_stop(stop: asyncio.Event | None, seconds: float) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def loads(delivery: Delivery) -> dict:
    """Plain JSON view of an entry, for consumers that route before decoding a model."""
    try:
        value = json.loads(delivery.data)
    except json.JSONDecodeError as exc:
        raise ContractError(f"not JSON: {exc.msg}") from exc
    if not isinstance(value, dict):
        raise ContractError("not a JSON object")
    return value
