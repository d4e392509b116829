"""A steer no turn took is reported (`steer_rejected`), never dropped: for a run the runner no
longer holds, for a turn that already ended, for a steer Codex refuses, and for a steer still
waiting for the turn's id when the run ends. Real Codex 0.169 on the fake model, real Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from codex_broker.codex_runner.runner import Runner
from codex_broker.codex_runner.turn import TurnRun
from codex_broker.libs.contracts import RunEvent, RunRequest
from codex_broker.libs.keys import GROUP_RUNNERS, Keys
from tests.codex_runner.harness import (
    assert_well_formed,
    events_of,
    new_request,
    publish_run,
    runner_settings,
    running_runner,
    send_control,
    steer,
    wait_event,
    wait_terminal,
)
from tests.fakes.fake_model import FakeModel, slow_reply, text_reply
from tests.helpers import wait_for

pytestmark = pytest.mark.codex


async def _held(runner: Runner, request: RunRequest) -> TurnRun:
    return await wait_for(lambda: runner.runs.get(request.run_id), interval_s=0.001, what="run held")


async def _rejections(redis: Redis, keys: Keys, request: RunRequest) -> list[RunEvent]:
    return [e for e in await events_of(redis, keys, request) if e.kind == "steer_rejected"]


async def _run_sequence(redis: Redis, keys: Keys, request: RunRequest) -> list[RunEvent]:
    """The run's own events up to its terminal one (a steer_rejected is not part of them)."""

    async def probe() -> list[RunEvent] | None:
        events = [e for e in await events_of(redis, keys, request) if e.kind != "steer_rejected"]
        return events if events and events[-1].is_terminal else None

    events = await wait_for(probe, timeout_s=90, what="terminal event of run")
    assert_well_formed(events)
    return events


async def test_steer_for_a_run_no_longer_held_is_reported(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    fake_model.script(text_reply("short answer"))
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)) as runner:
        request = new_request(data_root, "answer briefly")
        await publish_run(redis, keys, request)
        await wait_terminal(redis, keys, request)
        await wait_for(lambda: request.run_id not in runner.runs, what="run let go")

        control = steer(request, "one more thing")
        await send_control(redis, keys, runner.runner_id, control)
        events = await wait_event(redis, keys, request, "steer_rejected")

        control_stream = keys.runner_control_stream(runner.runner_id)

        async def acked() -> bool:
            return (await redis.xpending(control_stream, GROUP_RUNNERS))["pending"] == 0

        await wait_for(acked, what="the control acked")

    rejected = events[-1]
    assert rejected.control_id == control.control_id
    assert (rejected.run_id, rejected.session_key) == (request.run_id, request.session_key)
    assert rejected.runner_id == runner.runner_id and rejected.seq == 0
    assert rejected.text == "the run is not held by this runner"
    assert_well_formed(events[:-1])  # the run's own sequence is untouched


async def test_steer_after_the_turn_ended_is_reported_after_the_terminal_event(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    fake_model.script(text_reply("done already"))
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)) as runner:
        request = new_request(data_root, "quick one")
        await publish_run(redis, keys, request)
        run = await _held(runner, request)
        await wait_terminal(redis, keys, request)
        # the control raced the end of the turn: the run object is still there, its turn is not
        control = steer(request, "too late")
        await run.steer(control)
        events = await wait_event(redis, keys, request, "steer_rejected")

    assert events[-2].kind == "completed"
    assert events[-1].control_id == control.control_id
    assert events[-1].text == "the turn already ended (completed)"
    assert_well_formed(events[:-1])


async def test_steer_codex_refuses_is_reported(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    fake_model.script(slow_reply("working " * 20, chunks=20, delay_s=0.15))
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)) as runner:
        request = new_request(data_root, "a slow task")
        await publish_run(redis, keys, request)
        run = await _held(runner, request)
        await wait_event(redis, keys, request, "text_delta")
        # what Codex sees when the turn the runner steers has just ended: another turn id
        real_turn, run.turn_id = run.turn_id, "turn-that-ended"
        control = steer(request, "refused-steer-marker")
        try:
            await run.steer(control)
        finally:
            run.turn_id = real_turn
        [rejected] = await wait_for(
            lambda: _rejections(redis, keys, request), what="steer_rejected of the refused steer"
        )
        events = await _run_sequence(redis, keys, request)

    assert rejected.control_id == control.control_id
    assert (rejected.text or "").startswith("turn/steer failed: "), rejected.text
    assert "refused-steer-marker" not in "".join(str(body) for body in fake_model.requests)
    assert events[-1].kind == "completed"


async def test_steer_waiting_for_the_turn_is_reported_when_the_run_ends_first(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)) as runner:
        request = new_request(data_root, "never starts")
        await publish_run(redis, keys, request, cancel=True)  # stopped before any turn starts
        run = await _held(runner, request)
        control = steer(request, "waiting steer")
        await run.steer(control)  # no turn id yet: held for the turn (or the run is over already)
        events = await _run_sequence(redis, keys, request)
        [rejected] = await wait_for(lambda: _rejections(redis, keys, request), what="steer_rejected")

    assert events[-1].kind == "interrupted"
    assert rejected.control_id == control.control_id
    assert rejected.text in (
        "the turn ended (interrupted) before the steer was applied",
        "the turn already ended (interrupted)",
    )
