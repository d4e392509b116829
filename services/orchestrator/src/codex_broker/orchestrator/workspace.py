"""Workspace mode: a home channel's operator session, its delegation tools, and the task
sessions it delegates to (decisions in workspace_rules.py; this module only does the I/O).

- Every message in a home channel goes to the operator session — the home thread, opened by the
  channel's first message — except messages in a task thread, which continue that task.
- Only the operator session's runs carry the delegation tools; a tool call of any other session
  is refused here (and Codex itself answers "unsupported call" to a thread that has none).
- A task session is a normal session posting into its own thread of the home channel; its cwd is
  the delegation's directory under WORKSPACE_ROOT.
- A finished task's result goes back by its mode; a wake is a `job_callback` InboundEvent to the
  operator session (queued behind a running turn like every job callback, never steered in).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from codex_broker.libs.contracts import (
    CHANNEL_SCOPE,
    Actor,
    Button,
    Coordinates,
    DynamicTool,
    EphemeralPayload,
    InboundEvent,
    JobCallback,
    OutboundPayload,
    PostPayload,
    RpcReply,
    RunEvent,
    ToolCall,
    encode,
)
from codex_broker.libs.keys import session_key_of
from codex_broker.libs.records import RunRecord
from codex_broker.libs.rpc import RpcTimeout, send_reply
from codex_broker.orchestrator import render
from codex_broker.orchestrator import workspace_rules as rules
from codex_broker.orchestrator.core import Core, as_str_dict, now_ms, text, wait_result

log = logging.getLogger(__name__)
T = TypeVar("T")

THREAD_POST_TIMEOUT_S = 15.0
OPERATOR_ACTOR = "workspace-operator"


# ---- routing ----------------------------------------------------------------------------------


async def route(core: Core, event: InboundEvent) -> InboundEvent:
    """A home channel's message, as the operator session's (or unchanged: elsewhere, task
    threads). A message may open the home thread; a command or a button given at the channel
    scope (a platform command outside a thread, a click in a home channel that is the operator's
    own surface, as on Discord) only joins the home thread there is."""
    cfg = core.workspace
    if (
        not cfg.enabled
        or event.kind == "job_callback"
        or event.actor.is_bot  # our own posts echoed back must not claim the home thread
        or not cfg.is_home(event.platform, event.conversation_id)
    ):
        return event
    root = event.root_message_id
    if event.kind == "action" and root != CHANNEL_SCOPE:
        return event  # buttons keep their own thread
    if root != CHANNEL_SCOPE:
        task_key = core.keys.workspace_task(session_key_of(event.platform, event.conversation_id, root))
        if await core.redis.exists(task_key):
            return event
    # only a message may open the home thread: its own id at the channel scope, else its thread's
    claim = (event.message_id if root == CHANNEL_SCOPE else root) if event.kind == "message" else ""
    home_key = core.keys.workspace_home(event.platform, event.conversation_id)
    pipe = core.redis.pipeline(transaction=False)
    if claim:
        pipe.set(home_key, claim, nx=True)
    pipe.get(home_key)
    *_, home = await pipe.execute()
    if not home:
        return event
    update: dict[str, Any] = {"root_message_id": text(home)}
    if event.kind == "message":
        update["is_mention"] = True
    return event.model_copy(update=update)


async def operator_root(core: Core, coords: Coordinates) -> str | None:
    if not core.workspace.enabled or not core.workspace.is_home(coords.platform, coords.conversation_id):
        return None
    home = await core.redis.get(core.keys.workspace_home(coords.platform, coords.conversation_id))
    return text(home) if home else None


async def is_operator(core: Core, coords: Coordinates) -> bool:
    return coords.root_message_id == await operator_root(core, coords)


async def run_tools(core: Core, coords: Coordinates, instructions: str | None) -> dict[str, Any]:
    """The RunRequest fields only the operator's runs get: its tools, and its framing."""
    if instructions is None or not await is_operator(core, coords):
        return {}  # tools go with thread/start only: Codex keeps them with the thread
    framing = rules.OPERATOR_INSTRUCTIONS.format(root=core.workspace.root)
    tools: list[DynamicTool] = list(rules.TOOLS)
    return {"dynamic_tools": tools, "developer_instructions": f"{instructions}\n\n{framing}"}


# ---- delegation state -------------------------------------------------------------------------


async def load_all(core: Core, operator_key: str) -> list[rules.Delegation]:
    raw = as_str_dict(await core.redis.hgetall(core.keys.workspace_delegations(operator_key)))
    return [rules.Delegation.model_validate_json(v) for v in raw.values()]


async def load(core: Core, operator_key: str, delegation_id: str) -> rules.Delegation | None:
    raw = await core.redis.hget(core.keys.workspace_delegations(operator_key), delegation_id)
    return rules.Delegation.model_validate_json(raw) if raw else None


def save(core: Core, pipe: Any, operator_key: str, d: rules.Delegation) -> None:
    pipe.hset(core.keys.workspace_delegations(operator_key), d.id, d.model_dump_json())


Change = Callable[[dict[str, rules.Delegation]], tuple[list[rules.Delegation], T]]


async def update(core: Core, operator_key: str, change: Change[T]) -> T:
    """Read, change and write the operator's delegations as one optimistic transaction: tasks
    of one operator end in their own sessions, concurrently with each other and with the
    operator's tool calls (two group members ending at once must not both see the other
    running, a flush must not clear a result recorded meanwhile)."""
    key = core.keys.workspace_delegations(operator_key)

    async def attempt(pipe: Any) -> T:
        raw = as_str_dict(await pipe.hgetall(key))
        records = {k: rules.Delegation.model_validate_json(v) for k, v in raw.items()}
        changed, result = change(records)
        pipe.multi()
        for d in changed:
            pipe.hset(key, d.id, d.model_dump_json())
        return result

    result: T = await core.redis.transaction(attempt, key, value_from_callable=True)
    return result


# ---- tool calls -------------------------------------------------------------------------------


async def handle_tool_call(core: Core, event: RunEvent) -> None:
    call = event.tool_call
    if call is None:
        return
    done_key = core.keys.idempotency("ws-tool", call.call_id)
    earlier = await core.redis.get(done_key)
    if earlier is not None:  # a redelivered call: the same answer, nothing done twice
        await send_reply(core.redis, call.reply_to, RpcReply.model_validate_json(earlier))
        return
    reply = await _answer(core, event, call)
    pipe = core.redis.pipeline(transaction=False)
    pipe.set(done_key, encode(reply), ex=86_400)
    await pipe.execute()
    await send_reply(core.redis, call.reply_to, reply)


async def _answer(core: Core, event: RunEvent, call: ToolCall) -> RpcReply:
    session = as_str_dict(await core.redis.hgetall(core.keys.session(event.session_key)))
    coords = _coords(session)
    if coords is None or not await is_operator(core, coords):
        log.warning("delegation tool refused outside the operator session", extra={"tool": call.tool})
        return _refused(call, "delegation tools belong to the workspace operator session only")
    if call.tool not in rules.TOOL_NAMES:
        return _refused(call, f"unknown tool {call.tool}")
    try:
        body = await _TOOLS[call.tool](core, event, call, coords)
    except _Refusal as exc:
        return _refused(call, str(exc))
    return RpcReply(request_id=call.call_id, ok=True, result={"text": json.dumps(body, ensure_ascii=False)})


class _Refusal(Exception):
    pass


def _refused(call: ToolCall, why: str) -> RpcReply:
    return RpcReply(request_id=call.call_id, ok=False, error=why)


def _coords(session: dict[str, str]) -> Coordinates | None:
    if not session.get("platform"):
        return None
    return Coordinates(
        platform=session["platform"],  # type: ignore[arg-type]
        conversation_id=session["conversation_id"],
        root_message_id=session["root_message_id"],
    )


async def _list(core: Core, event: RunEvent, call: ToolCall, coords: Coordinates) -> Any:
    delegations = await load_all(core, event.session_key)
    return {"delegations": [rules.summary(d) for d in sorted(delegations, key=lambda d: d.created_ms)]}


async def _start(core: Core, event: RunEvent, call: ToolCall, coords: Coordinates) -> Any:
    root = core.workspace.root
    assert root is not None
    args = call.arguments
    cwd = rules.validate_cwd(
        args.get("cwd") if isinstance(args, dict) else None, root, data_root=core.data_root
    )
    if isinstance(cwd, str):
        raise _Refusal(cwd)
    prompt = rules.string_arg(args, "prompt")
    if prompt is None:
        raise _Refusal("prompt is required")
    mode = rules.mode_arg(args)
    if mode not in rules.MODES:
        raise _Refusal(mode)
    delegation_id = rules.delegation_id(call.call_id)
    title = rules.title_of(args, prompt)
    thread_root = await _open_thread(core, coords, event.session_key, delegation_id, title)
    task_key = session_key_of(coords.platform, coords.conversation_id, thread_root)
    record = rules.new_record(
        call.call_id,
        arguments=args,
        cwd=cwd,
        prompt=prompt,
        mode=mode,  # type: ignore[arg-type]
        session_key=task_key,
        root=thread_root,
        now=now_ms(),
    )
    requester = await _requester(core, event)
    pipe = core.redis.pipeline(transaction=False)
    save(core, pipe, event.session_key, record)
    pipe.set(core.keys.workspace_task(task_key), json.dumps({"operator": event.session_key, "id": record.id}))
    # the task session's record, with the delegation's cwd as its workspace (sealing lets a run
    # have a directory outside DATA_ROOT, as an admin's /cd does)
    session_event = _task_message(coords, thread_root, f"ws-start:{record.id}", prompt, requester)
    await core.create_session(session_event, defer=pipe, profile=await core.active_profile())
    pipe.hset(core.keys.session(task_key), "workspace", str(cwd))
    core.add_timeline(pipe, event.session_key, "workspace", f"delegated {record.id} in {cwd}")
    await pipe.execute()
    await core.bus.publish(core.keys.inbound_stream_for(task_key), session_event)
    await _home_status(core, coords, event.session_key, record, f"ws-status:{record.id}:start")
    return {"started": rules.summary(record)}


async def _open_thread(
    core: Core, coords: Coordinates, operator_key: str, delegation_id: str, title: str
) -> str:
    """The task's own thread: a top-level message of the home channel (its id is the thread's
    root). A deterministic action id: a retried call does not open a second thread."""
    top = Coordinates(
        platform=coords.platform, conversation_id=coords.conversation_id, root_message_id=CHANNEL_SCOPE
    )
    reply_to = core.keys.rpc_reply(f"ws-thread-{delegation_id}-{now_ms()}")
    post = PostPayload(text=f"🧵 *Delegation `{delegation_id}`*: {title}")
    action = render.outbound(top, operator_key, post, f"ws-thread:{delegation_id}", reply_to=reply_to)
    await core.bus.publish(core.keys.outbound_stream(coords.platform), action)
    try:
        result = await wait_result(core.redis, reply_to, timeout_s=THREAD_POST_TIMEOUT_S)
    except RpcTimeout as exc:
        raise _Refusal("could not open the task thread (the chat platform did not answer in time)") from exc
    if not result.ok or not result.message_ids:
        raise _Refusal(f"could not open the task thread: {result.error or 'no message id'}")
    return result.message_ids[0]


async def _requester(core: Core, event: RunEvent) -> Actor:
    """Who asked the operator: the delegated messages act for them (their access applies). A
    turn a wake started has no person behind it: then someone who spoke in the home thread."""
    pipe = core.redis.pipeline(transaction=False)
    pipe.hmget(core.keys.run(event.run_id), "requester", "requester_name")
    pipe.hgetall(core.keys.session_participants(event.session_key))
    (requester, name), participants = await pipe.execute()
    user, display = (text(requester), text(name or requester)) if requester else ("", "")
    if user in ("", rules.WAKE_ACTOR):
        people = as_str_dict(participants)
        user, display = next(iter(sorted(people.items())), (OPERATOR_ACTOR, OPERATOR_ACTOR))
    return Actor(id=user, display_name=f"operator for {display or user}")


def _task_message(coords: Coordinates, root: str, event_id: str, body: str, actor: Actor) -> InboundEvent:
    return InboundEvent(
        event_id=event_id,
        platform=coords.platform,
        conversation_id=coords.conversation_id,
        root_message_id=root,
        message_id="",
        actor=actor,
        text=body,
        is_mention=True,
    )


async def _existing(core: Core, event: RunEvent, call: ToolCall) -> rules.Delegation:
    delegation_id = rules.string_arg(call.arguments, "id", limit=64)
    found = await load(core, event.session_key, delegation_id) if delegation_id else None
    if found is None:
        raise _Refusal(f"no delegation {delegation_id!r}; list_delegations shows them")
    return found


async def _send(core: Core, event: RunEvent, call: ToolCall, coords: Coordinates) -> Any:
    await _existing(core, event, call)
    body = rules.string_arg(call.arguments, "message") or rules.string_arg(call.arguments, "prompt")
    if body is None:
        raise _Refusal("message is required")
    delegation_id = str(call.arguments["id"])

    def running(records: dict[str, rules.Delegation]) -> tuple[list[rules.Delegation], rules.Delegation]:
        d = records[delegation_id].model_copy(
            update={"status": "running", "pending": False, "updated_ms": now_ms()}
        )
        return [d], d

    d = await update(core, event.session_key, running)
    message = _task_message(
        coords, d.root_message_id, f"ws-send:{call.call_id}", body, await _requester(core, event)
    )
    await core.bus.publish(core.keys.inbound_stream_for(d.session_key), message)
    return {"sent": rules.summary(d)}


async def _read(core: Core, event: RunEvent, call: ToolCall, coords: Coordinates) -> Any:
    d = await _existing(core, event, call)
    return {**rules.summary(d), "latest_answer": d.last_answer}


async def _group(core: Core, event: RunEvent, call: ToolCall, coords: Coordinates) -> Any:
    group = rules.group_of(call.arguments)
    ids = call.arguments.get("ids") if isinstance(call.arguments, dict) else None
    if group is None or not isinstance(ids, list) or not ids:
        raise _Refusal("group and ids are required")
    mode = rules.mode_arg(call.arguments, default="wake_on_group")
    if mode not in rules.MODES:
        raise _Refusal(mode)

    def regroup(records: dict[str, rules.Delegation]) -> tuple[list[rules.Delegation], list[str]]:
        missing = [i for i in ids if i not in records]
        if missing:
            return [], missing
        return [records[i].model_copy(update={"group": group, "mode": mode}) for i in ids], []

    missing = await update(core, event.session_key, regroup)
    if missing:
        raise _Refusal(f"no delegations {missing}")
    return {"group": group, "ids": ids, "mode": mode}


async def _flush(core: Core, event: RunEvent, call: ToolCall, coords: Coordinates) -> Any:

    def taken(records: dict[str, rules.Delegation]) -> tuple[list[rules.Delegation], list[rules.Delegation]]:
        pending = sorted((d for d in records.values() if d.pending), key=lambda d: d.created_ms)
        return [d.model_copy(update={"pending": False}) for d in pending], pending

    pending = await update(core, event.session_key, taken)
    return {"results": [{**rules.summary(d), "answer": d.last_answer} for d in pending]}


_TOOLS: dict[str, Any] = {
    "list_delegations": _list,
    "start_delegation": _start,
    "resume_delegation": _send,
    "send_delegation": _send,
    "read_delegation": _read,
    "group_delegations": _group,
    "flush_delegation_results": _flush,
}


# ---- results ----------------------------------------------------------------------------------


async def on_run_finished(core: Core, run: RunRecord, run_id: str, outcome: str, answer: str | None) -> None:
    """A run ended: if it was a delegation's, record its result and return it by the mode."""
    if not core.workspace.enabled or not core.workspace.is_home(run.platform, run.conversation_id):
        return
    link = await core.redis.get(core.keys.workspace_task(run.session_key))
    if link is None:
        return
    owner = json.loads(text(link))
    operator_key, delegation_id = owner["operator"], owner["id"]

    def record(records: dict[str, rules.Delegation]) -> tuple[list[rules.Delegation], Any]:
        current = records.get(delegation_id)
        if current is None or current.last_run_id == run_id:
            return [], None  # unknown, or this run's result was recorded already (a redelivered end)
        d = rules.finished(current, outcome, answer, run_id, now_ms())
        group = [d if x.id == d.id else x for x in records.values() if d.group and x.group == d.group] or [d]
        action = rules.on_finished(d, group)
        members = rules.wake_members(d, group) if action == "wake" else []
        delivered = [m.model_copy(update={"pending": False}) for m in members]
        return (delivered or [d]), (d, action, members)

    outcome_of = await update(core, operator_key, record)
    if outcome_of is None:
        return
    d, action, members = outcome_of
    operator = _operator_coords(run, operator_key)
    if action != "none":
        await _home_status(core, operator, operator_key, d, f"ws-status:{d.id}:{run_id}")
    if members:
        await _wake(core, operator, operator_key, members, f"ws-wake:{d.id}:{run_id}")


def _operator_coords(run: RunRecord, operator_key: str) -> Coordinates:
    platform, conversation, root = operator_key.split(":", 2)
    return Coordinates(platform=platform, conversation_id=conversation, root_message_id=root)  # type: ignore[arg-type]


async def _home_status(
    core: Core, operator: Coordinates, operator_key: str, d: rules.Delegation, action_id: str
) -> None:
    await core.reply(operator, operator_key, action_id, rules.status_line(d))


async def _wake(
    core: Core, operator: Coordinates, operator_key: str, members: list[rules.Delegation], event_id: str
) -> None:
    ok = all(m.status == "completed" for m in members)
    wake = InboundEvent(
        event_id=event_id,
        platform=operator.platform,
        conversation_id=operator.conversation_id,
        root_message_id=operator.root_message_id,
        kind="job_callback",
        actor=Actor(id=rules.WAKE_ACTOR, display_name="workspace", is_bot=True),
        job=JobCallback(
            job_id=rules.WAKE_JOB_PREFIX + ",".join(m.id for m in members),
            status="complete" if ok else "fail",
            summary=rules.result_block(members),
        ),
    )
    await core.bus.publish(core.keys.job_callback_stream_for(operator_key), wake)


async def answer_threads(core: Core, event: InboundEvent) -> str | None:
    """The `threads` command. Outside a home channel its answer text; in one, the list is posted
    here with an Open button per delegation (a command's text answer carries no buttons) and
    None is returned: nothing more to answer."""
    home = await operator_root(core, event.coords)
    if home is None:
        return "`threads` lists delegated sessions of a workspace home channel; this is not one."
    operator_key = session_key_of(event.platform, event.conversation_id, home)
    delegations = await load_all(core, operator_key)
    await _answer_with_buttons(
        core, event, rules.threads_text(delegations), rules.thread_buttons(delegations)
    )
    return None


async def open_thread(core: Core, event: InboundEvent) -> None:
    """A threads list's Open button: the delegation's thread, linked for the presser alone."""
    delegation_id = event.action.value if event.action else ""
    home = await operator_root(core, event.coords)
    operator_key = session_key_of(event.platform, event.conversation_id, home) if home else None
    found = await load(core, operator_key, delegation_id) if operator_key else None
    if found is None:
        body, thread = f"No delegation `{delegation_id}` in this home channel.", ""
    else:
        body, thread = rules.open_text(found), found.root_message_id
    await _answer_with_buttons(core, event, body, [], ephemeral=True, thread=thread)


async def _answer_with_buttons(
    core: Core,
    event: InboundEvent,
    body: str,
    buttons: list[Button],
    *,
    ephemeral: bool | None = None,
    thread: str = "",
) -> None:
    """Ephemeral for a platform command (or when asked), else in the thread; the action ids
    are those of a command's answer, so a redelivered event answers once. `thread`: a thread of
    this channel the ephemeral answer links to (the platform's own link)."""
    if event.reply_ephemeral if ephemeral is None else ephemeral:
        payload: OutboundPayload = EphemeralPayload(
            user_id=event.actor.id, text=body, buttons=buttons, thread=thread
        )
        action_id = f"ephemeral:{event.event_id}"
    else:
        payload, action_id = PostPayload(text=body, buttons=buttons), f"reply:{event.event_id}"
    action = render.outbound(event.coords, event.session_key, payload, action_id)
    await core.bus.publish(core.keys.outbound_stream(event.platform), action)
