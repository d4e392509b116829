"""Issue 16 item 2 on the orchestrator: a turn's earlier answers (`answer` run events) reach the
thread as messages, in order, once; the last answer follows them as a message of its own and
the live view keeps only its outcome."""

from __future__ import annotations

from collections.abc import Callable

from codex_broker.libs.contracts import PostPayload, ProgressPayload
from codex_broker.orchestrator.config import Settings
from tests.orchestrator.harness import Driver, FakeRunnerScript, message


def _answers_and_finish(actions: list, run_id: str) -> list[tuple[str, str | None]]:
    out = []
    for a in actions:
        if isinstance(a.payload, PostPayload) and a.action_id.startswith(f"answer:{run_id}:"):
            out.append(("post", a.payload.text))
        elif isinstance(a.payload, ProgressPayload) and a.payload.phase == "finish":
            out.append(("finish", a.payload.final_text))
    return out


async def test_an_answer_before_a_steer_and_the_last_one_are_both_posted(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for())
    first = message("question one")
    await driver.inbound(first)
    [request] = await driver.wait_runs(1)
    runner = FakeRunnerScript(driver, request)
    await runner.claim()
    await runner.emit("text_delta", text="answer one")
    await runner.emit("answer", text="answer one")
    runner.seq -= 1
    await runner.emit("answer", text="answer one")  # the same seq again: a redelivery
    await runner.emit("text_delta", text="\n\nanswer two")
    await runner.emit("completed", text="answer two")
    finish = await driver.wait_outbound(lambda a: a.action_id == f"final:{request.run_id}", what="finish")

    assert _answers_and_finish(await driver.outbound(), request.run_id) == [
        ("post", "answer one"),
        ("post", "answer two"),
        ("finish", None),
    ]
    assert isinstance(finish.payload, ProgressPayload) and finish.payload.answer_text == ""
    state = await driver.redis.hget(driver.keys.session_state(request.session_key), "last_final_action")
    assert state == f"answer:{request.run_id}:last".encode()


async def test_a_turn_with_one_answer_keeps_it_in_the_finish(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for())
    await driver.inbound(message("just one"))
    [request] = await driver.wait_runs(1)
    runner = FakeRunnerScript(driver, request)
    await runner.claim()
    await runner.emit("text_delta", text="the answer")
    await runner.emit("completed", text="the answer")
    await driver.wait_outbound(lambda a: a.action_id == f"final:{request.run_id}", what="finish")
    assert _answers_and_finish(await driver.outbound(), request.run_id) == [("finish", "the answer")]


async def test_an_empty_last_answer_after_posted_answers_adds_nothing(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for())
    await driver.inbound(message("q"))
    [request] = await driver.wait_runs(1)
    runner = FakeRunnerScript(driver, request)
    await runner.claim()
    await runner.emit("answer", text="all of it")
    await runner.emit("completed", text="")
    await driver.wait_outbound(lambda a: a.action_id == f"final:{request.run_id}", what="finish")
    assert _answers_and_finish(await driver.outbound(), request.run_id) == [
        ("post", "all of it"),
        ("finish", None),
    ]
