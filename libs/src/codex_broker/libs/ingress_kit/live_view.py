"""A run's live view on any platform: snapshots in `seq` order, paced, one applier at a time.

Snapshots (`ProgressPayload`) arrive on the outbound stream. One that is not newer than what
the view applied or parked is dropped, so redelivery and reordering are harmless. A snapshot
that comes within `interval_s` of the view's last update is parked in Redis (a newer parked one
replaces it) and a timer applies it when the interval has passed; the stream entry is acked at
once, so nothing waits un-acked. The finish is never parked: it is applied at once.

All state is one Redis hash per view (`Keys.live_view`), so any replica can continue a view.
One applier per view: an asyncio lock inside the replica and, across replicas, a short lease
renewed while the platform call runs — a replica killed mid-apply blocks the view for about
`LOCK_MS`, well inside the redeliveries of one entry.

Hash fields: handle (JSON ViewHandle; absent until opened), seq (applied), at_ms (applied),
finished, pending (OutboundAction JSON), pending_seq.

`checkpoint(handle)`: an adapter whose open takes several platform calls saves the handle as soon
as the first one made something that must not be made twice (Slack's chat.startStream), so a
redelivery after a later call failed continues that view instead of opening a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs.contracts import OutboundAction, ProgressPayload, decode, encode
from codex_broker.libs.ingress_kit import metrics
from codex_broker.libs.ingress_kit.platform import Platform, PlatformError, Target, ViewHandle
from codex_broker.libs.keys import Keys
from codex_broker.libs.lease import Lease

log = logging.getLogger(__name__)

STATE_TTL_S = 2 * 86400
LOCK_MS = 10_000
LOCK_RENEW_S = 3.0
LOCK_WAIT_S = 5.0
LOCK_POLL_S = 0.05
FLUSH_RETRIES = 5
FLUSH_BACKOFF_MAX_S = 30.0


_checkpoint: contextvars.ContextVar[Callable[[ViewHandle], Awaitable[None]] | None] = contextvars.ContextVar(
    "live_view_checkpoint", default=None
)


async def checkpoint(handle: ViewHandle) -> None:
    """Inside `Platform.view_open/update`: keep `handle` now, before the call returns (no-op
    outside a live view's apply)."""
    save = _checkpoint.get()
    if save is not None:
        await save(handle)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ViewBusy(RuntimeError):
    """Another replica applies this view right now and did not finish in time: redeliver later."""


@dataclass
class ViewState:
    handle: ViewHandle | None = None
    seq: int = -1
    at_ms: int = 0
    finished: bool = False
    pending_seq: int = -1
    pending: str = ""

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> ViewState:
        f = {_text(k): _text(v) for k, v in raw.items()}
        return cls(
            handle=json.loads(f["handle"]) if f.get("handle") else None,
            seq=int(f.get("seq", -1)),
            at_ms=int(f.get("at_ms", 0)),
            finished=f.get("finished") == "1",
            pending_seq=int(f.get("pending_seq", -1)),
            pending=f.get("pending", ""),
        )

    def to_hash(self) -> dict[str, str]:
        fields = {"seq": str(self.seq), "at_ms": str(self.at_ms), "finished": "1" if self.finished else "0"}
        if self.handle is not None:
            fields["handle"] = json.dumps(self.handle)
        return fields

    def is_stale(self, seq: int) -> bool:
        return self.finished or seq <= max(self.seq, self.pending_seq)


def wait_before_apply_ms(
    state: ViewState, snapshot: ProgressPayload, *, now_ms: int, interval_ms: int
) -> int:
    """How long a snapshot must wait for the view's pace (0: apply now). Pure."""
    if snapshot.phase == "finish" or state.handle is None:
        return 0
    return max(0, state.at_ms + interval_ms - now_ms)


class LiveViews:
    def __init__(
        self,
        platform: Platform,
        redis: Redis,
        keys: Keys,
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.platform = platform
        self.redis = redis
        self.keys = keys
        self.interval_ms = int(interval_s * 1000)
        self._clock = clock
        self._local_locks: dict[str, asyncio.Lock] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()

    async def handle(self, action: OutboundAction) -> None:
        snapshot = action.payload
        assert isinstance(snapshot, ProgressPayload)
        async with self._locked(snapshot.progress_id, wait_s=LOCK_WAIT_S) as state:
            if state is None:
                raise ViewBusy(snapshot.progress_id)
            if state.is_stale(snapshot.seq):
                metrics.LIVE_VIEW.labels(platform=self.platform.name, result="stale").inc()
                return
            wait_ms = wait_before_apply_ms(
                state, snapshot, now_ms=self._now_ms(), interval_ms=self.interval_ms
            )
            if wait_ms > 0:
                await self._park(snapshot.progress_id, action)
                self._schedule(snapshot.progress_id, wait_ms / 1000)
                return
            await self._apply(action, state)

    async def flush(self, view_id: str) -> None:
        """Apply the parked snapshot of one view now (timer, shutdown)."""
        async with self._locked(view_id, wait_s=0.5) as state:
            if state is None:
                self._schedule(view_id, self.interval_ms / 1000)
                return
            if state.finished or state.pending_seq <= state.seq or not state.pending:
                return
            await self._apply(decode(OutboundAction, state.pending), state)

    async def close(self) -> None:
        """On shutdown: apply every parked snapshot instead of waiting for the timers."""
        timers = list(self._timers.items())
        for _, task in timers:
            task.cancel()
        await asyncio.gather(*(task for _, task in timers), return_exceptions=True)
        self._dirty.clear()
        for view_id, _ in timers:
            with contextlib.suppress(Exception):
                await self.flush(view_id)

    # ---- applying ------------------------------------------------------------------------------

    async def _apply(self, action: OutboundAction, state: ViewState) -> None:
        snapshot = action.payload
        assert isinstance(snapshot, ProgressPayload)
        target = Target.of(action)
        key = self.keys.live_view(self.platform.name, snapshot.progress_id)

        async def save_handle(handle: ViewHandle) -> None:  # under the view's lease, like _save
            state.handle = handle
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(key, "handle", json.dumps(handle))
            pipe.expire(key, STATE_TTL_S)
            await pipe.execute()

        token = _checkpoint.set(save_handle)
        try:
            if snapshot.phase == "finish":
                state.handle = await self.platform.view_finish(target, state.handle, snapshot)
                state.finished = True
            elif state.handle is None:
                state.handle = await self.platform.view_open(target, snapshot)
            else:
                state.handle = await self.platform.view_update(target, state.handle, snapshot)
        finally:
            _checkpoint.reset(token)
        state.seq = snapshot.seq
        state.at_ms = self._now_ms()
        await self._save(snapshot.progress_id, state)
        metrics.LIVE_VIEW.labels(platform=self.platform.name, result="applied").inc()

    async def _park(self, view_id: str, action: OutboundAction) -> None:
        key = self.keys.live_view(self.platform.name, view_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, mapping={"pending": encode(action), "pending_seq": str(action.payload.seq)})  # type: ignore[union-attr]
        pipe.expire(key, STATE_TTL_S)
        await pipe.execute()
        metrics.LIVE_VIEW.labels(platform=self.platform.name, result="parked").inc()

    async def _save(self, view_id: str, state: ViewState) -> None:
        key = self.keys.live_view(self.platform.name, view_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, mapping=state.to_hash())  # type: ignore[arg-type]
        if state.pending_seq <= state.seq or state.finished:
            pipe.hdel(key, "pending", "pending_seq")
        pipe.expire(key, STATE_TTL_S)
        await pipe.execute()

    # ---- timers ---------------------------------------------------------------------------------

    def _schedule(self, view_id: str, delay_s: float) -> None:
        self._dirty.add(view_id)
        if view_id not in self._timers:
            self._timers[view_id] = asyncio.create_task(self._flush_later(view_id, delay_s))

    async def _flush_later(self, view_id: str, delay_s: float) -> None:
        """One timer per view; it keeps flushing while snapshots get parked meanwhile."""
        failures = 0
        try:
            while view_id in self._dirty:
                await asyncio.sleep(delay_s)
                self._dirty.discard(view_id)
                delay_s = self.interval_ms / 1000
                try:
                    await self.flush(view_id)
                except PlatformError as exc:
                    if exc.permanent:  # the next snapshot or the finish supersedes this one
                        log.warning("dropping a parked snapshot", extra={"view": view_id, "error": str(exc)})
                        continue
                    failures = self._retry_later(view_id, failures, exc)
                    delay_s = min(FLUSH_BACKOFF_MAX_S, delay_s * 2**failures)
                except Exception as exc:
                    failures = self._retry_later(view_id, failures, exc)
                    delay_s = min(FLUSH_BACKOFF_MAX_S, delay_s * 2**failures)
        finally:
            self._timers.pop(view_id, None)

    def _retry_later(self, view_id: str, failures: int, exc: Exception) -> int:
        log.warning("live view flush failed", extra={"view": view_id, "error": repr(exc)[:300]})
        if failures + 1 < FLUSH_RETRIES:
            self._dirty.add(view_id)
        return failures + 1

    # ---- one applier per view -------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _locked(self, view_id: str, *, wait_s: float) -> AsyncIterator[ViewState | None]:
        """The view's state, read in the lock's own round trip (None: not locked within `wait_s`).

        The read is consistent although the pipeline is not atomic: every writer of the state
        holds the lease, so nothing changes it between our SET NX and the HGETALL."""
        local = self._local_locks.setdefault(view_id, asyncio.Lock())
        async with local:
            key = self.keys.live_view(self.platform.name, view_id)
            lock_key = key + ":lock"
            token = uuid.uuid4().hex
            deadline = time.monotonic() + wait_s
            while True:
                pipe = self.redis.pipeline(transaction=False)
                pipe.set(lock_key, token, nx=True, px=LOCK_MS)
                pipe.hgetall(key)
                locked, raw = await pipe.execute()
                if locked:
                    break
                if time.monotonic() >= deadline:
                    yield None
                    return
                await asyncio.sleep(LOCK_POLL_S)
            async with Lease(self.redis, lock_key, token, LOCK_MS).renewed(every_s=LOCK_RENEW_S):
                yield ViewState.from_hash(raw)
        if not local.locked() and view_id not in self._timers:
            self._local_locks.pop(view_id, None)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)
