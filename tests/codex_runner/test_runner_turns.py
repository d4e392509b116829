"""codex-runner against the real Codex 0.169 binary and the fake Responses endpoint, on real Redis."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from redis.asyncio import Redis

from codex_broker.libs import hook_token
from codex_broker.libs.keys import GROUP_RUNNERS, Keys
from tests.codex_runner.harness import (
    approval,
    interrupt,
    kinds,
    new_request,
    publish_run,
    runner_settings,
    running_runner,
    send_control,
    steer,
    text_of,
    wait_event,
    wait_terminal,
)
from tests.fakes.codex_home import write_codex_home
from tests.fakes.fake_model import (
    FakeModel,
    http_error_reply,
    latest_user_text,
    slow_reply,
    text_reply,
    tool_call_reply,
    tool_outputs,
    user_texts,
)
from tests.helpers import wait_for

pytestmark = pytest.mark.codex

MCP_MARKER_SERVER = """
[mcp_servers.marker]
command = "/bin/sh"
args = ["-c", "touch {marker}; sleep 30"]
"""


async def test_plain_answer(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    marker = data_root / "mcp-started"
    write_codex_home(
        data_root / "codex-home", fake_model.base_url, extra=MCP_MARKER_SERVER.format(marker=marker)
    )
    fake_model.script(text_reply("Hello from the fake model", chunks=5))
    settings = runner_settings(data_root, key_prefix, redis_url)
    async with running_runner(settings) as runner:
        request = new_request(data_root, "say hello")
        await publish_run(redis, keys, request)
        events = await wait_terminal(redis, keys, request)

        assert kinds(events)[:2] == ["accepted", "turn_started"]
        assert events[1].thread_id and events[1].turn_id
        assert text_of(events) == "Hello from the fake model"
        assert events[-1].kind == "completed"
        assert events[-1].text == "Hello from the fake model"
        assert events[-1].thread_id == events[1].thread_id
        usage = next(e.usage for e in events if e.kind == "token_usage")
        assert usage is not None and usage.input_tokens == 10 and usage.output_tokens == 5
        run_hash = await redis.hgetall(keys.run(request.run_id))
        assert run_hash[b"runner_id"].decode() == runner.runner_id
        assert run_hash[b"status"] == b"completed"
        assert latest_user_text(fake_model.requests[-1]) == "say hello"
        assert not marker.exists(), "MCP servers must be disabled by default"
        # the run leaves `active` when its task ends, just after the terminal event is out
        await wait_for(lambda: runner.details()["active"] == 0, what="the finished run released")
        assert runner.details() == {"active": 0, "capacity": 4, "boot": runner.boot_id, "draining": False}

    # a new Codex thread gets its commit hook's token: a 0600 file beside the workspace whose
    # token Redis maps back to this session (the co-author endpoints accept it)
    path = hook_token.hook_file(data_root, request.session_key)
    found = await wait_for(lambda: hook_token.read_hook_file(path), what="hook token file")
    assert found[0] == request.session_key
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert await hook_token.session_of_hook_token(redis, keys, found[1]) == request.session_key


async def test_exec_command_tool_call_then_answer(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    fake_model.script(
        tool_call_reply("echo tool-output-42 > made.txt && cat made.txt"),
        text_reply("I wrote made.txt"),
    )
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)):
        request = new_request(data_root, "write a file")
        await publish_run(redis, keys, request)
        events = await wait_terminal(redis, keys, request)

    started = [e.item for e in events if e.kind == "item_started" and e.item and e.item.kind == "command"]
    completed = [e.item for e in events if e.kind == "item_completed" and e.item and e.item.kind == "command"]
    assert len(started) == 1 and len(completed) == 1
    assert "echo tool-output-42" in (started[0].command or "")
    assert completed[0].exit_code == 0 and completed[0].status == "completed"
    assert "tool-output-42" in (completed[0].output_tail or "")
    assert (Path(request.workspace) / "made.txt").read_text().strip() == "tool-output-42"
    assert events[-1].kind == "completed" and events[-1].text == "I wrote made.txt"
    assert await asyncio.to_thread(lambda: (Path(request.workspace) / "made.txt").is_file())
    # the second model request carried the command's output back
    assert any("tool-output-42" in out for out in tool_outputs(fake_model.requests[-1]))


async def test_thread_resumed_across_runner_restart(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    session = "resume-session"
    first = new_request(data_root, "remember the word pelican", session=session)
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)):
        await publish_run(redis, keys, first)
        first_events = await wait_terminal(redis, keys, first)
    thread_id = first_events[-1].thread_id
    assert first_events[-1].kind == "completed" and thread_id

    second = new_request(data_root, "what was the word?", session=session, thread_id=thread_id)
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)):
        await publish_run(redis, keys, second)
        events = await wait_terminal(redis, keys, second)

    assert events[-1].kind == "completed", events[-1].text
    assert events[1].kind == "turn_started" and events[1].thread_id == thread_id
    seen = user_texts(fake_model.requests[-1])
    assert "remember the word pelican" in seen and seen[-1] == "what was the word?"


async def test_steer_during_slow_stream(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    fake_model.script(slow_reply("thinking " * 20, chunks=20, delay_s=0.15, match="long task"))
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)) as runner:
        request = new_request(data_root, "a long task")
        await publish_run(redis, keys, request)
        await wait_event(redis, keys, request, "text_delta")
        await send_control(redis, keys, runner.runner_id, steer(request, "steer-xyz please"))
        events = await wait_terminal(redis, keys, request)

    assert events[-1].kind == "completed"
    assert events[-1].text == "echo: steer-xyz please"
    assert [latest_user_text(body) for body in fake_model.requests][-1] == "steer-xyz please"
    assert len({e.turn_id for e in events if e.turn_id}) == 1  # steered, not a new turn


async def test_interrupt_slow_stream(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    fake_model.script(slow_reply("never finished " * 40, chunks=40, delay_s=0.2))
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)) as runner:
        request = new_request(data_root, "start something slow")
        await publish_run(redis, keys, request)
        await wait_event(redis, keys, request, "text_delta")
        await send_control(redis, keys, runner.runner_id, interrupt(request))
        events = await wait_terminal(redis, keys, request, timeout_s=30)
        assert events[-1].kind == "interrupted"
        assert (await redis.hget(keys.run(request.run_id), "status")) == b"interrupted"


async def test_model_errors_fail_the_turn_with_a_reason(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    fake_model.script(http_error_reply(400, "context too long for fake", match="bad request"))
    fake_model.script(http_error_reply(401, "invalid api key", match="bad auth"))
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)):
        bad_request = new_request(data_root, "a bad request")
        bad_auth = new_request(data_root, "bad auth please")
        await publish_run(redis, keys, bad_request)
        await publish_run(redis, keys, bad_auth)
        failed = await wait_terminal(redis, keys, bad_request)
        unauthorized = await wait_terminal(redis, keys, bad_auth)

    assert failed[-1].kind == "failed" and failed[-1].text
    assert unauthorized[-1].kind == "failed"
    assert "401" in (unauthorized[-1].text or "")


async def test_kill_9_of_app_server_mid_turn_then_resume(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    fake_model.script(slow_reply("slow " * 60, chunks=60, delay_s=0.2, match="doomed"))
    session = "kill-session"
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)) as runner:
        supervisor = runner.supervisors["default"]
        doomed = new_request(data_root, "the doomed turn", session=session)
        await publish_run(redis, keys, doomed)
        started = await wait_event(redis, keys, doomed, "text_delta")
        thread_id = started[1].thread_id
        assert supervisor.server is not None
        old_pid = supervisor.server.pid
        os.kill(old_pid, signal.SIGKILL)

        events = await wait_terminal(redis, keys, doomed, timeout_s=15)
        assert events[-1].kind == "failed"
        assert "exited" in (events[-1].text or "")

        await wait_for(
            lambda: (
                supervisor.ready.is_set()
                and supervisor.server is not None
                and supervisor.server.pid != old_pid
            ),
            timeout_s=60,
            what="app-server restarted",
        )
        assert supervisor.restarts >= 1
        follow_up = new_request(data_root, "are you back?", session=session, thread_id=thread_id)
        await publish_run(redis, keys, follow_up)
        events = await wait_terminal(redis, keys, follow_up)

    assert events[-1].kind == "completed", events[-1].text
    assert events[1].thread_id == thread_id
    assert "the doomed turn" in user_texts(fake_model.requests[-1])


async def test_approvals_accepted_declined_and_timed_out(
    data_root: Path,
    fake_model: FakeModel,
    redis: Redis,
    keys: Keys,
    key_prefix: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    accepted_file = tmp_path / "accepted.txt"
    declined_file = tmp_path / "declined.txt"
    timed_out_file = tmp_path / "timed-out.txt"
    fake_model.script(
        tool_call_reply(f"touch {accepted_file}", escalate=True, match="first"),
        text_reply("done after accept", match="first"),
        tool_call_reply(f"touch {declined_file}", escalate=True, match="second"),
        text_reply("done after decline", match="second"),
        tool_call_reply(f"touch {timed_out_file}", escalate=True, match="third"),
        text_reply("done after timeout", match="third"),
    )
    settings = runner_settings(data_root, key_prefix, redis_url, approval_timeout_s=2.0)
    async with running_runner(settings) as runner:
        results = {}
        for word, decision in (("first", "accept"), ("second", "decline"), ("third", None)):
            request = new_request(data_root, f"{word} escalated command", approval_policy="on-request")
            await publish_run(redis, keys, request)
            asked = await wait_event(redis, keys, request, "approval_requested")
            pending = asked[-1].approval
            assert pending is not None and pending.kind == "command" and "touch" in (pending.command or "")
            if decision is not None:
                await send_control(
                    redis, keys, runner.runner_id, approval(request, pending.request_id, decision)
                )
            results[word] = await wait_terminal(redis, keys, request)

    accepted, declined, timed_out = results["first"], results["second"], results["third"]
    resolved = next(e for e in accepted if e.kind == "approval_resolved")
    assert resolved.decision is not None and resolved.decision.decision == "accept"
    assert resolved.decision.decided_by == "U-tester"
    assert accepted[-1].kind == "completed" and accepted_file.exists()

    resolved = next(e for e in declined if e.kind == "approval_resolved")
    assert resolved.decision is not None and resolved.decision.decision == "decline"
    command = [e.item for e in declined if e.kind == "item_completed" and e.item and e.item.kind == "command"]
    assert command and command[0].status == "declined"
    assert declined[-1].kind == "completed" and not declined_file.exists()

    resolved = next(e for e in timed_out if e.kind == "approval_resolved")
    assert resolved.decision is not None and resolved.decision.decided_by == "timeout"
    assert "declined" in (resolved.text or "")
    assert timed_out[-1].kind == "completed" and not timed_out_file.exists()


async def test_cancel_requested_before_claim(
    data_root: Path, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)):
        request = new_request(data_root, "never mind")
        await publish_run(redis, keys, request, cancel=True)
        events = await wait_terminal(redis, keys, request)
    assert kinds(events) == ["accepted", "interrupted"]


async def test_unknown_thread_fails_with_thread_not_found(
    data_root: Path, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)):
        request = new_request(data_root, "hello?", thread_id="01a200bf-0000-7000-8000-000000000000")
        await publish_run(redis, keys, request)
        events = await wait_terminal(redis, keys, request)
    assert events[-1].kind == "failed"
    assert (events[-1].text or "").startswith("thread_not_found:")


async def test_claims_only_with_a_free_slot(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    fake_model.script(slow_reply("busy " * 50, chunks=50, delay_s=0.2, match="occupy"))
    settings = runner_settings(data_root, key_prefix, redis_url, max_concurrent_turns=1)
    async with running_runner(settings) as runner:
        first = new_request(data_root, "occupy the only slot")
        second = new_request(data_root, "wait for a slot")
        await publish_run(redis, keys, first)
        await wait_event(redis, keys, first, "text_delta")
        await publish_run(redis, keys, second)
        await asyncio.sleep(0.5)  # give a (wrong) runner the chance to claim it
        groups = await redis.xinfo_groups(keys.runs_stream)
        group = next(g for g in groups if g["name"] == GROUP_RUNNERS.encode())
        assert group["lag"] == 1 and group["pending"] == 0, group  # not delivered to anyone
        assert runner.details() == {"active": 1, "capacity": 1, "boot": runner.boot_id, "draining": False}

        await send_control(redis, keys, runner.runner_id, interrupt(first))
        assert (await wait_terminal(redis, keys, first))[-1].kind == "interrupted"
        assert (await wait_terminal(redis, keys, second))[-1].kind == "completed"


async def test_watchdog_interrupts_a_silent_turn(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    fake_model.script(slow_reply("a b", chunks=2, delay_s=20, match="silent"))
    settings = runner_settings(data_root, key_prefix, redis_url, watchdog_idle_s=1.5)
    async with running_runner(settings):
        request = new_request(data_root, "a silent turn")
        await publish_run(redis, keys, request)
        events = await wait_terminal(redis, keys, request, timeout_s=30)
    assert events[-1].kind == "interrupted"
    assert "watchdog" in (events[-1].text or "")
