"""A steer the runner could not apply (`steer_rejected`) puts the message back: it runs as the
next turn, once, in order — also when the session went idle in between. Real Redis, the
orchestrator in process, the runner's side played by the test."""

from __future__ import annotations

from collections.abc import Callable

from codex_broker.libs.contracts import Actor, InboundEvent, JobCallback, RunControl
from codex_broker.orchestrator.config import Settings
from tests.helpers import wait_for
from tests.orchestrator.harness import Driver, FakeRunnerScript, message, running_turn


async def _steer(driver: Driver, runner: FakeRunnerScript, event: InboundEvent) -> RunControl:
    await driver.inbound(event)

    async def steered() -> RunControl | None:
        controls = await driver.controls(runner.runner_id)
        return next((c for c in controls if c.control_id == f"steer:{event.event_id}"), None)

    return await wait_for(steered, what="steer control")


async def _reject(runner: FakeRunnerScript, control: RunControl, reason: str) -> None:
    """What the runner publishes: outside the run's seq, keyed by the control id."""
    await runner.emit(
        "steer_rejected", control_id=control.control_id, runner_id=runner.runner_id, text=reason
    )
    runner.seq -= 1  # steer_rejected takes no place in the run's sequence


async def _state(driver: Driver, session_key: str) -> str:
    raw = await driver.redis.hget(driver.keys.session_state(session_key), "state")
    return raw.decode() if raw else "idle"


async def test_rejected_steer_runs_as_the_next_turn_exactly_once(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for())
    first, request, runner = await running_turn(driver, "refactor the parser")
    late = message("and use pathlib-marker-41", mention=False, root=first.root_message_id)
    control = await _steer(driver, runner, late)

    await _reject(runner, control, "turn/steer failed: no active turn")
    await _reject(runner, control, "turn/steer failed: no active turn")  # delivered twice
    await runner.emit("completed", text="refactored")

    requests = await driver.wait_runs(2)
    follow = requests[1].input[0].text or ""
    assert follow.count("pathlib-marker-41") == 1
    assert requests[1].thread_id == "thread-1"  # it continues the same Codex thread
    assert await driver.redis.llen(driver.keys.session_queue(request.session_key)) == 0
    stored = await driver.redis.hget(driver.keys.run(request.run_id), control.control_id)
    assert stored is None  # put back and forgotten: a third delivery finds nothing

    await _reject(runner, control, "again")
    second = FakeRunnerScript(driver, requests[1])
    await second.claim(thread_id="thread-1")
    await second.emit("completed", text="done")
    await driver.wait_outbound(lambda a: a.action_id == f"final:{requests[1].run_id}", what="second answer")
    assert len(await driver.run_requests()) == 2
    assert await _state(driver, request.session_key) == "idle"


async def test_rejected_after_the_session_went_idle_starts_a_new_turn(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for())
    first, request, runner = await running_turn(driver, "write the report")
    control = await _steer(
        driver, runner, message("cite sources-marker-7", mention=False, root=first.root_message_id)
    )
    # the turn ended before the runner got to the steer: `completed` first, then the rejection
    await runner.emit("completed", text="report written")
    await driver.wait_outbound(lambda a: a.action_id == f"final:{request.run_id}", what="first answer")
    assert await _state(driver, request.session_key) == "idle"

    await _reject(runner, control, "the turn already ended (completed)")
    requests = await driver.wait_runs(2)
    assert "cite sources-marker-7" in (requests[1].input[0].text or "")

    await _reject(runner, control, "the run is not held by this runner")  # a redelivery
    second = FakeRunnerScript(driver, requests[1])
    await second.claim(thread_id="thread-1")
    await second.emit("completed", text="with sources")
    await driver.wait_outbound(lambda a: a.action_id == f"final:{requests[1].run_id}", what="second answer")
    assert len(await driver.run_requests()) == 2
    assert await _state(driver, request.session_key) == "idle"


async def test_put_back_before_what_was_queued_after_it(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for())
    first, request, runner = await running_turn(driver, "start the build")
    control = await _steer(
        driver, runner, message("steer-first-marker", mention=False, root=first.root_message_id)
    )
    # a job report arrives after the steered message; job callbacks always wait in the queue
    report = InboundEvent(
        event_id="job:j9:1",
        platform="slack",
        conversation_id=first.conversation_id,
        root_message_id=first.root_message_id,
        kind="job_callback",
        actor=Actor(id="job:j9", display_name="job build", is_bot=True),
        text="job j9 complete",
        job=JobCallback(job_id="j9", status="complete", summary="report-second-marker"),
    )
    await driver.job_callback(report)

    async def queued(n: int) -> bool:
        return await driver.redis.llen(driver.keys.session_queue(request.session_key)) == n

    await wait_for(lambda: queued(1), what="the job report queued")
    await _reject(runner, control, "turn/steer failed: no active turn")
    await wait_for(lambda: queued(2), what="the steered message put back")
    await runner.emit("completed", text="built")
    follow = (await driver.wait_runs(2))[1].input[0].text or ""
    assert follow.index("steer-first-marker") < follow.index("report-second-marker")


async def test_stop_drops_a_rejected_steer_and_queues_later_messages(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for())
    first, request, runner = await running_turn(driver, "long task")
    control = await _steer(
        driver, runner, message("before-stop-marker", mention=False, root=first.root_message_id)
    )
    await driver.inbound(message("-stop", mention=False, root=first.root_message_id))

    async def interrupted() -> bool:
        return any(c.kind == "interrupt" for c in await driver.controls(runner.runner_id))

    await wait_for(interrupted, what="interrupt control")
    # a message after the stop is not steered into the dying turn: it waits for the next one
    await driver.inbound(message("after-stop-marker", mention=False, root=first.root_message_id))

    async def queued() -> bool:
        return await driver.redis.llen(driver.keys.session_queue(request.session_key)) == 1

    await wait_for(queued, what="the message after the stop queued")
    assert sum(c.kind == "steer" for c in await driver.controls(runner.runner_id)) == 1

    await _reject(runner, control, "the turn ended (interrupted) before the steer was applied")
    await runner.emit("interrupted")
    requests = await driver.wait_runs(2)
    follow = requests[1].input[0].text or ""
    assert "after-stop-marker" in follow and "before-stop-marker" not in follow
