"""Applying the turn machine's decisions (machine.py) to Redis: the one executor.

A handler reads the facts, builds the event, calls `decide`, and hands the decision here with
what the effects act on (`Material`): the arriving message, the queue as read. `apply` then
1. waits where an effect must wait (an answer for the thread's previous one),
2. writes the new `TurnState` (one HSET and one HDEL of what changed) and every effect that is a
   write into the caller's pipeline, beside the handler's own writes, and executes it once,
3. runs what needs its own round trips after that commit: starting a run, steering, an
   interrupt, a reply.
Order matters only in step 3, and only between effects of one decision.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from codex_broker.libs.contracts import InboundEvent, RunControl, new_id
from codex_broker.libs.idempotency import DONE_PREFIX
from codex_broker.libs.records import TurnState, changes
from codex_broker.orchestrator import commands, machine, run_request, steering, timers
from codex_broker.orchestrator.core import Core, QueueEntry, as_str_dict, now_ms, text
from codex_broker.orchestrator.machine import Decision, Effect, Session

log = logging.getLogger(__name__)

# the ingresses' idempotency scope for outbound actions: `done:<result>` once an action is posted
OUTBOUND_SCOPE = "outbound"
FINAL_ORDER_POLL_S = 0.25


def rules(core: Core) -> machine.Rules:
    s = core.settings
    return machine.Rules(
        during_run=s.message_during_run,  # type: ignore[arg-type]
        queue_limit=s.session_queue_limit,
        debounce_ms=s.debounce_ms,
    )


def session_of(raw_state: Any, queued: Any) -> Session:
    """The machine's view of a session from its state hash and the queue's length."""
    return Session(TurnState.from_hash(raw_state), int(queued or 0))


async def read(core: Core, session_key: str) -> Session:
    pipe = core.redis.pipeline(transaction=False)
    pipe.hgetall(core.keys.session_state(session_key))
    pipe.llen(core.keys.session_queue(session_key))
    raw_state, queued = await pipe.execute()
    return session_of(raw_state, queued)


@dataclass
class Material:
    """What the effects act on, as the handler read it."""

    event: InboundEvent | None = None  # the arriving message (Enqueue, SteerIn, Say)
    session: dict[str, str] = field(default_factory=dict)  # the session record (downloads)
    stored: Any = None  # Requeue / RestoreInputs: the raw entry (or entries) to put back
    raw_queue: list[Any] = field(default_factory=list)  # the queue as read (Requeue, SteerQueued)
    runner_id: str = ""  # SteerIn / SteerQueued: the runner holding the run
    run_id: str = ""  # the run the event is about (DropSteer, Requeue: its stored message field)
    control_id: str = ""  # Requeue / DropSteer: the run field holding the rejected steer
    say: Callable[[str], Awaitable[None]] | None = None  # Say: how the handler answers


def write_state(core: Core, pipe: Any, session_key: str, before: TurnState, after: TurnState) -> None:
    mapping, removed = changes(before, after)
    key = core.keys.session_state(session_key)
    if removed:
        pipe.hdel(key, *removed)
    if mapping:
        pipe.hset(key, mapping=dict[Any, Any](mapping))


async def wait_for_order(core: Core, session_key: str, decision: Decision, run_id: str) -> None:
    """Step 1: an answer goes out only once the thread's previous answer did."""
    for effect in decision.effects:
        if isinstance(effect, machine.PostInOrder) and effect.after:
            await _wait_for_answer(core, session_key, effect.after, run_id)


async def _wait_for_answer(core: Core, session_key: str, previous: str, run_id: str) -> None:
    """Keep a thread's answers in order across ingress replicas.

    Each ingress replica keeps order only among the actions it handles; if one dies while
    posting an answer, the next answer could go out through another replica before the first is
    reclaimed. So an answer is published only once the previous one of the thread is done (its
    idempotency marker `done:`). Normally the previous answer went out a whole turn ago and one
    GET says so; the short sleeps below only run while an ingress recovers, bounded by
    FINAL_ORDER_WAIT_S.
    """
    marker = core.keys.idempotency(OUTBOUND_SCOPE, previous)
    deadline = time.monotonic() + core.settings.final_order_wait_s
    while True:
        value = await core.redis.get(marker)
        if value is not None and text(value).startswith(DONE_PREFIX):
            return
        if time.monotonic() >= deadline:
            log.warning(
                "previous answer of the thread not confirmed; posting this one anyway",
                extra={"session_key": session_key, "previous": previous, "run_id": run_id},
            )
            return
        await asyncio.sleep(FINAL_ORDER_POLL_S)


def stage(
    core: Core, pipe: Any, session_key: str, before: Session, decision: Decision, material: Material
) -> None:
    """Step 2: the state change and the effects that are writes, into `pipe`."""
    write_state(core, pipe, session_key, before.turn, decision.turn)
    for effect in decision.effects:
        _stage_one(core, pipe, session_key, effect, material)


def _stage_one(core: Core, pipe: Any, session_key: str, effect: Effect, material: Material) -> None:
    keys = core.keys
    if isinstance(effect, machine.Enqueue):
        event = material.event
        assert event is not None  # an Enqueue is always of an arriving message
        entry = QueueEntry(event, core.download_request(pipe, event, material.session))
        pipe.rpush(keys.session_queue(session_key), entry.dump())
        core.touch(pipe, event)
        who = event.actor.display_name or event.actor.id
        core.add_timeline(pipe, session_key, "message", f"{who}: {event.text}")
        core.add_seen(pipe, session_key, event.event_id)
    elif isinstance(effect, machine.Requeue):
        queue = keys.session_queue(session_key)
        if effect.before is None:
            pipe.rpush(queue, material.stored)
        else:
            pipe.linsert(queue, "BEFORE", material.raw_queue[effect.before], material.stored)
        pipe.hdel(keys.run(material.run_id), material.control_id)
    elif isinstance(effect, machine.RestoreInputs):
        pipe.lpush(keys.session_queue(session_key), *reversed(material.stored))  # oldest first
    elif isinstance(effect, machine.DropSteer):
        pipe.hdel(keys.run(material.run_id), material.control_id)
    elif isinstance(effect, machine.ScheduleStart):
        timers.add_schedule(pipe, keys, "start", session_key, effect.due_ms, nudge=effect.nudge)
    elif isinstance(effect, machine.CancelStart):
        timers.add_cancel(pipe, keys, "start", session_key)
    elif isinstance(effect, machine.TakeQueued):
        pipe.ltrim(keys.session_queue(session_key), effect.count, -1)
    elif isinstance(effect, machine.LeaveLine):
        pipe.zrem(keys.runs_waiting, session_key)
    elif isinstance(effect, machine.DropQueue):
        pipe.delete(keys.session_queue(session_key))
    elif isinstance(effect, machine.Say) and effect.what == "busy" and material.event is not None:
        core.add_seen(pipe, session_key, material.event.event_id)  # refused, and done with
    # the rest run after the commit (`follow_up`); PostInOrder's post is the handler's own write


async def follow_up(core: Core, session_key: str, decision: Decision, material: Material) -> None:
    """Step 3: what needs round trips of its own, after the commit and in the decision's order."""
    for effect in decision.effects:
        if isinstance(effect, machine.StartRun) and not effect.direct:
            await start_queued(core, session_key)
        elif isinstance(effect, machine.SteerIn):
            await _steer_in(core, material)
        elif isinstance(effect, machine.SteerQueued):
            steered = await steering.flush_queue(
                core, material.run_id, material.runner_id, material.raw_queue
            )
            log.info(
                "queued messages steered into the turn", extra={"run_id": material.run_id, "count": steered}
            )
        elif isinstance(effect, machine.Interrupt):
            await interrupt_run(core, effect.run_id, session_key)
        elif isinstance(effect, machine.Say) and material.say is not None:
            await material.say(_SAYINGS[effect.what](core))


async def apply(
    core: Core,
    session_key: str,
    before: Session,
    decision: Decision,
    material: Material,
    *,
    pipe: Any | None = None,
) -> None:
    """All three steps; `pipe` may already hold the handler's own writes."""
    await wait_for_order(core, session_key, decision, material.run_id)
    pipe = pipe if pipe is not None else core.redis.pipeline(transaction=False)
    stage(core, pipe, session_key, before, decision, material)
    await pipe.execute()
    await follow_up(core, session_key, decision, material)


def split_start(decision: Decision) -> tuple[Decision, bool]:
    """The decision without its StartRun, and whether it had one: for a caller that must do
    something between the commit and the start (a run's end frees its slot first)."""
    rest = tuple(e for e in decision.effects if not isinstance(e, machine.StartRun))
    return Decision(decision.session, rest), len(rest) != len(decision.effects)


# ---- StartRun ---------------------------------------------------------------------------------


async def start_queued(core: Core, session_key: str, *, received_at: float | None = None) -> str | None:
    """Flush the queue into one RunRequest if a run slot is free; returns the run id."""
    pipe = core.redis.pipeline(transaction=False)
    pipe.hgetall(core.keys.session_state(session_key))
    pipe.hgetall(core.keys.session(session_key))
    pipe.lrange(core.keys.session_queue(session_key), 0, -1)
    raw_state, raw_session, raw_queue = await pipe.execute()
    before, session = session_of(raw_state, len(raw_queue)), as_str_dict(raw_session)
    rule_set = rules(core)
    if before.turn.running:
        return None  # a run is in flight; its end starts the next turn
    if not raw_queue or not session:
        await apply(
            core, session_key, before, machine.decide(before, machine.NothingToStart(), rule_set), Material()
        )
        return None
    run_id = new_id()
    pipe = core.redis.pipeline(transaction=False)
    if not await core.admit(session_key, run_id, pipe=pipe):
        refused = machine.decide(before, machine.SlotRefused(message_pending=False), rule_set)
        await apply(core, session_key, before, refused, Material())
        return None
    entries = [QueueEntry.load(raw) for raw in raw_queue]
    try:
        request = await run_request.build(core, run_id, session_key, session, entries, pipe)
    except BaseException:
        await core.redis.zrem(core.keys.active_runs, run_id)
        raise
    run_request.add_publish(core, pipe, request, session, entries)
    started = machine.RunAdmitted(run_id, now_ms(), flushed=len(raw_queue))
    await apply(core, session_key, before, machine.decide(before, started, rule_set), Material(), pipe=pipe)
    run_request.count_started(request, received_at)
    return run_id


async def start_direct(
    core: Core,
    event: InboundEvent,
    session: dict[str, str],
    before: Session,
    *,
    pipe: Any,
    received_at: float | None,
) -> None:
    """Idle session, no debounce: straight from the inbound event to a RunRequest.

    `pipe` may already hold the new session's record; everything — session, bookkeeping,
    token, run, RunRequest, state, progress — goes out in one round trip. The message is
    marked seen in that same round trip, so a crash before it leaves the inbound entry to be
    handled again from scratch."""
    session_key = event.session_key
    rule_set = rules(core)
    run_id = new_id()
    if not await core.admit(session_key, run_id, pipe=pipe):
        refused = machine.decide(before, machine.SlotRefused(message_pending=True), rule_set)
        await apply(core, session_key, before, refused, Material(event=event, session=session), pipe=pipe)
        return  # woken in turn by a freed slot
    try:
        entry = QueueEntry(event, core.download_request(pipe, event, session))
        if entry.download_reply:
            await pipe.execute()  # the download must start before we wait for it
            pipe = core.redis.pipeline(transaction=False)
        request = await run_request.build(core, run_id, session_key, session, [entry], pipe)
    except BaseException:
        await core.redis.zrem(core.keys.active_runs, run_id)
        raise
    core.touch(pipe, event, new_session=session.get("created_at_ms") == session.get("last_activity_ms"))
    who = event.actor.display_name or event.actor.id
    core.add_timeline(pipe, session_key, "message", f"{who}: {event.text}")
    run_request.add_publish(core, pipe, request, session, [entry])
    core.add_seen(pipe, session_key, event.event_id)
    started = machine.decide(before, machine.RunAdmitted(run_id, now_ms(), flushed=0), rule_set)
    await apply(core, session_key, before, started, Material(), pipe=pipe)
    run_request.count_started(request, received_at)


# ---- SteerIn and Interrupt ----------------------------------------------------------------------


async def _steer_in(core: Core, material: Material) -> None:
    event = material.event
    assert event is not None  # a SteerIn is always of an arriving message
    pipe = core.redis.pipeline(transaction=False)
    entry = QueueEntry(event, core.download_request(pipe, event, material.session))
    if entry.download_reply:
        await pipe.execute()  # the download must start before we wait for it
    await steering.send(core, entry, material.run_id, material.runner_id)


async def interrupt_run(core: Core, run_id: str, session_key: str) -> None:
    """Set the flag, then look for a runner: either we see its id, or it sees the flag at claim."""
    pipe = core.redis.pipeline(transaction=False)
    pipe.hset(core.keys.run(run_id), "cancel_requested", "1")
    pipe.hget(core.keys.run(run_id), "runner_id")
    _, runner_id = await pipe.execute()
    if runner_id:
        control = RunControl(
            control_id=f"interrupt:{run_id}", run_id=run_id, session_key=session_key, kind="interrupt"
        )
        await core.publish_control(text(runner_id), control)


async def active_run_facts(core: Core, turn: TurnState) -> tuple[bool, bool, str]:
    """(claimed, stopping, runner id) of the session's active run."""
    runner_id, cancelled = await core.redis.hmget(
        core.keys.run(turn.active_run_id), "runner_id", "cancel_requested"
    )
    return bool(runner_id), text(cancelled or b"") == "1", text(runner_id or b"")


def _busy_text(core: Core) -> str:
    return commands.BUSY.format(limit=core.settings.session_queue_limit)


_SAYINGS: dict[str, Callable[[Core], str]] = {
    "busy": _busy_text,
    "stopped": lambda _core: commands.STOPPED,
    "nothing_running": lambda _core: commands.NOTHING_RUNNING,
}
