"""Debounce, queue / steer during a run, stop, the busy bound and MAX_ACTIVE_RUNS on real Redis."""

from __future__ import annotations

from collections.abc import Callable

from codex_broker.libs.contracts import ProgressPayload
from codex_broker.orchestrator.config import Settings
from tests.helpers import wait_for
from tests.orchestrator.harness import Driver, FakeRunnerScript, button, message, running_turn


async def test_debounce_flushes_messages_into_one_turn(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for(debounce_ms=400))
    first = message("first part")
    await driver.inbound(first)
    await driver.inbound(message("second part", mention=False, root=first.root_message_id))
    [request] = await driver.wait_runs(1)
    text = request.input[0].text or ""
    assert text.index("first part") < text.index("second part")
    assert len(await driver.run_requests()) == 1


async def test_queue_mode_flushes_after_run(driver: Driver, settings_for: Callable[..., Settings]) -> None:
    await driver.start(settings_for(message_during_run="queue"))
    first = message("build it")
    await driver.inbound(first)
    [request] = await driver.wait_runs(1)
    runner = FakeRunnerScript(driver, request)
    await runner.claim()
    for text in ("also docs", "and tests"):
        await driver.inbound(message(text, mention=False, root=first.root_message_id, user="U2", name="Bob"))

    async def queued() -> bool:
        return await driver.redis.llen(driver.keys.session_queue(request.session_key)) == 2

    await wait_for(queued, what="two queued messages")
    await runner.emit("completed", text="built")
    requests = await driver.wait_runs(2)
    follow = requests[1].input[0].text or ""
    assert "Bob: also docs" in follow and "Bob: and tests" in follow
    assert requests[1].thread_id == "thread-1"


async def test_steer_during_run(driver: Driver, settings_for: Callable[..., Settings]) -> None:
    await driver.start(settings_for())
    first, request, runner = await running_turn(driver, "refactor")
    await driver.inbound(message("use pathlib please", mention=False, root=first.root_message_id))

    async def steered() -> list | None:
        return [c for c in await driver.controls(runner.runner_id) if c.kind == "steer"] or None

    [control] = await wait_for(steered, what="steer control")
    assert control.run_id == request.run_id and "use pathlib please" in (control.input[0].text or "")


async def test_stop_interrupts_and_clears_queue(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for(message_during_run="queue"))
    first = message("long task")
    await driver.inbound(first)
    [request] = await driver.wait_runs(1)
    runner = FakeRunnerScript(driver, request)
    await runner.claim()
    await driver.inbound(message("queued one", mention=False, root=first.root_message_id))
    await driver.inbound(message("-stop", mention=False, root=first.root_message_id))

    async def interrupted() -> list | None:
        return [c for c in await driver.controls(runner.runner_id) if c.kind == "interrupt"] or None

    await wait_for(interrupted, what="interrupt control")
    assert await driver.redis.llen(driver.keys.session_queue(request.session_key)) == 0
    await runner.emit("interrupted")
    final = await driver.wait_outbound(lambda a: a.action_id == f"final:{request.run_id}")
    assert isinstance(final.payload, ProgressPayload) and final.payload.final_text == "Stopped."
    # the Stop button when nothing runs, and -stop when nothing runs
    await driver.inbound(button("stop", request.run_id, root=first.root_message_id))
    await driver.inbound(message("/stop", mention=False, root=first.root_message_id))
    await driver.wait_outbound(lambda a: a.payload.kind == "post" and a.payload.text == "Nothing is running.")
    assert len(await driver.run_requests()) == 1  # the queued message was dropped


async def test_stop_button_before_runner_claims(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for())
    first = message("task")
    await driver.inbound(first)
    [request] = await driver.wait_runs(1)
    await driver.inbound(button("stop", request.run_id, root=first.root_message_id))

    async def cancel_flag() -> bool:
        return await driver.redis.hget(driver.keys.run(request.run_id), "cancel_requested") == b"1"

    await wait_for(cancel_flag, what="cancel_requested on the run")


async def test_busy_reply_past_queue_bound(driver: Driver, settings_for: Callable[..., Settings]) -> None:
    await driver.start(settings_for(message_during_run="queue", session_queue_limit=2))
    first = message("work")
    await driver.inbound(first)
    [request] = await driver.wait_runs(1)
    for i in range(4):
        await driver.inbound(message(f"more {i}", mention=False, root=first.root_message_id))
    busy = await driver.wait_outbound(
        lambda a: a.payload.kind == "post" and "still working" in a.payload.text
    )
    assert busy.root_message_id == first.root_message_id
    assert await driver.redis.llen(driver.keys.session_queue(request.session_key)) == 2
    busy_replies = [t for t in await driver.replies() if "still working" in t]
    assert len(busy_replies) == 1  # polite, not once per message


async def test_max_active_runs_fifo(driver: Driver, settings_for: Callable[..., Settings]) -> None:
    await driver.start(settings_for(max_active_runs=1))
    a, b, c = (
        message("A", conversation="CA"),
        message("B", conversation="CB"),
        message("C", conversation="CC"),
    )
    await driver.inbound(a)
    [first] = await driver.wait_runs(1)
    await driver.inbound(b)

    async def waiting(n: int) -> bool:
        return await driver.redis.zcard(driver.keys.runs_waiting) == n

    await wait_for(lambda: waiting(1), what="B waiting")
    await driver.inbound(c)
    await wait_for(lambda: waiting(2), what="C waiting")
    assert len(await driver.run_requests()) == 1
    runner = FakeRunnerScript(driver, first)
    await runner.claim()
    await runner.emit("completed", text="done A")
    requests = await driver.wait_runs(2)
    assert requests[1].coords.conversation_id == "CB"  # first come, first served
    runner_b = FakeRunnerScript(driver, requests[1])
    await runner_b.claim()
    await runner_b.emit("completed", text="done B")
    requests = await driver.wait_runs(3)
    assert requests[2].coords.conversation_id == "CC"
