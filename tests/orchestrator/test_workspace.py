"""Workspace mode through the orchestrator, the real codex-runner and the real Codex (fake model),
on real Redis. The ingress is a stand-in that answers only the task-thread post's RPC (the Slack
e2e test drives the real one)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from codex_broker.libs.contracts import CHANNEL_SCOPE, OutboundResult, ProgressPayload, RunRequest
from codex_broker.libs.keys import Keys, session_key_of
from codex_broker.libs.rpc import send_reply
from codex_broker.orchestrator.workspace_rules import Delegation
from tests.codex_runner.harness import runner_settings
from tests.fakes.fake_model import FakeModel, function_call_reply, text_reply, tool_outputs, user_texts
from tests.helpers import wait_for
from tests.orchestrator.harness import Driver, make_settings, message
from tests.orchestrator.test_with_runner import runner_with_heartbeat

pytestmark = pytest.mark.codex

HOME = "CHOME"
TASK_ROOT = "task-thread-root"  # never a ts the harness hands out (its counter is session-wide)


@contextlib.asynccontextmanager
async def thread_opener(driver: Driver) -> AsyncIterator[list[str]]:
    """Answers the orchestrator's top-level posts (task threads) with a message id, as an
    ingress does; yields the action ids it answered."""
    answered: list[str] = []

    async def serve() -> None:
        while True:
            for action in await driver.outbound():
                if (
                    action.root_message_id == CHANNEL_SCOPE
                    and action.reply_to
                    and action.action_id not in answered
                ):
                    answered.append(action.action_id)
                    result = OutboundResult(action_id=action.action_id, ok=True, message_ids=[TASK_ROOT])
                    await send_reply(driver.redis, action.reply_to, result)
            await asyncio.sleep(0.05)

    task = asyncio.create_task(serve())
    try:
        yield answered
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def what_happened(driver: Driver, fake_model: FakeModel) -> str:
    """Runs, answers and model requests, for a failure message."""
    lines = [f"run {r.session_key} {r.run_id}: {run_text(r)[-300:]!r}" for r in await driver.run_requests()]
    lines += [
        f"out {a.action_id} @{a.root_message_id}: {_shown(a)!r}"
        for a in await driver.outbound()
        if a.payload.kind in ("post", "progress") and not a.action_id.startswith("progress:")
    ]
    lines += [
        f"model saw {user_texts(b)[-1][-200:]!r} outputs {tool_outputs(b)}" for b in fake_model.requests
    ]
    return "\n".join(lines)


def _shown(action: Any) -> str:
    return str(getattr(action.payload, "final_text", None) or getattr(action.payload, "text", ""))


def run_text(request: RunRequest) -> str:
    return "\n".join(i.text or "" for i in request.input)


async def test_operator_delegates_and_is_woken_with_the_result(
    driver: Driver,
    fake_model: FakeModel,
    codex_data_root: Path,
    tmp_path: Path,
    redis: Redis,
    keys: Keys,
    key_prefix: str,
    redis_url: str,
) -> None:
    root = tmp_path / "workspaces"
    (root / "proj").mkdir(parents=True)
    fake_model.script(
        function_call_reply(
            "start_delegation",
            {"cwd": "proj", "prompt": "TASK: write the report", "title": "report"},
            match="delegate please",
        ),
        text_reply("Delegated it.", match="delegate please"),
        # the task session tries the operator's tool: Codex itself refuses (it has no such tool)
        function_call_reply("start_delegation", {"cwd": "proj", "prompt": "again"}, match="TASK: write"),
        text_reply("REPORT DONE", match="TASK: write"),
        text_reply("The report is done.", match="<delegation_results>"),
    )
    settings = make_settings(
        key_prefix,
        redis_url,
        codex_data_root,
        workspace_home_channels=f"slack:{HOME}",
        workspace_root=str(root),
    )
    await driver.start(settings)
    async with (
        runner_with_heartbeat(runner_settings(codex_data_root, key_prefix, redis_url)),
        thread_opener(driver) as opened,
    ):
        first = message("delegate please", conversation=HOME, mention=False)
        await driver.inbound(first)
        operator_key = session_key_of("slack", HOME, first.root_message_id)
        try:
            wake_final = await driver.wait_outbound(
                lambda a: (
                    a.action_id.startswith("final:")
                    and isinstance(a.payload, ProgressPayload)
                    and a.payload.final_text == "The report is done."
                ),
                timeout_s=120,
                what="the operator's answer to the wake",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{await what_happened(driver, fake_model)}") from None
    assert wake_final.root_message_id == first.root_message_id  # in the home thread
    assert opened and opened[0].startswith("ws-thread:")

    requests = await driver.run_requests()
    operator_runs = [r for r in requests if r.session_key == operator_key]
    task_runs = [r for r in requests if r.session_key == session_key_of("slack", HOME, TASK_ROOT)]
    assert operator_runs[0].dynamic_tools and {t.name for t in operator_runs[0].dynamic_tools} >= {
        "start_delegation",
        "list_delegations",
    }
    assert len(task_runs) == 1 and not task_runs[0].dynamic_tools
    assert task_runs[0].workspace == str((root / "proj").resolve())
    wake = operator_runs[-1]
    assert "<delegation_results>" in run_text(wake) and "REPORT DONE" in run_text(wake)

    outbound = await driver.outbound()
    task_final = next(a for a in outbound if a.action_id == f"final:{task_runs[0].run_id}")
    assert task_final.root_message_id == TASK_ROOT  # the task answers in its own thread
    assert isinstance(task_final.payload, ProgressPayload) and task_final.payload.final_text == "REPORT DONE"
    home_posts = [
        a.payload.text
        for a in outbound
        if a.root_message_id == first.root_message_id and a.payload.kind == "post"
    ]  # type: ignore[union-attr]
    assert any("completed" in p and "report" in p for p in home_posts), home_posts

    task_requests = [r for r in fake_model.requests if any("TASK: write" in t for t in user_texts(r))]
    assert any("unsupported call: start_delegation" in o for r in task_requests for o in tool_outputs(r)), (
        "the task session's call of the operator tool was not refused by Codex"
    )
    raw = await redis.hgetall(keys.workspace_delegations(operator_key))
    (record,) = [Delegation.model_validate_json(v) for v in raw.values()]
    assert record.status == "completed" and record.last_answer == "REPORT DONE" and not record.pending


async def test_a_task_session_tool_call_is_refused_by_the_orchestrator(
    driver: Driver,
    codex_data_root: Path,
    tmp_path: Path,
    redis: Redis,
    keys: Keys,
    key_prefix: str,
    redis_url: str,
) -> None:
    """Even a forged call (a run event claiming a tool call for a non-operator session) is refused."""
    from codex_broker.libs.contracts import RpcReply, RunEvent, ToolCall
    from codex_broker.libs.rpc import wait_reply

    (tmp_path / "ws").mkdir()
    settings = make_settings(
        key_prefix,
        redis_url,
        codex_data_root,
        workspace_home_channels=f"slack:{HOME}",
        workspace_root=str(tmp_path / "ws"),
    )
    await driver.start(settings)
    home = message("hello", conversation=HOME, mention=False)
    await redis.set(keys.workspace_home("slack", HOME), home.root_message_id)
    other = message("elsewhere", conversation="COTHER")
    await redis.hset(
        keys.session(other.session_key),
        mapping={"platform": "slack", "conversation_id": "COTHER", "root_message_id": other.root_message_id},
    )
    reply_to = keys.rpc_reply("forged")
    call = ToolCall(
        call_id="call-forged",
        tool="start_delegation",
        arguments={"cwd": ".", "prompt": "x"},
        reply_to=reply_to,
    )
    await driver.run_event(
        RunEvent(run_id="r-forged", session_key=other.session_key, seq=0, kind="tool_call", tool_call=call)
    )
    reply = await wait_reply(redis, reply_to, RpcReply, timeout_s=10)
    assert not reply.ok and "operator" in (reply.error or "")
    assert not await redis.exists(keys.workspace_delegations(other.session_key))
    assert json.dumps(await driver.outbound(), default=str).count("ws-thread") == 0


async def wait_delegation(redis: Redis, keys: Keys, operator_key: str) -> Delegation:
    async def probe() -> Delegation | None:
        raw = await redis.hgetall(keys.workspace_delegations(operator_key))
        return next((Delegation.model_validate_json(v) for v in raw.values()), None)

    return await wait_for(probe, timeout_s=30, what="a delegation record")
