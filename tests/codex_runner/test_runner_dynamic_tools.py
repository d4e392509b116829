"""Dynamic tools through the real Codex 0.169: the runner registers a run's tools at thread/start,
forwards each call as a `tool_call` run event and answers Codex with the reply it is given; a
thread started without tools cannot call them (Codex answers "unsupported call" itself)."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from codex_broker.libs.contracts import DynamicTool, RpcReply, RunEvent
from codex_broker.libs.keys import Keys
from codex_broker.libs.rpc import send_reply
from tests.codex_runner.harness import (
    events_of,
    new_request,
    publish_run,
    runner_settings,
    running_runner,
    wait_event,
    wait_terminal,
)
from tests.fakes.fake_model import (
    FakeModel,
    function_call_reply,
    offered_tool_names,
    text_reply,
    tool_outputs,
)

pytestmark = pytest.mark.codex

TOOL = DynamicTool(
    name="list_delegations",
    description="List delegations",
    input_schema={"type": "object", "properties": {"filter": {"type": "string"}}},
)


async def test_a_tool_call_is_forwarded_and_answered(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    fake_model.script(
        function_call_reply("list_delegations", {"filter": "open"}),
        text_reply("there is one delegation"),
    )
    request = new_request(data_root, "what is delegated?", dynamic_tools=[TOOL])
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)):
        await publish_run(redis, keys, request)
        events = await wait_event(redis, keys, request, "tool_call")
        call = events[-1].tool_call
        assert call is not None and call.tool == "list_delegations"
        assert call.arguments == {"filter": "open"}
        assert events[-1].seq == 0  # outside the run's sequence, like a rejected steer
        await send_reply(
            redis, call.reply_to, RpcReply(request_id=call.call_id, ok=True, result={"text": "d1: running"})
        )
        await wait_terminal_ignoring_calls(redis, keys, request)
    assert "list_delegations" in offered_tool_names(fake_model.requests[0])
    assert tool_outputs(fake_model.requests[-1]) == ["d1: running"]


async def test_a_refused_call_reaches_the_model_as_a_failure(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    fake_model.script(function_call_reply("list_delegations", {}), text_reply("refused, fine"))
    request = new_request(data_root, "list", dynamic_tools=[TOOL])
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)):
        await publish_run(redis, keys, request)
        events = await wait_event(redis, keys, request, "tool_call")
        call = events[-1].tool_call
        assert call is not None
        await send_reply(redis, call.reply_to, RpcReply(request_id=call.call_id, ok=False, error="not yours"))
        await wait_terminal_ignoring_calls(redis, keys, request)
    assert tool_outputs(fake_model.requests[-1]) == ["not yours"]


async def test_no_answer_in_time_fails_the_call_not_the_turn(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    fake_model.script(function_call_reply("list_delegations", {}), text_reply("gave up on it"))
    request = new_request(data_root, "list", dynamic_tools=[TOOL])
    settings = runner_settings(data_root, key_prefix, redis_url, tool_call_timeout_s=1.0)
    async with running_runner(settings):
        await publish_run(redis, keys, request)
        events = await wait_terminal_ignoring_calls(redis, keys, request)
    assert events[-1].kind == "completed" and events[-1].text == "gave up on it"
    (output,) = tool_outputs(fake_model.requests[-1])
    assert "did not answer" in output


async def test_a_thread_without_tools_cannot_call_them(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    fake_model.script(function_call_reply("start_delegation", {"cwd": "/", "prompt": "x"}), text_reply("ok"))
    request = new_request(data_root, "try the operator's tool")  # a task session: no dynamic tools
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)):
        await publish_run(redis, keys, request)
        await wait_terminal(redis, keys, request)
        events = await events_of(redis, keys, request)
    assert not [e for e in events if e.kind == "tool_call"]
    assert "start_delegation" not in offered_tool_names(fake_model.requests[0])
    (output,) = tool_outputs(fake_model.requests[-1])
    assert "unsupported call" in output and "start_delegation" in output


async def wait_terminal_ignoring_calls(redis: Redis, keys: Keys, request: object) -> list[RunEvent]:
    """The run's own sequence (tool calls stand outside it, seq 0)."""
    events = await wait_event(redis, keys, request, "completed")  # type: ignore[arg-type]
    return [e for e in events if e.kind != "tool_call"]
