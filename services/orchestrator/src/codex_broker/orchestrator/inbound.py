"""Inbound events: routing, policy, commands, buttons, and messages into the state machine."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from codex_broker.libs import coauthor_actions
from codex_broker.libs.contracts import (
    CHANNEL_SCOPE,
    ApprovalDecision,
    EphemeralPayload,
    InboundEvent,
    RunControl,
    UpdatePayload,
)
from codex_broker.libs.records import RunRecord, approval_fields
from codex_broker.orchestrator import (
    audit_hooks,
    budget_gate,
    commands,
    machine,
    metrics,
    picks,
    render,
    retry,
    turns,
    workspace,
)
from codex_broker.orchestrator.commands import Command
from codex_broker.orchestrator.core import (
    Core,
    as_str_dict,
    backfilled_member,
    now_ms,
    text,
    today,
)
from codex_broker.orchestrator.policy import access_denial, route_message, validate_workspace

log = logging.getLogger(__name__)

CONFIG_KEYS = {
    "sandbox": ("cfg_sandbox", ("read-only", "workspace-write", "danger-full-access")),
    "network": ("cfg_network", ("on", "off")),
    "approval": ("cfg_approval", ("never", "on-request")),
    "model": ("cfg_model", ()),
}


async def handle_inbound(core: Core, event: InboundEvent, *, received_at: float | None = None) -> None:
    event = await workspace.route(core, event)
    session_key = event.session_key
    pipe = core.redis.pipeline(transaction=False)
    pipe.zscore(core.keys.session_seen(session_key), event.event_id)
    pipe.zscore(core.keys.session_seen(session_key), backfilled_member(event.message_id or event.event_id))
    pipe.hgetall(core.keys.session(session_key))
    pipe.hgetall(core.keys.session_state(session_key))
    pipe.llen(core.keys.session_queue(session_key))
    pipe.get(core.keys.active_auth_profile)  # for a new session: the profile activated now
    budget_gate.add_reads(pipe, core, event)
    seen, backfilled, raw_session, raw_state, queue_len, active_profile, *budget_reads = await pipe.execute()
    if seen is not None:
        metrics.INBOUND.labels(outcome="duplicate").inc()
        return
    session, state = as_str_dict(raw_session), as_str_dict(raw_state)
    if event.kind == "action":
        metrics.INBOUND.labels(outcome="action").inc()
        await handle_action(core, event, session, state)
        await _mark_seen(core, event)
        return
    route = route_message(event, session_exists=bool(session), mention_required=core.policy.mention_required)
    if route == "ignore":
        metrics.INBOUND.labels(outcome="ignored").inc()
        return
    denial = access_denial(event, core.policy)
    if denial is not None:
        metrics.INBOUND.labels(outcome="refused").inc()
        await refuse(core, event, denial)
        await _mark_seen(core, event)
        return
    command = (
        commands.parse_command(event.text, mentioned=event.is_mention or event.is_direct)
        if event.kind == "message"
        else None
    )
    if command is None and event.reply_ephemeral:
        command = Command("help")  # a platform command we do not know: say what there is
    if command is not None:
        metrics.INBOUND.labels(outcome="command").inc()
        metrics.COMMANDS.labels(command=command.name).inc()
        await handle_command(core, event, command, session, state, int(queue_len))
        await _mark_seen(core, event)
        return
    if backfilled is not None and event.kind == "message":
        # its first delivery died with an ingress; a later message's backfill gave it to Codex
        metrics.INBOUND.labels(outcome="backfilled").inc()
        log.info("message already given to Codex as thread history", extra={"event_id": event.event_id})
        await _mark_seen(core, event)
        return
    if await budget_gate.refused(core, event, state, budget_reads):
        await _mark_seen(core, event)
        return
    pipe = core.redis.pipeline(transaction=False)
    if not session:
        profile = text(active_profile) if active_profile else core.settings.auth_profile
        session = await core.create_session(event, defer=pipe, profile=profile)
    await handle_message(core, event, session, state, int(queue_len), pipe=pipe, received_at=received_at)


async def _mark_seen(core: Core, event: InboundEvent) -> None:
    pipe = core.redis.pipeline(transaction=False)
    core.add_seen(pipe, event.session_key, event.event_id)
    await pipe.execute()


# ---- messages ---------------------------------------------------------------------------------


async def handle_message(
    core: Core,
    event: InboundEvent,
    session: dict[str, str],
    state: dict[str, str],
    queue_len: int,
    *,
    pipe: Any,
    received_at: float | None,
) -> None:
    """`pipe` may hold the new session's record: it goes out with the first write of the action."""
    session_key = event.session_key
    before = turns.session_of(state, queue_len)
    rule_set = turns.rules(core)
    steerable = event.kind != "job_callback"  # a job's report waits for the next turn
    claimed, stopping, runner_id = False, False, ""
    if steerable and machine.needs_run_facts(before, rule_set):
        claimed, stopping, runner_id = await turns.active_run_facts(core, before.turn)
    arrival = machine.MessageIn(now_ms(), steerable=steerable, run_claimed=claimed, run_stopping=stopping)
    decision = machine.decide(before, arrival, rule_set)
    metrics.INBOUND.labels(outcome=message_outcome(decision)).inc()
    if machine.StartRun(direct=True) in decision.effects:
        await turns.start_direct(core, event, session, before, pipe=pipe, received_at=received_at)
        return
    material = turns.Material(
        event=event,
        session=session,
        runner_id=runner_id,
        run_id=before.turn.active_run_id,
        say=lambda body: _say_busy(core, event, body),
    )
    await turns.apply(core, session_key, before, decision, material, pipe=pipe)


def message_outcome(decision: machine.Decision) -> str:
    """The metrics label of a message's decision."""
    kinds = {type(effect) for effect in decision.effects}
    if machine.Say in kinds:
        return "busy"
    if machine.SteerIn in kinds:
        return "steer"
    if machine.StartRun in kinds:
        return "start"
    if machine.ScheduleStart in kinds:
        return "debounce"
    return "queue"


async def _say_busy(core: Core, event: InboundEvent, body: str) -> None:
    """One 'busy' notice per session a minute: a burst past the bound is not answered each time."""
    if await core.first_time(f"busy:{event.session_key}", ttl_s=60):
        await core.reply(event.coords, event.session_key, f"reply:{event.event_id}", body)


# ---- policy -----------------------------------------------------------------------------------


async def refuse(core: Core, event: InboundEvent, denial: str) -> None:
    """One polite refusal per user and conversation per interval; silence after that."""
    key = f"refusal:{event.platform}:{event.conversation_id}:{event.actor.id}"
    if not await core.first_time(key, ttl_s=core.settings.refusal_interval_s):
        return
    await answer(core, event, commands.DM_REFUSAL if denial == "dm" else commands.REFUSAL)


# ---- commands ---------------------------------------------------------------------------------


async def handle_command(
    core: Core,
    event: InboundEvent,
    command: Command,
    session: dict[str, str],
    state: dict[str, str],
    queue_len: int,
) -> None:
    if command.name in commands.ADMIN_COMMANDS and not core.policy.is_admin(event.actor):
        form = f"-{command.name}" if event.platform in ("slack", "discord") else f"/{command.name}"
        await answer(core, event, commands.ADMIN_ONLY.format(name=form))
        return
    body = await command_body(core, event, command, session, state, queue_len)
    if body:
        await answer(core, event, body)


async def command_body(
    core: Core,
    event: InboundEvent,
    command: Command,
    session: dict[str, str],
    state: dict[str, str],
    queue_len: int,
) -> str | None:
    """Do the command; its answer (None: the run's end answers, as for a stop)."""
    # `threads` answers at a home channel's scope too (before anyone opened its home thread)
    if event.root_message_id == CHANNEL_SCOPE and command.name not in ("help", "usage", "budget", "threads"):
        return commands.IN_A_THREAD.format(name=command.name)  # a slash command outside a thread
    if command.name == "stop":
        return await stop_session(core, event.session_key, state, queue_len)
    if command.name == "new":
        await new_thread(core, event, session)
        return commands.NEW_THREAD
    if command.name == "status":
        return await status_body(core, event, session, state, queue_len)
    if command.name == "usage":
        return await usage_body(core, event, session)
    if command.name == "cd":
        return await change_dir(core, event, session, command.args)
    if command.name == "config":
        return await configure(core, event, session, command.args)
    if command.name == "budget":
        return await budget_gate.budget_command(core, event, command.args)
    if command.name in ("model", "repo"):
        return await picks.pick(core, event, session, command.name, command.args)
    if command.name == "threads":
        return await workspace.answer_threads(core, event)
    return commands.help_text(event.platform)


async def answer(core: Core, event: InboundEvent, body: str) -> None:
    """A command's answer: in the thread, or only to its author for a platform command."""
    if event.reply_ephemeral:
        await _ephemeral(core, event, body)
        return
    await core.reply(event.coords, event.session_key, f"reply:{event.event_id}", body)


async def stop_session(core: Core, session_key: str, state: dict[str, str], queue_len: int) -> str | None:
    """Interrupt the active turn and drop queued messages. None: the run's end says 'Stopped.'"""
    before = turns.session_of(state, queue_len)
    decision = machine.decide(before, machine.Stop(), turns.rules(core))
    said: list[str] = []

    async def keep(body: str) -> None:
        said.append(body)

    await turns.apply(core, session_key, before, decision, turns.Material(say=keep))
    return said[0] if said else None


async def new_thread(core: Core, event: InboundEvent, session: dict[str, str]) -> None:
    if not session:
        return
    pipe = core.redis.pipeline(transaction=False)
    pipe.hdel(core.keys.session(event.session_key), "thread_id")
    pipe.hincrby(core.keys.session(event.session_key), "epoch", 1)
    core.add_timeline(pipe, event.session_key, "command", "/new: next turn starts a fresh Codex thread")
    await pipe.execute()
    await core.revoke_token(event.session_key)


async def status_body(
    core: Core, event: InboundEvent, session: dict[str, str], state: dict[str, str], queue_len: int
) -> str:
    if not session:
        return commands.NO_SESSION
    facts = commands.StatusFacts(
        running=state.get("state") == "running",
        run_id=state.get("active_run_id"),
        queued=queue_len,
        thread_id=session.get("thread_id"),
        workspace=session.get("workspace"),
        input_tokens=int(session.get("input_tokens") or 0),
        output_tokens=int(session.get("output_tokens") or 0),
        total_tokens=int(session.get("total_tokens") or 0),
        waiting_for_slot=state.get("waiting") == "1",
    )
    extra = await picks.status(core, session, event.session_key, event.coords)
    return "\n".join([commands.status_text(facts), *extra])


async def usage_body(core: Core, event: InboundEvent, session: dict[str, str]) -> str:
    user_total = await core.redis.hget(
        core.keys.user_usage(event.platform, event.actor.id, today()), "total_tokens"
    )
    return commands.usage_text(
        int(session.get("total_tokens") or 0),
        int(session.get("input_tokens") or 0),
        int(session.get("output_tokens") or 0),
        int(text(user_total)) if user_total else 0,
        await budget_gate.usage_lines(core, event),
    )


async def change_dir(core: Core, event: InboundEvent, session: dict[str, str], args: str) -> str:
    result = validate_workspace(args, aliases=core.settings.cd_aliases, home=Path.home())
    if isinstance(result, str):
        return result
    if not session:
        session = await core.create_session(event)
    pipe = core.redis.pipeline(transaction=False)
    pipe.hset(core.keys.session(event.session_key), "workspace", str(result))
    pipe.hdel(core.keys.session(event.session_key), "thread_id")
    pipe.hincrby(core.keys.session(event.session_key), "epoch", 1)
    core.add_timeline(pipe, event.session_key, "command", f"/cd {result}")
    await pipe.execute()
    return f"Workspace set to `{result}`. The next message starts a fresh Codex thread there."


async def configure(core: Core, event: InboundEvent, session: dict[str, str], args: str) -> str:
    if not session:
        session = await core.create_session(event)
    parts = args.split()
    if len(parts) >= 2 and parts[0] in CONFIG_KEYS:
        field, allowed = CONFIG_KEYS[parts[0]]
        value = " ".join(parts[1:])
        if allowed and value not in allowed:
            return f"`{parts[0]}` must be one of: " + ", ".join(f"`{a}`" for a in allowed)
        stored = {"on": "1", "off": "0"}.get(value, value) if parts[0] == "network" else value
        await core.redis.hset(core.keys.session(event.session_key), field, stored)
        session[field] = stored
    elif parts:
        return "Usage: `/config` to show, `/config <sandbox|network|approval|model> <value>` to change."
    s = core.settings
    network = session.get("cfg_network")
    lines = [
        "*Session configuration*",
        f"• sandbox: `{session.get('cfg_sandbox') or s.sandbox}`",
        f"• network: `{'on' if (network == '1' if network else s.network_access) else 'off'}`",
        f"• approval: `{session.get('cfg_approval') or s.approval_policy}`",
        f"• model: `{session.get('cfg_model') or s.codex_model or 'default'}`",
        f"• workspace: `{session.get('workspace')}`",
        f"• message during run: `{s.message_during_run}`, debounce: {s.debounce_ms} ms",
    ]
    return "\n".join(lines)


# ---- buttons ----------------------------------------------------------------------------------


async def handle_action(
    core: Core, event: InboundEvent, session: dict[str, str], state: dict[str, str]
) -> None:
    action = event.action
    if action is None:
        return
    if access_denial(event, core.policy) is not None:
        await _ephemeral(core, event, commands.REFUSAL)
        return
    if action.action == "stop":
        run_id = action.run_id or action.value
        # the click's own thread decides the session: a button of another thread or of an earlier
        # run of this one never matches the active run here
        if run_id and run_id == state.get("active_run_id") and state.get("state") == "running":
            queue_len = int(await core.redis.llen(core.keys.session_queue(event.session_key)))
            await stop_session(core, event.session_key, state, queue_len)
        else:
            await _ephemeral(core, event, "That run has already ended.")
    elif action.action in ("approve", "deny"):
        await decide_approval(core, event, state, approve=action.action == "approve")
    elif action.action == "retry":
        # a second click, or a click on a run that cannot be retried, does nothing
        queued = int(await core.redis.llen(core.keys.session_queue(event.session_key)))
        await retry.handle_retry(core, event, state, queued)
    elif action.action in ("coauthor_open", "coauthor_submit"):
        await coauthor_actions.handle_coauthor_action(core.redis, core.keys, core.bus, event)
    elif action.action == "open_thread":
        await workspace.open_thread(core, event)


def approval_targets(run: RunRecord, run_id: str, session_key: str, state: dict[str, str]) -> bool:
    """An Approve / Deny click acts only on the active run of the thread the click came from."""
    return run.exists and run.session_key == session_key and run_id == state.get("active_run_id")


async def decide_approval(core: Core, event: InboundEvent, state: dict[str, str], *, approve: bool) -> None:
    action = event.action
    assert action is not None
    run_id, _, request_id = (action.value or "").partition(":")
    run_id = action.run_id or run_id
    request_id = action.request_id or request_id
    run = RunRecord.from_hash(await core.redis.hgetall(core.keys.run(run_id)) if run_id else {})
    if not request_id or not approval_targets(run, run_id, event.session_key, state):
        await _ephemeral(core, event, "That approval request is no longer open.")
        return
    if event.actor.id != run.requester and not core.policy.is_admin(event.actor):
        await _ephemeral(core, event, "Only the person who asked for this turn or an admin can decide.")
        return
    if run.approval(request_id) != "pending" or run.ended:
        await _ephemeral(core, event, "That approval request was already decided.")
        return
    decision = ApprovalDecision(
        request_id=request_id, decision="accept" if approve else "decline", decided_by=event.actor.id
    )
    control = RunControl(
        control_id=f"approval:{run_id}:{request_id}",
        run_id=run_id,
        session_key=event.session_key,
        kind="approval",
        approval=decision,
    )
    runner_id = run.runner_id
    if runner_id:
        await core.publish_control(runner_id, control)
    who = event.actor.display_name or event.actor.id
    verdict = "✅ Approved" if approve else "🚫 Denied"
    update = UpdatePayload(
        ref=f"approval:{run_id}:{request_id}", text=f"{verdict} by {who}: {run.approval_summary(request_id)}"
    )
    pipe = core.redis.pipeline(transaction=False)
    decided = approval_fields(request_id, "accept" if approve else "decline")
    pipe.hset(core.keys.run(run_id), mapping=dict[Any, Any](decided))
    core.add_outbound(
        pipe,
        render.outbound(event.coords, event.session_key, update, f"approval-decided:{run_id}:{request_id}"),
    )
    core.add_timeline(pipe, event.session_key, "approval", f"{verdict} by {who}")
    audit_hooks.approval_click(core, pipe, event, run_id, request_id, decision.decision)
    await pipe.execute()


async def _ephemeral(core: Core, event: InboundEvent, body: str) -> None:
    payload = EphemeralPayload(user_id=event.actor.id, text=body)
    await core.bus.publish(
        core.keys.outbound_stream(event.platform),
        render.outbound(event.coords, event.session_key, payload, f"ephemeral:{event.event_id}"),
    )
