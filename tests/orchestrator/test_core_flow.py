"""The orchestrator core on real Redis, with the runner's side of the run contract played by
the test (RunEvents published on the run-events stream exactly as a runner would)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from codex_broker.libs.contracts import (
    Actor,
    InboundEvent,
    ItemInfo,
    JobCallback,
    ProgressPayload,
    StatusPayload,
    TokenUsage,
)
from codex_broker.orchestrator.config import Settings
from tests.helpers import wait_for
from tests.orchestrator.harness import Driver, FakeRunnerScript, message


async def test_mention_to_final_answer(driver: Driver, settings_for: Callable[..., Settings]) -> None:
    await driver.start(settings_for())
    await driver.inbound(message("fix the flaky test"))
    [request] = await driver.wait_runs(1)
    assert request.thread_id is None
    instructions = request.developer_instructions or ""
    assert "BROKER_SESSION_TOKEN_FILE=" in instructions and "BROKER_SESSION_TOKEN=" not in instructions
    text = request.input[0].text or ""
    assert "<context>" in text and "fix the flaky test" in text and "Alice" in text
    assert request.workspace.endswith("/workspace")

    runner = FakeRunnerScript(driver, request)
    await runner.claim(thread_id="thr-1")
    await runner.emit("item_started", item=ItemInfo(id="i1", kind="command", command="pytest -q"))
    await driver.wait_outbound(
        lambda a: a.payload.kind == "progress" and "pytest -q" in a.payload.activity, what="command progress"
    )
    await runner.emit(
        "item_completed",
        item=ItemInfo(id="i1", kind="command", command="pytest -q", exit_code=0, status="completed"),
    )
    await runner.emit("text_delta", text="All ")
    await runner.emit("text_delta", text="green.")
    await runner.emit("token_usage", usage=TokenUsage(input_tokens=100, output_tokens=20, total_tokens=120))
    await runner.emit("completed", text="All green.")

    final = await driver.wait_outbound(lambda a: a.action_id == f"final:{request.run_id}", what="final")
    assert isinstance(final.payload, ProgressPayload)
    assert final.payload.phase == "finish" and final.payload.final_text == "All green."
    assert final.payload.show_stop is False
    statuses = [a.payload for a in await driver.outbound() if isinstance(a.payload, StatusPayload)]
    assert [s.state for s in statuses] == ["running", "completed"]

    session = await driver.redis.hgetall(driver.keys.session(request.session_key))
    assert session[b"thread_id"] == b"thr-1"
    assert session[b"total_tokens"] == b"120"

    async def idle() -> bool:
        return await driver.redis.hget(driver.keys.session_state(request.session_key), "state") == b"idle"

    await wait_for(idle, what="idle state")
    assert await driver.redis.zcard(driver.keys.active_runs) == 0
    # the session's events tell the conversation (the admin page's transcript reads them)
    timeline = await driver.redis.lrange(driver.keys.session_timeline(request.session_key), 0, -1)
    events = [json.loads(raw) for raw in reversed(timeline)]
    said = [(e["kind"], e["summary"]) for e in events if e["kind"] in ("message", "answer")]
    assert said == [("message", "Alice: fix the flaky test"), ("answer", "All green.")]
    assert events[-1]["kind"] == "run" and events[-1]["summary"] == f"run {request.run_id} completed"


async def test_follow_up_resumes_thread_and_redelivery_posts_once(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for())
    first = message("hello")
    await driver.inbound(first)
    [request] = await driver.wait_runs(1)
    runner = FakeRunnerScript(driver, request)
    await runner.claim(thread_id="thr-9")
    await runner.emit("completed", text="hi")
    await driver.wait_outbound(lambda a: a.action_id == f"final:{request.run_id}")
    # the same terminal event delivered again (runner retry) posts nothing new
    runner.seq -= 1
    await runner.emit("completed", text="hi")
    # a Slack retry of the first message gives no new turn
    await driver.inbound(first)
    follow = message("and now?", mention=False, root=first.root_message_id)
    await driver.inbound(follow)
    requests = await driver.wait_runs(2)
    assert len(requests) == 2
    assert requests[1].thread_id == "thr-9"
    assert requests[1].developer_instructions is None
    finals = [a for a in await driver.outbound() if a.action_id.startswith("final:")]
    assert len(finals) == 1


async def test_answer_text_is_coalesced_and_flushed_by_the_timer(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for(progress_interval_ms=400))
    await driver.inbound(message("stream please"))
    [request] = await driver.wait_runs(1)
    runner = FakeRunnerScript(driver, request)
    await runner.claim()
    for word in ("one ", "two ", "three ", "four"):
        await runner.emit("text_delta", text=word)

    async def flushed() -> ProgressPayload | None:
        for action in await driver.outbound():
            if (
                isinstance(action.payload, ProgressPayload)
                and action.payload.answer_text == "one two three four"
            ):
                return action.payload
        return None

    await wait_for(flushed, what="the coalesced answer text shown by the flush timer")
    snapshots = [a for a in await driver.outbound() if a.action_id.startswith(f"progress:{request.run_id}:")]
    assert len(snapshots) <= 3  # start + at most one eager + the flush, not one per delta
    seqs = [a.payload.seq for a in snapshots]  # type: ignore[union-attr]
    assert seqs == sorted(set(seqs))


async def test_job_callback_starts_a_turn_with_the_report(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for())
    first = message("start a build job")
    await driver.inbound(first)
    [request] = await driver.wait_runs(1)
    runner = FakeRunnerScript(driver, request)
    await runner.claim()
    await runner.emit("completed", text="registered")
    # what the http-api publishes when the job completes (its actor is the job, a bot)
    callback = InboundEvent(
        event_id="job:j1:3",
        platform="slack",
        conversation_id=first.conversation_id,
        root_message_id=first.root_message_id,
        kind="job_callback",
        actor=Actor(id="job:j1", display_name="job build", is_bot=True),
        text="job j1 complete",
        job=JobCallback(job_id="j1", status="complete", summary="build ok", details={"artifacts": 2}),
    )
    await driver.job_callback(callback)
    requests = await driver.wait_runs(2)
    assert "[background job j1: complete] build ok" in (requests[1].input[0].text or "")
    assert requests[1].thread_id == "thread-1"


async def test_an_answer_waits_for_the_previous_answer_of_its_thread_to_be_posted(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    """An ingress replica that died while posting answer 1 must not let answer 2 overtake it."""
    await driver.start(settings_for(final_order_wait_s=30))
    first = message("one")
    await driver.inbound(first)
    [request1] = await driver.wait_runs(1)
    runner1 = FakeRunnerScript(driver, request1)
    await runner1.claim(thread_id="thr-o")
    await runner1.emit("completed", text="answer one")
    await driver.wait_outbound(lambda a: a.action_id == f"final:{request1.run_id}", what="answer one")

    await driver.inbound(message("two", mention=False, root=first.root_message_id))
    requests = await driver.wait_runs(2)
    runner2 = FakeRunnerScript(driver, requests[1])
    await runner2.claim(thread_id="thr-o")
    await runner2.emit("completed", text="answer two")
    await asyncio.sleep(1.0)  # bounded look: answer two is held while answer one is not posted
    finals = [a.action_id for a in await driver.outbound() if a.action_id.startswith("final:")]
    assert finals == [f"final:{request1.run_id}"]

    # the ingress confirms answer one (its idempotency marker), and answer two follows
    await driver.redis.set(driver.keys.idempotency("outbound", f"final:{request1.run_id}"), "done:{}")
    await driver.wait_outbound(lambda a: a.action_id == f"final:{requests[1].run_id}", what="answer two")
