"""Drive an in-process orchestrator against the real Redis: push InboundEvents and RunEvents
onto its streams, read what it publishes (RunRequests, controls, outbound actions)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs.contracts import (
    ActionPayload,
    Actor,
    Attachment,
    InboundEvent,
    OutboundAction,
    RunControl,
    RunEvent,
    RunRequest,
    decode,
    encode,
)
from codex_broker.libs.keys import Keys
from codex_broker.orchestrator.config import Settings
from codex_broker.orchestrator.service import Orchestrator
from tests.helpers import wait_for

_counter = itertools.count(1)


def make_settings(key_prefix: str, redis_url: str, data_root: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "key_prefix": key_prefix,
        "redis_url": redis_url,
        "shard_count": 4,
        "data_root": data_root,
        "metrics_port": 0,
        "housekeeping_enabled": False,
        "instance_id": f"orch-{next(_counter)}",
        "shard_renew_interval_s": 0.3,
        "shard_lease_ms": 2000,
        "reconcile_interval_s": 0.3,
        "progress_interval_ms": 0,
        # no ingress here marks answers done; tests of answer order set it explicitly
        "final_order_wait_s": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


def message(
    text: str,
    *,
    conversation: str = "C1",
    root: str | None = None,
    ts: str | None = None,
    user: str = "U1",
    name: str = "Alice",
    mention: bool = True,
    direct: bool = False,
    attachments: list[Attachment] | None = None,
) -> InboundEvent:
    ts = ts or f"{100 + next(_counter)}.000"
    root = root or ts  # a top-level message starts its own thread
    root = root or ts  # a top-level message starts its own thread
    return InboundEvent(
        event_id=f"slack:{conversation}:{ts}",
        platform="slack",
        conversation_id=conversation,
        root_message_id=root,
        message_id=ts,
        actor=Actor(id=user, display_name=name),
        text=text,
        is_mention=mention,
        is_direct=direct,
        attachments=attachments or [],
    )


def button(
    action: str, value: str, *, conversation: str = "C1", root: str = "100.000", user: str = "U1"
) -> InboundEvent:
    n = next(_counter)
    return InboundEvent(
        event_id=f"slack-action:{n}",
        platform="slack",
        conversation_id=conversation,
        root_message_id=root,
        kind="action",
        actor=Actor(id=user, display_name=user),
        action=ActionPayload(action=action, value=value),  # type: ignore[arg-type]
    )


@dataclass
class Driver:
    redis: Redis
    keys: Keys
    orchestrators: list[Orchestrator] = field(default_factory=list)
    _tasks: dict[int, list[asyncio.Task[None]]] = field(default_factory=dict)
    _stops: dict[int, asyncio.Event] = field(default_factory=dict)

    async def start(self, settings: Settings, *, timers: bool = True) -> Orchestrator:
        """`timers=False` leaves the due-timer task out: whatever still happens needed no timer."""
        stop = asyncio.Event()
        orch = Orchestrator(settings, Redis.from_url(settings.redis_url), stop=stop)
        self.orchestrators.append(orch)
        self._stops[id(orch)] = stop
        tasks = [t for t in orch.tasks() if timers or t != orch.timers.run]
        self._tasks[id(orch)] = [asyncio.create_task(t(stop)) for t in tasks]
        return orch

    async def stop(self, orch: Orchestrator) -> None:
        self._stops[id(orch)].set()
        tasks = self._tasks.pop(id(orch), [])
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=30)
        await orch.redis.aclose()
        self.orchestrators.remove(orch)

    async def kill(self, orch: Orchestrator) -> None:
        """Like SIGKILL: tasks cancelled, nothing released."""
        tasks = self._tasks.pop(id(orch), [])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for reader in orch.readers.values():
            reader.task.cancel()
        await orch.dispatcher.close()
        await orch.redis.aclose()
        if orch in self.orchestrators:  # a test cut short may kill what teardown stops
            self.orchestrators.remove(orch)

    async def close(self) -> None:
        for orch in list(self.orchestrators):
            await self.stop(orch)

    # ---- input --------------------------------------------------------------------------------
    async def inbound(self, event: InboundEvent) -> None:
        await self.redis.xadd(self.keys.inbound_stream_for(event.session_key), {"data": encode(event)})

    async def job_callback(self, event: InboundEvent) -> None:
        """As the http-api and the worker publish a job's report: on the job-callback stream."""
        await self.redis.xadd(self.keys.job_callback_stream_for(event.session_key), {"data": encode(event)})

    async def run_event(self, event: RunEvent) -> None:
        await self.redis.xadd(self.keys.run_events_stream_for(event.session_key), {"data": encode(event)})

    # ---- output -------------------------------------------------------------------------------
    async def run_requests(self) -> list[RunRequest]:
        entries = await self.redis.xrange(self.keys.runs_stream)
        return [decode(RunRequest, f[b"data"]) for _, f in entries]

    async def outbound(self, platform: str = "slack") -> list[OutboundAction]:
        entries = await self.redis.xrange(self.keys.outbound_stream(platform))
        return [decode(OutboundAction, f[b"data"]) for _, f in entries]

    async def controls(self, runner_id: str) -> list[RunControl]:
        entries = await self.redis.xrange(self.keys.runner_control_stream(runner_id))
        return [decode(RunControl, f[b"data"]) for _, f in entries]

    async def wait_runs(self, n: int, timeout_s: float = 10) -> list[RunRequest]:
        async def probe() -> list[RunRequest] | None:
            found = await self.run_requests()
            return found if len(found) >= n else None

        return await wait_for(probe, timeout_s=timeout_s, what=f"{n} run request(s)")

    async def wait_idle(self, session_key: str, timeout_s: float = 10) -> None:
        """Until the orchestrator has finished the session's run (a message sent before that
        steers the finished turn instead of starting the next one)."""

        async def idle() -> bool:
            return await self.redis.hget(self.keys.session_state(session_key), "state") == b"idle"

        await wait_for(idle, timeout_s=timeout_s, what=f"session {session_key} idle")

    async def wait_outbound(
        self, predicate: Any, timeout_s: float = 10, what: str = "outbound action"
    ) -> OutboundAction:
        async def probe() -> OutboundAction | None:
            return next((a for a in await self.outbound() if predicate(a)), None)

        return await wait_for(probe, timeout_s=timeout_s, what=what)

    async def replies(self) -> list[str]:
        return [a.payload.text for a in await self.outbound() if a.payload.kind == "post"]  # type: ignore[union-attr]


class FakeRunnerScript:
    """Plays the runner's side of the contract for one run (used where no Codex is needed)."""

    def __init__(self, driver: Driver, request: RunRequest, runner_id: str = "runner-test") -> None:
        self.driver = driver
        self.request = request
        self.runner_id = runner_id
        self.seq = 0

    async def heartbeat(self) -> None:
        import json
        import time

        await self.driver.redis.set(
            self.driver.keys.heartbeat("codex-runner", self.runner_id),
            json.dumps({"service": "codex-runner", "instance": self.runner_id, "at": time.time()}),
            ex=30,
        )

    async def emit(self, kind: str, **fields: Any) -> None:
        event = RunEvent(
            run_id=self.request.run_id,
            session_key=self.request.session_key,
            seq=self.seq,
            kind=kind,
            **fields,  # type: ignore[arg-type]
        )
        self.seq += 1
        await self.driver.run_event(event)

    async def claim(self, thread_id: str = "thread-1") -> None:
        await self.heartbeat()
        await self.driver.redis.hset(
            self.driver.keys.run(self.request.run_id),
            mapping={"runner_id": self.runner_id, "status": "running"},
        )
        await self.emit("accepted", runner_id=self.runner_id)
        await self.emit("turn_started", thread_id=thread_id, turn_id="turn-1")


@contextlib.asynccontextmanager
async def driver_for(redis: Redis, keys: Keys) -> AsyncIterator[Driver]:
    driver = Driver(redis, keys)
    try:
        yield driver
    finally:
        await driver.close()


async def running_turn(driver: Driver, text: str) -> tuple[InboundEvent, RunRequest, FakeRunnerScript]:
    """A mention in a new thread whose turn a scripted runner has claimed and started."""
    first = message(text)
    await driver.inbound(first)
    [request] = await driver.wait_runs(1)
    runner = FakeRunnerScript(driver, request)
    await runner.claim()

    async def turn_active() -> bool:
        return await driver.redis.hget(driver.keys.session_state(request.session_key), "turn_active") == b"1"

    await wait_for(turn_active, what="turn active")
    return first, request, runner
