"""A turn's RunRequest: built from the session, its queued messages and what other services
fetched for them (downloads, thread history), and published with its run record, status and
first live-view snapshot in the caller's round trip. turns.py decides when; this module only
builds and writes."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from codex_broker.libs import paths, session_token
from codex_broker.libs.contracts import Attachment, Coordinates, HistoryMessage, RunRequest, encode
from codex_broker.libs.records import RunRecord
from codex_broker.libs.rpc import RpcTimeout
from codex_broker.orchestrator import audit_hooks, channel_defaults, metrics, prompt, render, workspace
from codex_broker.orchestrator.core import (
    RUN_TTL_S,
    Core,
    QueueEntry,
    backfilled_member,
    coords_of,
    flag,
    now_ms,
    wait_result,
)

log = logging.getLogger(__name__)


def add_backfilled(core: Core, pipe: Any, session_key: str, messages: list[HistoryMessage]) -> None:
    """The messages a turn's backfill gave Codex as history: their own late delivery (a
    mention whose first delivery died with an ingress, re-sent after a later message of the
    thread started the session) must not make Codex answer them a second time."""
    marked = {backfilled_member(m.message_id): now_ms() for m in messages if m.message_id}
    if marked:
        pipe.zadd(core.keys.session_seen(session_key), marked)


def session_context(core: Core, session: dict[str, str], coords: Coordinates) -> prompt.SessionContext:
    return prompt.SessionContext(
        platform=coords.platform,
        conversation_id=coords.conversation_id,
        root_message_id=coords.root_message_id,
        workspace=session.get("workspace", ""),
        repos_root=str(paths.repos_root(core.data_root)),
        api_base=core.settings.api_base,
        token_file=str(session_token.token_file(core.data_root, coords.session_key)),
    )


def count_started(request: RunRequest, received_at: float | None) -> None:
    metrics.RUNS_STARTED.labels(thread="resume" if request.thread_id else "new").inc()
    if received_at is not None:
        metrics.INBOUND_TO_RUN_SECONDS.observe(max(0.0, time.monotonic() - received_at))
    log.info("run started", extra={"session_key": request.session_key, "run_id": request.run_id})


async def build(
    core: Core, run_id: str, session_key: str, session: dict[str, str], entries: list[QueueEntry], pipe: Any
) -> RunRequest:
    coords = coords_of(session, session_key)
    params = await run_params(core, session, session_key, coords)
    session = {**session, "workspace": params.workspace}  # the prompt names where Codex works
    ctx = session_context(core, session, coords)
    files = await collect_downloads(core, entries)
    backfill = await collect_backfill(core, session_key, session)
    if backfill:
        add_backfilled(core, pipe, session_key, backfill)
    thread_id = session.get("thread_id") or None
    instructions = None
    if thread_id is None:
        instructions = prompt.developer_instructions(ctx, team_memory(core))
    events = [e.event for e in entries]
    inputs = prompt.run_inputs(prompt.turn_text(ctx, events, files, backfill), files)
    operator = await workspace.run_tools(core, coords, instructions)
    instructions = operator.pop("developer_instructions", instructions)
    request = RunRequest(
        run_id=run_id,
        session_key=session_key,
        coords=coords,
        thread_id=thread_id,
        workspace=params.workspace,
        repo_url=params.repo_url,
        auth_profile=session.get("auth_profile") or core.settings.auth_profile,
        sandbox=params.sandbox,  # type: ignore[arg-type]
        network_access=flag(session.get("cfg_network"), core.settings.network_access),
        approval_policy=session.get("cfg_approval") or core.settings.approval_policy,  # type: ignore[arg-type]
        developer_instructions=instructions,
        model=params.model,
        input=inputs,
        **operator,
    )
    return request


async def run_params(
    core: Core, session: dict[str, str], session_key: str, coords: Coordinates
) -> channel_defaults.RunParams:
    """Workspace, model and sandbox from the channel's defaults (cached, see Cache) and the
    thread's picks."""
    defaults = await core.defaults_cache.get(core.redis, core.keys, coords.platform, coords.conversation_id)
    deployment = channel_defaults.Deployment(
        data_root=core.data_root, model=core.settings.codex_model, sandbox=core.settings.sandbox
    )
    return channel_defaults.resolve(defaults, session, session_key, deployment)


def add_publish(
    core: Core, pipe: Any, request: RunRequest, session: dict[str, str], entries: list[QueueEntry]
) -> None:
    """The run record, the RunRequest, then status and progress (the session's state change
    goes into the same round trip: turns.py)."""
    session_key, run_id, coords = request.session_key, request.run_id, request.coords
    last = entries[-1].event
    requester = next((e.event.actor for e in entries if e.event.kind != "job_callback"), last.actor)
    now = now_ms()
    view = render.ProgressView()
    start = render.snapshot(view, run_id, phase="start")
    view = render.emitted(view, now)
    record = RunRecord(
        session_key=session_key,
        status="queued",
        created_at_ms=now,
        platform=coords.platform,
        conversation_id=coords.conversation_id,
        root_message_id=coords.root_message_id,
        requester=requester.id,
        requester_name=requester.display_name or requester.id,
        message_id=last.message_id,
        epoch=int(session.get("epoch") or 0),
        # what the run's usage is priced and charted by (budget_gate.count)
        model=request.model or "",
        auth_profile=request.auth_profile,
        # the messages, for the Retry button of a lost turn (orchestrator/retry.py)
        inputs=json.dumps([QueueEntry(e.event).dump() for e in entries]),
        view=view.model_dump_json(),
    )
    pipe.hset(core.keys.run(run_id), mapping=dict[Any, Any](record.to_hash()))
    pipe.expire(core.keys.run(run_id), RUN_TTL_S)
    if session.get("backfill_reply"):
        pipe.hdel(core.keys.session(session_key), "backfill_reply", "backfill_requested_ms")
    pipe.hset(core.keys.session(session_key), "last_run_id", run_id)
    pipe.xadd(
        core.keys.runs_stream,
        {"data": encode(request)},
        maxlen=core.settings.stream_maxlen,
        approximate=True,
    )
    status = render.status_payload("running", last.message_id)
    core.add_outbound(pipe, render.outbound(coords, session_key, status, f"status:{run_id}:running"))
    core.add_outbound(pipe, render.outbound(coords, session_key, start, f"progress:{run_id}:0"))
    core.add_timeline(pipe, session_key, "run", f"run {run_id} started ({len(entries)} message(s))")
    audit_hooks.turn(core, pipe, request, [e.event for e in entries])


# ---- inputs that come from other services -------------------------------------------------
async def collect_downloads(core: Core, entries: list[QueueEntry]) -> dict[str, list[Attachment]]:
    async def one(entry: QueueEntry) -> tuple[str, list[Attachment]]:
        if not entry.download_reply:
            return entry.event.event_id, list(entry.event.attachments)
        try:
            result = await wait_result(
                core.redis, entry.download_reply, timeout_s=core.settings.download_timeout_s
            )
        except RpcTimeout:
            metrics.RPC_TIMEOUTS.labels(kind="download").inc()
            return entry.event.event_id, list(entry.event.attachments)
        if not result.ok:
            log.warning("attachment download failed", extra={"error": result.error})
        return entry.event.event_id, result.files or list(entry.event.attachments)

    results = await asyncio.gather(*(one(e) for e in entries))
    return dict(results)


async def collect_backfill(
    core: Core, session_key: str, session: dict[str, str]
) -> list[HistoryMessage] | None:
    reply_key = session.get("backfill_reply")
    if not reply_key:
        return None
    waited_s = (now_ms() - int(session.get("backfill_requested_ms") or now_ms())) / 1000
    timeout_s = max(0.05, core.settings.backfill_timeout_s - waited_s)
    try:
        result = await wait_result(core.redis, reply_key, timeout_s=timeout_s)
    except RpcTimeout:
        metrics.RPC_TIMEOUTS.labels(kind="history").inc()
        log.warning("history backfill timed out", extra={"session_key": session_key})
        return None
    messages = [m for m in result.messages if m.text.strip() or m.attachments]
    if not any(not m.actor.is_bot for m in messages):
        return None
    return messages[-core.settings.slack_initial_thread_history_count :]


def team_memory(core: Core) -> str | None:
    path = paths.team_home(core.data_root) / "AGENT.md"
    try:
        with path.open("rb") as handle:
            data = handle.read(core.settings.team_memory_max_bytes)
    except OSError:
        return None
    return data.decode("utf-8", errors="replace")
