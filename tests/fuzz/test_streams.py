"""Garbage entries on the orchestrator's and the codex-runner's streams, consumed by the real
consumers on real Redis: each is dead-lettered with a reason, and the consumer keeps going (the
valid entry written after the garbage is handled).

- orchestrator: `inbound:{shard}` (InboundEvent) and `run-events:{shard}` (RunEvent);
- codex-runner: `runs` (RunRequest) and `control:{runner}` (RunControl). The runner runs
  without Codex: its binary path does not exist, so a valid run is claimed (`accepted`) and
  then fails fast — which is all the claim loop needs to show it is alive.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel
from redis.asyncio import Redis

from codex_broker.codex_runner.runner import Runner
from codex_broker.libs.contracts import (
    Actor,
    Coordinates,
    InboundEvent,
    RunControl,
    RunEvent,
    RunInput,
    RunRequest,
    decode,
    encode,
)
from codex_broker.libs.keys import GROUP_ORCHESTRATOR, GROUP_RUNNERS, Keys
from codex_broker.orchestrator.service import Orchestrator
from tests.fuzz import strategies as fz
from tests.fuzz.support import acked, dead_letters, decodes, fuzz_settings
from tests.helpers import wait_for

_n = itertools.count(1)

VALID_INBOUND = json.loads(
    encode(
        InboundEvent(
            event_id="slack:C1:1.1",
            platform="slack",
            conversation_id="C1",
            root_message_id="1.1",
            message_id="1.1",
            actor=Actor(id="U1", display_name="Ann"),
            text="hello",
            is_mention=True,
        )
    )
)
VALID_RUN_EVENT = json.loads(
    encode(RunEvent(run_id="r1", session_key="slack:C1:1.1", seq=1, kind="text_delta"))
)
COORDS = Coordinates(platform="slack", conversation_id="C1", root_message_id="1.1")
VALID_RUN_REQUEST = json.loads(
    encode(
        RunRequest(
            session_key=COORDS.session_key,
            coords=COORDS,
            workspace="/nonexistent/ws",
            input=[RunInput(type="text", text="hi")],
        )
    )
)
VALID_CONTROL = json.loads(encode(RunControl(run_id="r1", session_key="slack:C1:1.1", kind="interrupt")))


def raw_bytes(value: str | bytes) -> bytes:
    """What goes into Redis: text with lone surrogates is written as the (invalid) bytes it is."""
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def garbage_entries(model: type[BaseModel], valid: dict[str, Any]) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(fz.stream_fields(model, valid), min_size=1, max_size=3)


async def add(redis: Redis, stream: str, fields: dict[str, Any]) -> str:
    entry_id = await redis.xadd(stream, {k: raw_bytes(v) for k, v in fields.items()})
    return entry_id.decode()


async def assert_dead_lettered(
    redis: Redis,
    keys: Keys,
    stream: str,
    group: str,
    model: type[BaseModel],
    entries: list[tuple[str, dict[str, Any]]],
) -> None:
    """Invalid entries: dead-lettered with a reason; valid ones (rare): handled or dead-lettered."""

    async def settled() -> bool:
        rows = await dead_letters(redis, keys.dead_letter_stream)
        for entry_id, fields in entries:
            if (stream, entry_id) in rows:
                continue
            if decodes(model, raw_bytes(fields.get("data", ""))) and await acked(
                redis, stream, group, [entry_id]
            ):
                continue
            return False
        return True

    await wait_for(settled, timeout_s=15, what=f"garbage on {stream} dead-lettered")
    rows = await dead_letters(redis, keys.dead_letter_stream)
    for entry_id, _ in entries:
        row = rows.get((stream, entry_id))
        if row is not None:
            assert row.group == group and row.reason.strip(), row


# ---- orchestrator ----------------------------------------------------------------------------


def readers_alive(orch: Orchestrator) -> None:
    dead = {shard: r.task for shard, r in orch.readers.items() if r.task.done()}
    details = {s: (t.exception() if not t.cancelled() else "cancelled") for s, t in dead.items()}
    assert not dead, f"shard readers died: {details}"


def mention(n: int) -> InboundEvent:
    ts = f"{1700000000 + n}.000100"
    return InboundEvent(
        event_id=f"slack:CFUZZ:{ts}",
        platform="slack",
        conversation_id="CFUZZ",
        root_message_id=ts,
        message_id=ts,
        actor=Actor(id="U1", display_name="Ann"),
        text=f"fuzz check {n}",
        is_mention=True,
    )


@fuzz_settings()
@given(garbage=garbage_entries(InboundEvent, VALID_INBOUND))
async def test_orchestrator_inbound_garbage_is_dead_lettered(
    orchestrator: Orchestrator, redis: Redis, keys: Keys, garbage: list[dict[str, Any]]
) -> None:
    event = mention(next(_n))
    stream = keys.inbound_stream_for(event.session_key)
    entries = [(await add(redis, stream, fields), fields) for fields in garbage]
    await add(redis, stream, {"data": encode(event)})

    async def requested() -> bool:  # still routing: the mention after the garbage starts a run
        runs = [decode(RunRequest, f[b"data"]) for _, f in await redis.xrange(keys.runs_stream)]
        return any(r.session_key == event.session_key for r in runs)

    await wait_for(requested, what="run request for the mention after the garbage")
    await assert_dead_lettered(redis, keys, stream, GROUP_ORCHESTRATOR, InboundEvent, entries)
    readers_alive(orchestrator)


@fuzz_settings()
@given(garbage=garbage_entries(RunEvent, VALID_RUN_EVENT))
async def test_orchestrator_run_event_garbage_is_dead_lettered(
    orchestrator: Orchestrator, redis: Redis, keys: Keys, garbage: list[dict[str, Any]]
) -> None:
    event = RunEvent(run_id=f"run-{next(_n)}", session_key=mention(1).session_key, seq=1, kind="text_delta")
    stream = keys.run_events_stream_for(event.session_key)
    entries = [(await add(redis, stream, fields), fields) for fields in garbage]
    valid_id = await add(redis, stream, {"data": encode(event)})  # a run it does not know: ignored
    await wait_for(
        lambda: acked(redis, stream, GROUP_ORCHESTRATOR, [valid_id]), what="valid run event handled"
    )
    await assert_dead_lettered(redis, keys, stream, GROUP_ORCHESTRATOR, RunEvent, entries)
    readers_alive(orchestrator)


# ---- codex-runner ----------------------------------------------------------------------------


async def run_events_of(redis: Redis, keys: Keys, session_key: str, run_id: str) -> list[RunEvent]:
    entries = await redis.xrange(keys.run_events_stream_for(session_key))
    events = [decode(RunEvent, f[b"data"]) for _, f in entries]
    return [e for e in events if e.run_id == run_id]


@fuzz_settings()
@given(garbage=garbage_entries(RunRequest, VALID_RUN_REQUEST))
async def test_runner_runs_garbage_is_dead_lettered(
    runner: Runner, redis: Redis, keys: Keys, garbage: list[dict[str, Any]]
) -> None:
    stream = keys.runs_stream
    # never hand the runner a valid run by accident (it would act on a made-up workspace)
    garbage = [g for g in garbage if not decodes(RunRequest, raw_bytes(g.get("data", "")))]
    request = RunRequest(
        session_key=COORDS.session_key,
        coords=COORDS,
        workspace=str(Path(runner.settings.data_root) / "sessions" / "fuzz" / "workspace"),
        input=[RunInput(type="text", text="hi")],
    )
    entries = [(await add(redis, stream, fields), fields) for fields in garbage]
    await add(redis, stream, {"data": encode(request)})

    async def claimed() -> bool:  # the claim loop is alive: the valid run after the garbage is taken
        events = await run_events_of(redis, keys, request.session_key, request.run_id)
        return any(e.kind == "accepted" for e in events)

    await wait_for(claimed, what="the valid run claimed")
    await assert_dead_lettered(redis, keys, stream, GROUP_RUNNERS, RunRequest, entries)


@fuzz_settings()
@given(garbage=garbage_entries(RunControl, VALID_CONTROL))
async def test_runner_control_garbage_is_dead_lettered(
    runner: Runner, redis: Redis, keys: Keys, garbage: list[dict[str, Any]]
) -> None:
    stream = keys.runner_control_stream(runner.runner_id)
    entries = [(await add(redis, stream, fields), fields) for fields in garbage]
    control = RunControl(run_id=f"not-here-{next(_n)}", session_key=COORDS.session_key, kind="interrupt")
    valid_id = await add(redis, stream, {"data": encode(control)})  # a run it does not hold: acked
    await wait_for(lambda: acked(redis, stream, GROUP_RUNNERS, [valid_id]), what="valid control handled")
    await assert_dead_lettered(redis, keys, stream, GROUP_RUNNERS, RunControl, entries)
