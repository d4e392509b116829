"""Driving a codex-runner from tests: publish RunRequests and controls, read RunEvents.

Everything goes through real Redis streams exactly as the orchestrator would use them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from codex_broker.codex_runner.config import Settings
from codex_broker.codex_runner.runner import Runner
from codex_broker.libs import paths
from codex_broker.libs.bus import DATA_FIELD
from codex_broker.libs.codex_bin import find_codex_bin
from codex_broker.libs.contracts import (
    ApprovalDecision,
    Coordinates,
    RunControl,
    RunEvent,
    RunInput,
    RunRequest,
    decode,
    encode,
)
from codex_broker.libs.keys import Keys
from tests.fakes.codex_home import FAKE_API_KEY
from tests.helpers import wait_for

DEAD_PROXY = "http://127.0.0.1:9"


def runner_settings(data_root: Path, key_prefix: str, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "key_prefix": key_prefix,
        "shard_count": 4,
        "data_root": data_root,
        "instance_id": f"runner-{uuid.uuid4().hex[:8]}",
        "metrics_port": 0,
        "openai_api_key": FAKE_API_KEY,
        "max_concurrent_turns": 4,
        "http_proxy": DEAD_PROXY,
        "https_proxy": DEAD_PROXY,
        "no_proxy": "127.0.0.1,localhost",
        "broker_api_base": "http://127.0.0.1:3999",
        "ping_interval_s": 2.0,
        "request_timeout_s": 30.0,
        "drain_grace_s": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def running_runner(settings: Settings, *, wait_ready: bool = True) -> AsyncIterator[Runner]:
    """An in-process runner (its app-server is a real child process); stopped and reaped after."""
    codex_bin = find_codex_bin()
    assert codex_bin, "the pinned Codex CLI is not installed (scripts/install-codex.sh)"
    redis = Redis.from_url(settings.redis_url)
    runner = Runner(settings, redis, codex_bin=codex_bin)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        if wait_ready:
            await wait_for(lambda: _ready(runner), timeout_s=60, what="codex app-server ready")
        yield runner
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)
        await redis.aclose()


def _ready(runner: Runner) -> bool:
    supervisor = runner.supervisors.get("default")
    return supervisor is not None and supervisor.ready.is_set()


def new_request(
    data_root: Path, text: str, *, session: str | None = None, thread_id: str | None = None, **fields: Any
) -> RunRequest:
    coords = Coordinates(
        platform="slack", conversation_id="C0TEST", root_message_id=session or uuid.uuid4().hex
    )
    return RunRequest(
        session_key=coords.session_key,
        coords=coords,
        thread_id=thread_id,
        workspace=str(paths.session_workspace(data_root, coords.session_key)),
        input=[RunInput(type="text", text=text)],
        **fields,
    )


async def publish_run(redis: Redis, keys: Keys, request: RunRequest, *, cancel: bool = False) -> None:
    mapping = {
        "session_key": request.session_key,
        "status": "queued",
        "created_at_ms": str(int(time.time() * 1000)),
    }
    if cancel:
        mapping["cancel_requested"] = "1"
    await redis.hset(keys.run(request.run_id), mapping=mapping)  # type: ignore[arg-type]
    await redis.xadd(keys.runs_stream, {DATA_FIELD: encode(request)})


async def send_control(redis: Redis, keys: Keys, runner_id: str, control: RunControl) -> None:
    await redis.xadd(keys.runner_control_stream(runner_id), {DATA_FIELD: encode(control)})


def interrupt(request: RunRequest) -> RunControl:
    return RunControl(run_id=request.run_id, session_key=request.session_key, kind="interrupt")


def steer(request: RunRequest, text: str) -> RunControl:
    return RunControl(
        run_id=request.run_id,
        session_key=request.session_key,
        kind="steer",
        input=[RunInput(type="text", text=text)],
    )


def approval(request: RunRequest, request_id: str, decision: str) -> RunControl:
    return RunControl(
        run_id=request.run_id,
        session_key=request.session_key,
        kind="approval",
        approval=ApprovalDecision(request_id=request_id, decision=decision, decided_by="U-tester"),  # type: ignore[arg-type]
    )


async def events_of(redis: Redis, keys: Keys, request: RunRequest) -> list[RunEvent]:
    entries = await redis.xrange(keys.run_events_stream_for(request.session_key))
    found = []
    for _, fields in entries:
        event = decode(RunEvent, fields[DATA_FIELD.encode()])
        if event.run_id == request.run_id:
            found.append(event)
    return found


async def wait_event(
    redis: Redis, keys: Keys, request: RunRequest, kind: str, *, timeout_s: float = 60
) -> list[RunEvent]:
    """Events of the run up to and including the first of `kind` (bounded wait)."""

    async def probe() -> list[RunEvent] | None:
        events = await events_of(redis, keys, request)
        for index, event in enumerate(events):
            if event.kind == kind:
                return events[: index + 1]
        return None

    return await wait_for(probe, timeout_s=timeout_s, interval_s=0.05, what=f"{kind} event of run")


async def wait_terminal(
    redis: Redis, keys: Keys, request: RunRequest, *, timeout_s: float = 90
) -> list[RunEvent]:
    async def probe() -> list[RunEvent] | None:
        events = await events_of(redis, keys, request)
        return events if events and events[-1].is_terminal else None

    events = await wait_for(probe, timeout_s=timeout_s, interval_s=0.05, what="terminal event of run")
    assert_well_formed(events)
    return events


def assert_well_formed(events: list[RunEvent]) -> None:
    """seq 0,1,2,…; `accepted` first; exactly one terminal event, last."""
    assert [e.seq for e in events] == list(range(len(events))), [(e.seq, e.kind) for e in events]
    assert events[0].kind == "accepted" and events[0].runner_id
    assert sum(1 for e in events if e.is_terminal) == 1
    assert events[-1].is_terminal


def text_of(events: list[RunEvent]) -> str:
    return "".join(e.text or "" for e in events if e.kind == "text_delta")


def kinds(events: list[RunEvent]) -> list[str]:
    return [e.kind for e in events]
