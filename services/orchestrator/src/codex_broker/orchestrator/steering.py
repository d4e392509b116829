"""Steering: a message into the running turn (Codex `turn/steer` through the runner).

The message is kept on the run (field = the control id) in the round trip that publishes the
control: if the runner reports `steer_rejected`, run_events puts it back in the queue. Messages
that arrived after the run was published but before its turn started wait in the queue; they
are steered in as soon as the runner reports `turn_started`, so a burst reaches Codex without
waiting for the whole first turn (and without a debounce timer in front of the first message).
"""

from __future__ import annotations

from typing import Any

from codex_broker.libs.contracts import InboundEvent, RunControl
from codex_broker.orchestrator import audit_hooks, prompt, run_request
from codex_broker.orchestrator.core import Core, QueueEntry

STEER_PREFIX = "steer:"  # control ids of steers; the run field holding the message


def control_id(event: InboundEvent) -> str:
    return f"{STEER_PREFIX}{event.event_id}"


async def send(
    core: Core,
    entry: QueueEntry,
    run_id: str,
    runner_id: str,
    *,
    queued_raw: Any = None,
) -> None:
    """Steer one message; `queued_raw` is its queue entry when it waited in the queue (removed
    in the same round trip), None for a message arriving now (marked seen instead)."""
    event = entry.event
    files = []
    stored = event
    if entry.download_reply:
        files = (await run_request.collect_downloads(core, [entry]))[event.event_id]
        stored = event.model_copy(update={"attachments": files})  # put back, it needs no new download
    inputs = prompt.run_inputs(prompt.steer_text(event, files), {event.event_id: files})
    control = RunControl(
        control_id=control_id(event),
        run_id=run_id,
        session_key=event.session_key,
        kind="steer",
        input=inputs,
    )
    pipe = core.redis.pipeline(transaction=False)
    pipe.hset(core.keys.run(run_id), control.control_id, QueueEntry(stored).dump())
    core.add_control(pipe, runner_id, control)
    who = event.actor.display_name or event.actor.id
    core.add_timeline(pipe, event.session_key, "steer", f"{who}: {event.text}")
    audit_hooks.steer(core, pipe, event, run_id)
    if queued_raw is None:
        core.touch(pipe, event)
        core.add_seen(pipe, event.session_key, event.event_id)
    else:
        pipe.lrem(core.keys.session_queue(event.session_key), 1, queued_raw)
    await pipe.execute()


def steerable(entry: QueueEntry) -> bool:
    """Job reports wait for the next turn (they are not a person talking to the running one)."""
    return entry.event.kind != "job_callback"


async def flush_queue(core: Core, run_id: str, runner_id: str, raw_queue: list[Any]) -> int:
    """The turn started: steer in what waited for it, oldest first; returns how many."""
    steered = 0
    for raw in raw_queue:
        entry = QueueEntry.load(raw)
        if not steerable(entry):
            continue
        await send(core, entry, run_id, runner_id, queued_raw=raw)
        steered += 1
    return steered
