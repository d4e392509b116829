"""Orchestrator + the real codex-runner + the real Codex binary + the fake model (in process,
talking over real Redis streams). Few tests, one runner each: every Codex process costs CPU."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from codex_broker.codex_runner.config import Settings as RunnerSettings
from codex_broker.libs.contracts import ProgressPayload
from codex_broker.libs.heartbeat import Heartbeat
from codex_broker.libs.keys import Keys
from codex_broker.libs.runtime import heartbeat_loop
from tests.codex_runner.harness import runner_settings, running_runner
from tests.fakes.fake_model import (
    FakeModel,
    held_reply,
    slow_reply,
    text_reply,
    tool_call_reply,
    user_texts,
)
from tests.helpers import wait_for
from tests.orchestrator.harness import Driver, make_settings, message

pytestmark = pytest.mark.codex


@contextlib.asynccontextmanager
async def runner_with_heartbeat(settings: RunnerSettings) -> AsyncIterator[None]:
    """The runner plus the heartbeat its service frame (run_service) writes in production."""
    redis = Redis.from_url(settings.redis_url)
    stop = asyncio.Event()
    beat = Heartbeat(
        redis, settings.keys, "codex-runner", settings.instance_id, ttl_s=20, started_at=time.time()
    )
    task = asyncio.create_task(heartbeat_loop(beat, 1.0, stop))
    try:
        async with running_runner(settings):
            yield
    finally:
        stop.set()
        await task
        await redis.aclose()


def finals(actions: list) -> list[ProgressPayload]:
    return [a.payload for a in actions if a.action_id.startswith("final:")]


async def test_answer_tool_progress_and_follow_up(
    driver: Driver,
    fake_model: FakeModel,
    codex_data_root: Path,
    redis: Redis,
    keys: Keys,
    key_prefix: str,
    redis_url: str,
) -> None:
    fake_model.script(
        tool_call_reply("echo tool-ran > proof.txt", match="make a file"),
        text_reply("I made proof.txt"),
        text_reply("You asked me to make a file.", match="what did I ask"),
    )
    await driver.start(make_settings(key_prefix, redis_url, codex_data_root))
    async with runner_with_heartbeat(runner_settings(codex_data_root, key_prefix, redis_url)):
        first = message("please make a file")
        await driver.inbound(first)
        final = await driver.wait_outbound(lambda a: a.action_id.startswith("final:"), timeout_s=90)
        assert isinstance(final.payload, ProgressPayload)
        assert final.payload.outcome == "completed" and final.payload.final_text == "I made proof.txt"
        progress = [a.payload for a in await driver.outbound() if a.payload.kind == "progress"]
        assert any("echo tool-ran" in p.activity for p in progress)  # type: ignore[union-attr]
        assert any(t.status == "complete" for p in progress for t in p.tasks)  # type: ignore[union-attr]
        [request] = await driver.run_requests()
        assert (Path(request.workspace) / "proof.txt").read_text().strip() == "tool-ran"

        await driver.inbound(message("what did I ask?", mention=False, root=first.root_message_id))

        async def two_finals() -> list | None:
            found = finals(await driver.outbound())
            return found if len(found) == 2 else None

        answers = await wait_for(two_finals, timeout_s=90, what="second answer")
        assert answers[1].final_text == "You asked me to make a file."
        requests = await driver.run_requests()
        assert (
            requests[1].thread_id
            and requests[1].thread_id
            == (await redis.hget(keys.session(request.session_key), "thread_id")).decode()
        )
        # the model saw the earlier turn in the resumed thread
        assert any("please make a file" in t for t in user_texts(fake_model.requests[-1]))


async def test_steer_then_stop_a_slow_stream(
    driver: Driver, fake_model: FakeModel, codex_data_root: Path, key_prefix: str, redis_url: str
) -> None:
    fake_model.script(
        slow_reply("working " * 60, chunks=60, delay_s=0.2, match="long job"),
        slow_reply("steered " * 60, chunks=60, delay_s=0.2, match="steer-marker-7"),
    )
    await driver.start(make_settings(key_prefix, redis_url, codex_data_root))
    async with runner_with_heartbeat(runner_settings(codex_data_root, key_prefix, redis_url)):
        first = message("start the long job")
        await driver.inbound(first)

        async def answering() -> bool:
            return any(
                a.payload.kind == "progress" and a.payload.answer_text  # type: ignore[union-attr]
                for a in await driver.outbound()
            )

        await wait_for(answering, timeout_s=90, what="streamed answer text")
        await driver.inbound(
            message("also mention steer-marker-7", mention=False, root=first.root_message_id)
        )
        await wait_for(
            lambda: any("steer-marker-7" in t for body in fake_model.requests for t in user_texts(body)),
            timeout_s=60,
            what="the model receives the steer",
        )
        await driver.inbound(message("-stop", mention=False, root=first.root_message_id))
        final = await driver.wait_outbound(lambda a: a.action_id.startswith("final:"), timeout_s=60)
        assert isinstance(final.payload, ProgressPayload)
        assert final.payload.outcome == "interrupted" and final.payload.final_text == "Stopped."
        assert len(await driver.run_requests()) == 1


async def test_an_answer_before_a_steer_and_the_answer_to_the_steer_are_both_posted(
    driver: Driver, fake_model: FakeModel, codex_data_root: Path, key_prefix: str, redis_url: str
) -> None:
    """Issue 16 item 2: the model answers, its response stays open (a slow model); a message one
    moment later steers the turn, Codex answers that too. Both answers go to the thread."""
    fake_model.script(
        held_reply("answer-one-5d2 is here", hold_s=30, match="question-one"),
        text_reply("answer-two-5d2 is here", match="question-two"),
    )
    await driver.start(make_settings(key_prefix, redis_url, codex_data_root))
    async with runner_with_heartbeat(runner_settings(codex_data_root, key_prefix, redis_url)):
        first = message("question-one please")
        await driver.inbound(first)

        async def first_answer_shown() -> bool:
            return any(
                a.payload.kind == "progress" and "answer-one-5d2 is here" in a.payload.answer_text  # type: ignore[union-attr]
                for a in await driver.outbound()
            )

        await wait_for(first_answer_shown, timeout_s=90, what="the first answer streamed")
        await driver.inbound(message("and question-two", mention=False, root=first.root_message_id))
        finish = await driver.wait_outbound(lambda a: a.action_id.startswith("final:"), timeout_s=90)
        assert isinstance(finish.payload, ProgressPayload) and finish.payload.outcome == "completed"
        [request] = await driver.run_requests()
        posts = [
            (a.action_id, a.payload.text)  # type: ignore[union-attr]
            for a in await driver.outbound()
            if a.payload.kind == "post" and a.action_id.startswith(f"answer:{request.run_id}:")
        ]
        assert [text for _, text in posts] == ["answer-one-5d2 is here", "answer-two-5d2 is here"]
        assert posts[-1][0] == f"answer:{request.run_id}:last"
        assert finish.payload.final_text is None  # the last answer is its own post, after the first
