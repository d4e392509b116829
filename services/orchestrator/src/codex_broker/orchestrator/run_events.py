"""RunEvents → session state, usage and what the thread shows.

Idempotency: the run hash keeps `last_seq`; an event with seq ≤ last_seq was handled before and
is skipped. Every outbound action id is derived from the run id (and the snapshot seq), so the
ingress drops the repeat if we crash after publishing but before recording `last_seq`.
`steer_rejected` is outside the sequence: its message is kept on the run under the control id
and removed in the round trip that puts it back, so a second delivery finds nothing to do.
"""

from __future__ import annotations

import logging
from typing import Any

from codex_broker.libs import run_fence
from codex_broker.libs.contracts import (
    Button,
    PostPayload,
    RunEvent,
    TokenUsage,
    UpdatePayload,
)
from codex_broker.libs.records import RunRecord, approval_fields
from codex_broker.libs.run_fence import FenceMode
from codex_broker.orchestrator import (
    audit_hooks,
    budget_gate,
    machine,
    metrics,
    render,
    retry,
    samples,
    steering,
    timers,
    turns,
    workspace,
)
from codex_broker.orchestrator.core import (
    USER_USAGE_TTL_S,
    Core,
    QueueEntry,
    as_str_dict,
    now_ms,
    text,
    today,
)

log = logging.getLogger(__name__)

ANSWERS_FIELD = "answers_posted"  # RunRecord.answers_posted: earlier answers already posted


def load_view(run: RunRecord) -> render.ProgressView:
    raw = run.view
    return render.ProgressView.model_validate_json(raw) if raw else render.ProgressView()


async def handle_run_event(core: Core, event: RunEvent) -> None:
    if event.kind == "steer_rejected":
        await requeue_rejected_steer(core, event)
        return
    if event.kind == "tool_call":
        await workspace.handle_tool_call(core, event)
        return
    # What the event will need of its session is read with the run, in one round trip (the
    # event names its session; the session's items run one at a time, so nothing changes it
    # between this read and our writes).
    pipe = core.redis.pipeline(transaction=False)
    pipe.hgetall(core.keys.run(event.run_id))
    if event.is_terminal:
        pipe.hgetall(core.keys.session_state(event.session_key))
        pipe.llen(core.keys.session_queue(event.session_key))
    elif event.kind == "turn_started":
        pipe.hget(core.keys.session(event.session_key), "epoch")
        pipe.lrange(core.keys.session_queue(event.session_key), 0, -1)
        pipe.hgetall(core.keys.session_state(event.session_key))
    raw_run, *session_reads = await pipe.execute()
    run = RunRecord.from_hash(raw_run)
    if not run.exists:
        log.warning("run event for an unknown run", extra={"run_id": event.run_id, "kind": event.kind})
        return
    if event.seq <= run.last_seq:
        return
    if run.ended:
        await core.redis.hset(core.keys.run(event.run_id), "last_seq", str(event.seq))
        return  # already ended (e.g. reported lost); a late event changes nothing
    same_session = run.session_key == event.session_key
    if event.kind == "answer":
        await post_answer(core, run, event)
        return
    if event.is_terminal:
        session_now = (as_str_dict(session_reads[0]), int(session_reads[1])) if same_session else None
        await finish_run(
            core,
            run,
            event.run_id,
            event.kind,  # type: ignore[arg-type]
            event.text,
            event.usage,
            seq=event.seq,
            session_now=session_now,
        )
        return
    pipe = core.redis.pipeline(transaction=False)
    run_key = core.keys.run(event.run_id)
    session_key = run.session_key
    started: tuple[machine.Session, machine.Decision, turns.Material] | None = None
    if event.kind == "accepted":
        accepted = RunRecord.encode_fields(status="running", runner_id=event.runner_id or None)
        pipe.hset(run_key, mapping=dict[Any, Any](accepted))
    elif event.kind == "turn_started":
        ids = RunRecord.encode_fields(turn_id=event.turn_id or None, thread_id=event.thread_id or None)
        if ids:
            pipe.hset(run_key, mapping=dict[Any, Any](ids))
        started = await _turn_started(core, run, event, session_reads if same_session else None)
        if event.thread_id:
            epoch = (
                session_reads[0]
                if same_session
                else await core.redis.hget(core.keys.session(session_key), "epoch")
            )
            _remember_thread(core, pipe, run, session_key, event.thread_id, epoch)
    elif event.kind == "token_usage" and event.usage is not None:
        pipe.hset(run_key, "usage", event.usage.model_dump_json())
    elif event.kind == "approval_requested" and event.approval is not None:
        _approval_prompt(core, pipe, run, event)
    elif event.kind == "approval_resolved" and event.decision is not None:
        _approval_resolved(core, pipe, run, event)
    audit_hooks.run_event(core, pipe, run, event)
    _progress(core, pipe, run, event)
    pipe.hset(run_key, "last_seq", str(event.seq))
    if started is None:
        await pipe.execute()
        return
    # messages that came while the run waited for its turn join it now, after `last_seq` is
    # recorded: a crash in between leaves them queued for the next turn
    await turns.apply(core, session_key, *started, pipe=pipe)


async def _turn_started(
    core: Core, run: RunRecord, event: RunEvent, reads: list[Any] | None
) -> tuple[machine.Session, machine.Decision, turns.Material]:
    """The turn machine's TurnStarted: the turn can be steered now."""
    session_key = run.session_key
    if reads is None:  # an event naming another session than its run's: read the run's own
        pipe = core.redis.pipeline(transaction=False)
        pipe.lrange(core.keys.session_queue(session_key), 0, -1)
        pipe.hgetall(core.keys.session_state(session_key))
        raw_queue, raw_state = await pipe.execute()
    else:
        raw_queue, raw_state = reads[1], reads[2]
    before = turns.session_of(raw_state, len(raw_queue))
    runner_id = run.runner_id or event.runner_id or ""
    steerable = sum(1 for raw in raw_queue if steering.steerable(QueueEntry.load(raw)))
    fact = machine.TurnStarted(
        event.run_id,
        run_claimed=bool(runner_id),
        run_stopping=run.cancel_requested == "1",
        steerable_queued=steerable,
    )
    material = turns.Material(raw_queue=list(raw_queue), runner_id=runner_id, run_id=event.run_id)
    return before, machine.decide(before, fact, turns.rules(core)), material


async def post_answer(core: Core, run: RunRecord, event: RunEvent) -> None:
    """An earlier complete answer of the turn (a steer took over after it): it goes to the
    thread as a message of its own, now, in order with the thread's other answers."""
    session_key = run.session_key
    before = await turns.read(core, session_key)
    decision = machine.decide(before, machine.AnswerReady(event.run_id, event.seq), turns.rules(core))
    pipe = core.redis.pipeline(transaction=False)
    for effect in decision.effects:
        if isinstance(effect, machine.PostInOrder):
            payload = PostPayload(text=event.text or "")
            core.add_outbound(pipe, render.outbound(run.coords, session_key, payload, effect.action_id))
    pipe.hincrby(core.keys.run(event.run_id), ANSWERS_FIELD, 1)
    pipe.hset(core.keys.run(event.run_id), mapping=RunRecord.encode_fields(last_seq=event.seq))
    core.add_timeline(pipe, session_key, "answer", (event.text or "")[:200])
    await turns.apply(core, session_key, before, decision, turns.Material(run_id=event.run_id), pipe=pipe)
    metrics.ANSWERS_POSTED.inc()


def _remember_thread(
    core: Core, pipe: Any, run: RunRecord, session_key: str, thread_id: str, epoch: Any
) -> None:
    """Keep the Codex thread for the next turn — unless /new or /cd came after this run started."""
    current = epoch.decode() if isinstance(epoch, bytes) else str(epoch or "0")
    if current == str(run.epoch):
        pipe.hset(core.keys.session(session_key), "thread_id", thread_id)


def _progress(core: Core, pipe: Any, run: RunRecord, event: RunEvent) -> None:
    view, change = render.apply_event(load_view(run), event)
    if change == "none":
        return
    now = now_ms()
    if render.should_emit(view, change, now_ms=now, interval_ms=core.settings.progress_interval_ms):
        _emit(core, pipe, run, event.run_id, view, now)
        return
    view = view.model_copy(update={"dirty": True})
    pipe.hset(core.keys.run(event.run_id), "view", view.model_dump_json())
    due = view.last_emit_ms + core.settings.progress_interval_ms
    timers.add_schedule(pipe, core.keys, "flush", run.session_key, due, only_earlier=True)


def _emit(core: Core, pipe: Any, run: RunRecord, run_id: str, view: render.ProgressView, now: int) -> None:
    payload = render.snapshot(view, run_id, phase="update")
    core.add_outbound(
        pipe, render.outbound(run.coords, run.session_key, payload, f"progress:{run_id}:{view.seq}")
    )
    pipe.hset(core.keys.run(run_id), "view", render.emitted(view, now).model_dump_json())
    metrics.PROGRESS_SNAPSHOTS.inc()


async def flush_progress(core: Core, session_key: str) -> None:
    """The coalescing timer: show answer text that arrived since the last snapshot."""
    run_id = await core.redis.hget(core.keys.session_state(session_key), "active_run_id")
    timers_pipe = core.redis.pipeline(transaction=False)
    timers.add_cancel(timers_pipe, core.keys, "flush", session_key)
    await timers_pipe.execute()
    if not run_id:
        return
    run_id = run_id.decode() if isinstance(run_id, bytes) else str(run_id)
    run = RunRecord.from_hash(await core.redis.hgetall(core.keys.run(run_id)))
    if not run.exists or run.ended:
        return
    view = load_view(run)
    if view.dirty:
        pipe = core.redis.pipeline(transaction=False)
        _emit(core, pipe, run, run_id, view, now_ms())
        await pipe.execute()


def _approval_prompt(core: Core, pipe: Any, run: RunRecord, event: RunEvent) -> None:
    approval = event.approval
    assert approval is not None
    ref = f"approval:{event.run_id}:{approval.request_id}"
    lines = [f"*Codex asks for approval* ({approval.kind}): {approval.summary}"]
    if approval.command:
        lines.append(f"```\n{approval.command[:1500]}\n```")
    if approval.paths:
        lines.append("Files: " + ", ".join(f"`{p}`" for p in approval.paths[:10]))
    if approval.reason:
        lines.append(f"Reason: {approval.reason[:500]}")
    lines.append(f"Only {run.requester_name or 'the requester'} or an admin can decide.")
    value = f"{event.run_id}:{approval.request_id}"
    payload = PostPayload(
        text="\n".join(lines),
        buttons=[
            Button(action="approve", label="Approve", value=value, style="primary"),
            Button(action="deny", label="Deny", value=value, style="danger"),
        ],
        ref=ref,
    )
    core.add_outbound(pipe, render.outbound(run.coords, run.session_key, payload, ref))
    fields = approval_fields(approval.request_id, "pending", approval.summary)
    pipe.hset(core.keys.run(event.run_id), mapping=dict[Any, Any](fields))


def _approval_resolved(core: Core, pipe: Any, run: RunRecord, event: RunEvent) -> None:
    decision = event.decision
    assert decision is not None
    if run.approval(decision.request_id) != "pending":
        return  # a person decided; that update is already out
    verdict = "✅ Approved" if decision.decision == "accept" else "🚫 Declined"
    by = f" by {decision.decided_by}" if decision.decided_by else " (no decision in time)"
    update = UpdatePayload(
        ref=f"approval:{event.run_id}:{decision.request_id}",
        text=f"{verdict}{by}: {run.approval_summary(decision.request_id)}",
    )
    core.add_outbound(
        pipe,
        render.outbound(
            run.coords,
            run.session_key,
            update,
            f"approval-decided:{event.run_id}:{decision.request_id}",
        ),
    )
    fields = approval_fields(decision.request_id, decision.decision)
    pipe.hset(core.keys.run(event.run_id), mapping=dict[Any, Any](fields))


async def finish_run(
    core: Core,
    run: RunRecord,
    run_id: str,
    outcome: render.Outcome,
    reason: str | None,
    usage: TokenUsage | None,
    *,
    seq: int | None,
    lost: bool = False,
    session_now: tuple[dict[str, str], int] | None = None,
) -> None:
    """The run ended: answer, status, usage, free the slot, and move the session on.

    `session_now`: the session's state and queue length, when the caller read them already."""
    session_key = run.session_key
    coords = run.coords
    if session_now is not None:
        before = turns.session_of(*session_now)
    else:
        before = await turns.read(core, session_key)
    final_posted = before.turn.codex_final_posted_run == run_id
    answered = run.answers_posted > 0
    final_text = render.final_text_for(
        outcome, reason, final_posted_by_codex=final_posted, answers_posted=answered
    )
    view = load_view(run)
    # earlier answers went out as messages: the last one follows them as a message too (a
    # view's answer area sits above them), the view keeps only its outcome
    answer_message = answered and outcome == "completed"
    last_action = f"final:{run_id}"
    if answer_message and final_text is not None:
        last_action = f"answer:{run_id}:last"
    decision = machine.decide(before, machine.RunEnded(run_id, now_ms(), last_action), turns.rules(core))
    pipe = core.redis.pipeline(transaction=False)
    if answer_message:
        view = view.model_copy(update={"answer": ""})
        if final_text is not None:
            answer = render.outbound(coords, session_key, PostPayload(text=final_text), last_action)
            core.add_outbound(pipe, answer)
            final_text = None
    finish = render.snapshot(view, run_id, phase="finish", outcome=outcome, final_text=final_text)
    if usage is None and run.usage:
        usage = TokenUsage.model_validate_json(run.usage)
    core.add_outbound(pipe, render.outbound(coords, session_key, finish, f"final:{run_id}"))
    status = render.status_payload(outcome, run.message_id)
    core.add_outbound(pipe, render.outbound(coords, session_key, status, f"status:{run_id}:{outcome}"))
    run_fields = RunRecord.encode_fields(
        orchestrator_outcome=outcome,
        status=outcome,
        ended_at_ms=now_ms(),
        view=render.emitted(view, now_ms()).model_dump_json(),
        last_seq=seq,
        error=reason[:1000] if reason and outcome == "failed" else None,
    )
    pipe.hset(core.keys.run(run_id), mapping=dict[Any, Any](run_fields))
    pipe.zrem(core.keys.active_runs, run_id)
    _count_usage(core, pipe, run, usage)
    if (reason or "").startswith("thread_not_found"):
        pipe.hdel(core.keys.session(session_key), "thread_id")
    pipe.hset(core.keys.session(session_key), "status", "resumable" if lost else "active")
    timers.add_cancel(pipe, core.keys, "flush", session_key)
    last_answer = reason if outcome == "completed" else None
    if last_answer:
        # the turn's last answer, an entry of its own like the earlier ones (the admin page's
        # transcript reads them); the run entry then names only the outcome
        core.add_timeline(pipe, session_key, "answer", last_answer)
    detail = f": {reason[:200]}" if reason and not last_answer else ""
    core.add_timeline(pipe, session_key, "run", f"run {run_id} {outcome}{detail}")
    # the next turn starts once the slot is freed and the line woken (below)
    now, later = turns.split_start(decision)
    await turns.apply(core, session_key, before, now, turns.Material(run_id=run_id), pipe=pipe)
    metrics.RUNS_FINISHED.labels(outcome=outcome).inc()
    log.info("run finished", extra={"session_key": session_key, "run_id": run_id, "outcome": outcome})
    core.in_background(samples.sample(core, run), "latency and queue sample")
    if usage is not None:
        core.in_background(budget_gate.after_run(core, run), "budget notice")
    await core.wake_waiters()
    if later:
        await turns.start_queued(core, session_key)
    await workspace.on_run_finished(core, run, run_id, outcome, reason)


def _count_usage(core: Core, pipe: Any, run: RunRecord, usage: TokenUsage | None) -> None:
    if usage is None:
        return
    session_key = run.session_key
    for name in ("input_tokens", "output_tokens", "total_tokens"):
        pipe.hincrby(core.keys.session(session_key), name, getattr(usage, name))
    requester = run.requester
    if requester:
        user_key = core.keys.user_usage(run.platform, requester, today())
        for name in ("input_tokens", "output_tokens", "total_tokens"):
            pipe.hincrby(user_key, name, getattr(usage, name))
        pipe.expire(user_key, USER_USAGE_TTL_S)
    budget_gate.count(core, pipe, run, usage)


async def requeue_rejected_steer(core: Core, event: RunEvent) -> None:
    """The runner could not steer a message into the turn: it becomes part of the next turn."""
    field = event.control_id or ""
    if not field.startswith(steering.STEER_PREFIX):
        log.warning("steer_rejected without a steer control id", extra={"run_id": event.run_id})
        return
    session_key = event.session_key
    pipe = core.redis.pipeline(transaction=False)
    pipe.hmget(core.keys.run(event.run_id), field, "cancel_requested")
    pipe.hgetall(core.keys.session_state(session_key))
    pipe.lrange(core.keys.session_queue(session_key), 0, -1)
    (stored, cancelled), raw_state, raw_queue = await pipe.execute()
    if stored is None:
        return  # put back already (a redelivery), or the run record expired
    entry = QueueEntry.load(stored)
    before = turns.session_of(raw_state, len(raw_queue))
    fact = machine.SteerRejected(
        message=entry.event.received_at,
        run_stopping=text(cancelled or b"") == "1",
        queued_arrivals=tuple(QueueEntry.load(raw).event.received_at for raw in raw_queue),
        now_ms=now_ms(),
    )
    decision = machine.decide(before, fact, turns.rules(core))
    who = entry.event.actor.display_name or entry.event.actor.id
    pipe = core.redis.pipeline(transaction=False)
    if machine.DropSteer() in decision.effects:
        core.add_timeline(pipe, session_key, "steer", f"steer not applied, turn stopped: {who}")
        metrics.STEERS_REJECTED.labels(result="dropped_stopped").inc()
    else:
        reason = (event.text or "")[:120]
        summary = f"steer rejected ({reason}); queued for the next turn: {who}"
        core.add_timeline(pipe, session_key, "steer", summary)
        metrics.STEERS_REJECTED.labels(result="requeued").inc()
        log.info(
            "rejected steer queued for the next turn",
            extra={"session_key": session_key, "run_id": event.run_id, "control_id": field},
        )
    material = turns.Material(stored=stored, raw_queue=list(raw_queue), run_id=event.run_id, control_id=field)
    await turns.apply(core, session_key, before, decision, material, pipe=pipe)


async def handle_run_lost(core: Core, run_id: str, reason: str, mode: FenceMode = "gone") -> None:
    """Reconciliation found the run orphaned: fence it, tell the thread, keep the session
    resumable. The fence (libs/run_fence.py) is what makes the notice true: a runner that reads
    the run's stream entry afterwards refuses it. An unclaimed run that a runner claimed after
    the reconciler looked is alive, not lost: it is left alone."""
    run = RunRecord.from_hash(await core.redis.hgetall(core.keys.run(run_id)))
    if not run.exists or run.ended:
        await core.redis.zrem(core.keys.active_runs, run_id)
        return
    fenced = await core.redis.eval(run_fence.FENCE_RUN, 1, core.keys.run(run_id), *run_fence.fence_args(mode))  # type: ignore[misc]
    if not int(fenced):
        log.info("run claimed after it was judged unclaimed; kept", extra={"run_id": run_id})
        return
    metrics.RUNS_LOST.labels(reason="unclaimed" if mode == "unclaimed" else "runner_gone").inc()
    await finish_run(core, run, run_id, "failed", reason, None, seq=None, lost=True)
    if run.inputs:  # runs from before the field: no button
        offer = retry.offer(run.coords, run.session_key, run_id)
        await core.bus.publish(core.keys.outbound_stream(offer.platform), offer)
