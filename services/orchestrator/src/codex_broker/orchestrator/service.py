"""Wiring: shard leases → shard readers → session workers; timers; reconciliation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from codex_broker.libs.run_fence import FenceMode
from codex_broker.orchestrator import machine, metrics, run_events, turns
from codex_broker.orchestrator.config import Settings
from codex_broker.orchestrator.core import Core, now_ms
from codex_broker.orchestrator.dispatch import SessionDispatcher, ShardReader, WorkItem
from codex_broker.orchestrator.inbound import handle_inbound
from codex_broker.orchestrator.leases import ShardLeases
from codex_broker.orchestrator.reconcile import Reconciler
from codex_broker.orchestrator.stream_trim import StreamTrimmer
from codex_broker.orchestrator.timers import Timers, member_of

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 20.0


@dataclass
class _Reader:
    task: asyncio.Task[None]
    stop: asyncio.Event


@dataclass
class Orchestrator:
    settings: Settings
    redis: Redis
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    core: Core = field(init=False)
    dispatcher: SessionDispatcher = field(init=False)
    leases: ShardLeases = field(init=False)
    timers: Timers = field(init=False)
    reconciler: Reconciler = field(init=False)
    readers: dict[int, _Reader] = field(default_factory=dict)
    ready: bool = False

    def __post_init__(self) -> None:
        self.core = Core.create(self.settings, self.redis)
        self.dispatcher = SessionDispatcher(
            self.core.bus,
            self.handle,
            self.stop,
            max_attempts=self.settings.max_deliveries,
            on_item_done=self._item_done,
            max_concurrent=self.settings.max_concurrent_items,
        )
        self.leases = ShardLeases(
            self.redis,
            self.core.keys,
            self.settings.instance_id,
            self.settings.shard_lease_ms,
            on_gained=self._gained,
            on_lost=self._lost,
        )
        self.timers = Timers(self.redis, self.core.keys, held=self.held, fire=self._fire)
        self.reconciler = Reconciler(self.core, held=self.held, report_lost=self._report_lost)
        self.trimmer = StreamTrimmer(
            self.redis, self.core.keys, held=self.held, alert_above=self.settings.stream_maxlen
        )

    def held(self) -> set[int]:
        return set(self.leases.held)

    # ---- work items ----------------------------------------------------------------------------
    async def handle(self, item: WorkItem) -> None:
        if item.kind == "inbound" and item.inbound is not None:
            await handle_inbound(self.core, item.inbound, received_at=time.monotonic())
        elif item.kind == "run_event" and item.run_event is not None:
            await run_events.handle_run_event(self.core, item.run_event)
        elif item.kind == "tick":
            await self._tick(item)
        elif item.kind == "run_lost":
            await run_events.handle_run_lost(self.core, item.run_id, item.reason, item.fence)

    async def _tick(self, item: WorkItem) -> None:
        session_key = item.session_key
        if item.tick_kind == "flush":
            await run_events.flush_progress(self.core, session_key)
            return
        keys = self.core.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.session_state(session_key))
        pipe.llen(keys.session_queue(session_key))
        pipe.zscore(keys.orchestrator_timers(item.shard), member_of("start", session_key))
        raw_state, queue_len, due = await pipe.execute()
        before = turns.session_of(raw_state, queue_len)
        tick = machine.StartTick(now_ms(), due_ms=due)
        decision = machine.decide(before, tick, turns.rules(self.core))
        await turns.apply(self.core, session_key, before, decision, turns.Material())

    async def _item_done(self, item: WorkItem) -> None:
        if item.kind == "tick":
            await self.timers.done(item.shard, item.member)
        elif item.kind == "run_lost":
            self.reconciler.reported.discard(item.run_id)

    def _fire(self, shard: int, member: str, kind: str, session_key: str) -> None:
        self.dispatcher.submit(WorkItem("tick", shard, session_key, member=member, tick_kind=kind))

    def _report_lost(self, session_key: str, run_id: str, reason: str, fence: FenceMode) -> None:
        shard = self.core.shard(session_key)
        self.dispatcher.submit(
            WorkItem("run_lost", shard, session_key, run_id=run_id, reason=reason, fence=fence)
        )

    # ---- shards --------------------------------------------------------------------------------
    async def _gained(self, shard: int) -> None:
        reader_stop = asyncio.Event()
        reader = ShardReader(
            self.core.bus,
            self.core.keys,
            shard,
            self.settings.instance_id,
            self.dispatcher,
            inflight_limit=self.settings.shard_inflight_limit,
            claim_idle_ms=self.settings.claim_idle_ms,
        )
        task = asyncio.create_task(self._run_reader(reader, reader_stop), name=f"shard-{shard}")
        self.readers[shard] = _Reader(task, reader_stop)
        metrics.SHARDS_HELD.set(len(self.leases.held))
        self.timers.nudge()

    async def _run_reader(self, reader: ShardReader, stop: asyncio.Event) -> None:
        try:
            await reader.run(stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("shard reader crashed", extra={"shard": reader.shard})
            self.stop.set()  # let the supervisor restart the process

    async def _lost(self, shard: int) -> None:
        reader = self.readers.pop(shard, None)
        if reader is not None:
            reader.stop.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(reader.task, timeout=5.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.dispatcher.wait_shard_idle(shard), timeout=DRAIN_TIMEOUT_S)
        self.timers.forget_shard(shard)
        metrics.SHARDS_HELD.set(len(self.leases.held))

    # ---- tasks ---------------------------------------------------------------------------------
    async def lease_loop(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.leases.tick()
                    self.ready = True
                except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
                    log.warning("lease tick failed", extra={"error": str(exc)})
                metrics.SESSIONS_BUSY.set(self.dispatcher.sessions_busy)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.settings.shard_renew_interval_s)
        finally:
            for reader in self.readers.values():
                reader.stop.set()  # all readers wind down together, then each shard is handed back
            with contextlib.suppress(Exception):
                await self.leases.release_all()
            await self.dispatcher.close()

    def tasks(self) -> list[Any]:
        found = [self.lease_loop, self.timers.run, self.reconciler.run, self.trimmer.run]
        if self.settings.housekeeping_enabled:
            from codex_broker.orchestrator.housekeeping import housekeeping_task

            found.append(lambda stop: housekeeping_task(self.settings, self.redis, stop))
        return found

    def heartbeat_details(self) -> dict[str, Any]:
        return {"shards": sorted(self.leases.held), "sessions_busy": self.dispatcher.sessions_busy}

    async def readiness(self) -> dict[str, Any]:
        return {"leases": "ok" if self.ready else "starting"}
