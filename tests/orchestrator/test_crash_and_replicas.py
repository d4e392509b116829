"""Reconciliation of lost runs, restart from the consumer groups, and shard leases over replicas."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from codex_broker.libs.contracts import ProgressPayload
from codex_broker.libs.keys import shard_of
from codex_broker.orchestrator.config import Settings
from tests.helpers import wait_for
from tests.orchestrator.harness import Driver, FakeRunnerScript, message


async def test_runner_gone_is_reported_and_session_resumable(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for(runner_dead_after_s=1.0))
    first = message("work")
    await driver.inbound(first)
    [request] = await driver.wait_runs(1)
    runner = FakeRunnerScript(driver, request)
    await runner.claim(thread_id="thr-keep")
    await driver.redis.delete(driver.keys.heartbeat("codex-runner", runner.runner_id))  # the runner died
    final = await driver.wait_outbound(lambda a: a.action_id == f"final:{request.run_id}", timeout_s=15)
    assert isinstance(final.payload, ProgressPayload) and final.payload.outcome == "failed"
    assert "runner" in (final.payload.final_text or "")
    session = await driver.redis.hgetall(driver.keys.session(request.session_key))
    assert session[b"status"] == b"resumable" and session[b"thread_id"] == b"thr-keep"
    # a late terminal event from the dead runner changes nothing
    await runner.emit("completed", text="late")
    await driver.inbound(message("continue", mention=False, root=first.root_message_id))
    requests = await driver.wait_runs(2)
    assert requests[1].thread_id == "thr-keep"
    assert len([a for a in await driver.outbound() if a.action_id.startswith("final:")]) == 1


async def test_unclaimed_run_times_out(driver: Driver, settings_for: Callable[..., Settings]) -> None:
    await driver.start(settings_for(run_claim_timeout_s=1.0))
    await driver.inbound(message("nobody home"))
    [request] = await driver.wait_runs(1)
    final = await driver.wait_outbound(lambda a: a.action_id == f"final:{request.run_id}", timeout_s=15)
    assert "no Codex runner" in (final.payload.final_text or "")  # type: ignore[union-attr]
    assert await driver.redis.zcard(driver.keys.active_runs) == 0


async def test_killed_orchestrator_resumes_and_answers_once(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    """Kill between the mention and its answer; a new instance finishes the job exactly once."""
    orch = await driver.start(settings_for(shard_lease_ms=1500))
    first = message("survive a crash")
    await driver.inbound(first)
    [request] = await driver.wait_runs(1)
    await driver.kill(orch)
    runner = FakeRunnerScript(driver, request)
    await runner.claim()
    await runner.emit("text_delta", text="partial ")
    await runner.emit("completed", text="the answer")
    await driver.inbound(first)  # a platform retry while we were down
    await driver.start(settings_for(shard_lease_ms=1500))
    await driver.wait_outbound(lambda a: a.action_id == f"final:{request.run_id}", timeout_s=20)
    await asyncio.sleep(0.5)
    finals = [a for a in await driver.outbound() if a.action_id.startswith("final:")]
    assert len(finals) == 1 and finals[0].payload.final_text == "the answer"  # type: ignore[union-attr]
    assert len(await driver.run_requests()) == 1


async def test_two_replicas_split_shards_and_take_over(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    a = await driver.start(settings_for(shard_lease_ms=1500))
    b = await driver.start(settings_for(shard_lease_ms=1500))

    async def split() -> bool:
        return len(a.held()) == 2 and len(b.held()) == 2 and not (a.held() & b.held())

    await wait_for(split, timeout_s=15, what="shards split 2/2")
    # one mention per shard; each lands on the replica holding its shard
    events = []
    for i in range(12):
        event = message(f"task {i}", conversation=f"C{i}")
        events.append(event)
        await driver.inbound(event)
    await driver.wait_runs(12)
    # a dies; b takes every shard within the lease time
    victim_shards = a.held()
    await driver.kill(a)

    async def all_on_b() -> bool:
        return len(b.held()) == 4

    await wait_for(all_on_b, timeout_s=10, what="takeover by the survivor")
    pending = [e for e in events if shard_of(e.session_key, 4) in victim_shards]
    assert pending
    for event in pending:
        await driver.inbound(
            message("follow-up", conversation=event.conversation_id, root=event.root_message_id)
        )
    # the follow-ups came before their turns started: the survivor steers them in at turn start
    requests = await driver.run_requests()
    # every run is claimed first: claiming them one by one behind each steer's wait let the last
    # ones pass RUN_CLAIM_TIMEOUT_S on a loaded machine (reported lost, never steered)
    runners = [
        FakeRunnerScript(driver, request, runner_id=f"r-{request.run_id[:6]}")
        for request in requests[: len(events)]
    ]
    for runner in runners:
        await runner.claim()
    steered: list = []
    for runner in runners:

        async def steers(runner_id: str = runner.runner_id) -> list:
            return [c for c in await driver.controls(runner_id) if c.kind == "steer"]

        if shard_of(runner.request.session_key, 4) in victim_shards:
            steered += await wait_for(steers, timeout_s=20, what="the follow-up steered in")
        await runner.emit("completed", text=f"done {runner.request.coords.conversation_id}")
    assert len(steered) == len(pending) and all("follow-up" in (c.input[0].text or "") for c in steered)

    async def twelve_finals() -> list | None:
        found = [a for a in await driver.outbound() if a.action_id.startswith("final:")]
        return found if len(found) >= 12 else None

    finals = await wait_for(twelve_finals, timeout_s=20, what="12 answers")
    assert len({f.action_id for f in finals}) == len(finals) == 12
    assert len(await driver.run_requests()) == 12


async def test_sigterm_hands_shards_back(driver: Driver, settings_for: Callable[..., Settings]) -> None:
    a = await driver.start(settings_for(shard_lease_ms=60_000))
    await wait_for(lambda: len(a.held()) == 4, what="a holds everything")
    await driver.stop(a)
    b = await driver.start(settings_for(shard_lease_ms=60_000))
    await wait_for(lambda: len(b.held()) == 4, timeout_s=5, what="b takes the released shards at once")


async def test_restart_under_the_same_instance_id_adopts_its_leases(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    """`codex-broker up` restarts a killed replica under its old name: no waiting for expiry."""
    first = await driver.start(settings_for(instance_id="orchestrator-1", shard_lease_ms=60_000))
    await wait_for(lambda: len(first.held()) == 4, what="all shards held")
    await driver.kill(first)
    again = await driver.start(settings_for(instance_id="orchestrator-1", shard_lease_ms=60_000))
    await wait_for(lambda: len(again.held()) == 4, timeout_s=5, what="leases adopted long before expiry")
