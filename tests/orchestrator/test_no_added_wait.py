"""Issue 16 item 1: with the shipped defaults nothing waits on a timer between a message and
Codex. The orchestrator runs without its due-timer task here, so whatever happens needed no
timer; the timer sets are read to show none was left scheduled either."""

from __future__ import annotations

from collections.abc import Callable

from codex_broker.libs.keys import shard_of
from codex_broker.libs.records import TurnState
from codex_broker.orchestrator import machine
from codex_broker.orchestrator.config import Settings
from tests.helpers import wait_for
from tests.orchestrator.harness import Driver, FakeRunnerScript, message


def test_the_shipped_default_starts_an_idle_session_at_once() -> None:
    defaults = Settings()
    assert defaults.debounce_ms == 0
    assert defaults.message_during_run == "steer"
    rules = machine.Rules(
        during_run=defaults.message_during_run,
        queue_limit=defaults.session_queue_limit,
        debounce_ms=defaults.debounce_ms,
    )
    idle = machine.Session(TurnState(), queued=0)
    decision = machine.decide(idle, machine.MessageIn(now_ms=1_000), rules)
    # straight to a RunRequest: no queue entry, no timer of any kind in between
    assert decision.effects == (machine.StartRun(direct=True),)


async def _timers_of(driver: Driver, session_key: str) -> list[bytes]:
    shard = shard_of(session_key, driver.keys.shard_count)
    members = await driver.redis.zrange(driver.keys.orchestrator_timers(shard), 0, -1)
    return [m for m in members if m.endswith(session_key.encode())]


async def test_a_mention_reaches_the_runs_stream_with_no_timer_in_between(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for(), timers=False)
    first = message("fix the flaky test")
    await driver.inbound(first)
    [request] = await driver.wait_runs(1)
    assert "fix the flaky test" in (request.input[0].text or "")
    state = await driver.redis.hgetall(driver.keys.session_state(request.session_key))
    assert state[b"state"] == b"running" and state[b"active_run_id"] == request.run_id.encode()
    assert await driver.redis.llen(driver.keys.session_queue(request.session_key)) == 0
    assert await _timers_of(driver, request.session_key) == []


async def test_messages_before_the_turn_started_are_steered_in_when_it_starts(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    """A burst: the first message starts the turn, the next ones join it as steers once the
    runner reports the turn started — not after the whole first turn, and with no timer."""
    await driver.start(settings_for(), timers=False)
    first = message("part one")
    await driver.inbound(first)
    [request] = await driver.wait_runs(1)
    for text in ("part two", "part three"):
        await driver.inbound(message(text, mention=False, root=first.root_message_id))

    async def queued() -> bool:
        return await driver.redis.llen(driver.keys.session_queue(request.session_key)) == 2

    await wait_for(queued, what="two messages waiting for the turn to start")
    runner = FakeRunnerScript(driver, request)
    await runner.claim()

    async def steers() -> list | None:
        found = [c for c in await driver.controls(runner.runner_id) if c.kind == "steer"]
        return found if len(found) == 2 else None

    controls = await wait_for(steers, what="both waiting messages steered")
    assert [c.run_id for c in controls] == [request.run_id] * 2
    assert "part two" in (controls[0].input[0].text or "")
    assert "part three" in (controls[1].input[0].text or "")
    assert await driver.redis.llen(driver.keys.session_queue(request.session_key)) == 0
    assert len(await driver.run_requests()) == 1
    assert await _timers_of(driver, request.session_key) == []


async def test_queue_mode_keeps_waiting_messages_for_the_next_turn(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for(message_during_run="queue"), timers=False)
    first = message("part one")
    await driver.inbound(first)
    [request] = await driver.wait_runs(1)
    await driver.inbound(message("part two", mention=False, root=first.root_message_id))
    runner = FakeRunnerScript(driver, request)
    await runner.claim()
    await runner.emit("completed", text="done")
    requests = await driver.wait_runs(2)
    assert "part two" in (requests[1].input[0].text or "")
    assert not [c for c in await driver.controls(runner.runner_id) if c.kind == "steer"]


async def test_debounce_is_an_opt_in_timer(driver: Driver, settings_for: Callable[..., Settings]) -> None:
    await driver.start(settings_for(debounce_ms=60_000), timers=False)
    first = message("wait for more")
    await driver.inbound(first)

    async def debouncing() -> bool:
        state = await driver.redis.hget(driver.keys.session_state(first.session_key), "state")
        return state == b"debouncing"

    await wait_for(debouncing, what="debouncing")
    assert await _timers_of(driver, first.session_key) != []
    assert await driver.run_requests() == []
