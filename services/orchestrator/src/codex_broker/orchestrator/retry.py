"""The Retry button on the notice of a lost or unclaimed turn: the same input, run once more.

A run keeps its queue entries (the messages it was built from) in its hash (`inputs`). When the
orchestrator reports the run lost it posts a Retry button under the notice; a click puts those
messages back at the head of the session's queue — as the oldest pending messages, which they
are — and the session starts a turn with them like with any queued message. The run's fence
(libs/run_fence.py) is what makes this safe: the lost run itself can never start as well.
Only the first click counts (HSETNX on the run); every later one, and a redelivered click, does
nothing.
"""

from __future__ import annotations

import json
import logging

from codex_broker.libs.contracts import (
    Button,
    Coordinates,
    InboundEvent,
    OutboundAction,
    PostPayload,
    UpdatePayload,
)
from codex_broker.libs.records import RunRecord
from codex_broker.orchestrator import machine, render, turns
from codex_broker.orchestrator.core import RUN_INPUTS_FIELD, Core, now_ms, text

log = logging.getLogger(__name__)

INPUTS_FIELD = RUN_INPUTS_FIELD  # the run's queue entries, JSON list of QueueEntry dumps (core.py)
RETRIED_FIELD = "retried_by"
OFFER_TEXT = "This turn did not run. Retry it with the same messages?"
RETRY_LABEL = "Retry"


def offer_ref(run_id: str) -> str:
    return f"retry:{run_id}"


def offer(coords: Coordinates, session_key: str, run_id: str) -> OutboundAction:
    """The Retry button under a lost turn's notice (one per run: the action id is the run's)."""
    button = Button(action="retry", label=RETRY_LABEL, value=run_id, style="primary")
    payload = PostPayload(text=OFFER_TEXT, buttons=[button], ref=offer_ref(run_id))
    return render.outbound(coords, session_key, payload, f"retry-offer:{run_id}")


def can_retry(run: RunRecord, session_key: str) -> bool:
    """Pure: a run of this thread that the orchestrator gave up on and that kept its input."""
    return bool(run.fenced) and run.session_key == session_key and bool(run.inputs)


async def handle_retry(core: Core, event: InboundEvent, state: dict[str, str], queued: int) -> bool:
    """A Retry click; True when it re-queued the run's messages (the first click only)."""
    action = event.action
    assert action is not None
    run_id = action.run_id or action.value
    run_key = core.keys.run(run_id)
    run = RunRecord.from_hash(await core.redis.hgetall(run_key) if run_id else {})
    if not can_retry(run, event.session_key):
        return False
    if not await core.redis.hsetnx(run_key, RETRIED_FIELD, event.actor.id):
        return False  # clicked before: nothing to do
    raws = [text(raw) for raw in json.loads(run.inputs)]
    who = event.actor.display_name or event.actor.id
    session_key = event.session_key
    before = turns.session_of(state, queued)
    decision = machine.decide(before, machine.Retry(len(raws), now_ms()), turns.rules(core))
    pipe = core.redis.pipeline(transaction=False)
    update = UpdatePayload(ref=offer_ref(run_id), text=f"🔁 Retried by {who}")
    core.add_outbound(pipe, render.outbound(event.coords, session_key, update, f"retry-done:{run_id}"))
    core.add_timeline(pipe, session_key, "run", f"run {run_id} retried by {who}")
    await turns.apply(core, session_key, before, decision, turns.Material(stored=raws), pipe=pipe)
    log.info("lost run retried", extra={"session_key": session_key, "run_id": run_id})
    return True
