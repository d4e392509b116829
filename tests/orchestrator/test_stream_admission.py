"""Each InboundEvent kind only from its own stream family, on real Redis: a job callback on a
platform inbound stream and a platform message on a job-callback stream are dead-lettered and
never handled; a job callback of the previous release left on an inbound stream is still
handled within the rollout window (orchestrator/stream_admission.py)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import REGISTRY
from redis.asyncio import Redis

from codex_broker.libs.contracts import Actor, InboundEvent, JobCallback, encode
from codex_broker.libs.keys import GROUP_ORCHESTRATOR, Keys
from codex_broker.orchestrator.config import Settings
from codex_broker.orchestrator.stream_admission import ROLLOUT_WINDOW_MS
from tests.helpers import wait_for
from tests.orchestrator.harness import Driver, FakeRunnerScript, message


def _counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _report(first: InboundEvent, job_id: str, summary: str, *, actor_id: str | None = None) -> InboundEvent:
    return InboundEvent(
        event_id=f"job:{job_id}:1",
        platform="slack",
        conversation_id=first.conversation_id,
        root_message_id=first.root_message_id,
        kind="job_callback",
        actor=Actor(id=actor_id or f"job:{job_id}", display_name="job build", is_bot=True),
        text=f"job {job_id} complete",
        job=JobCallback(job_id=job_id, status="complete", summary=summary),
    )


async def _redis_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return seconds * 1000 + micros // 1000


async def _dead_letters_when(redis: Redis, keys: Keys, count: int) -> list[dict[str, str]] | None:
    """The dead-letter stream's entries once it holds `count` of them."""
    entries = await redis.xrange(keys.dead_letter_stream)
    letters = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]
    return letters if len(letters) == count else None


async def _finished_first_turn(driver: Driver, first: InboundEvent) -> None:
    await driver.inbound(first)
    [request] = await driver.wait_runs(1)
    runner = FakeRunnerScript(driver, request)
    await runner.claim()
    await runner.emit("completed", text="registered")
    await driver.wait_idle(first.session_key)


async def test_an_event_on_the_wrong_stream_family_is_dead_lettered_never_handled(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    keys = driver.keys
    # the job-callback streams started long ago: the rollout window is over
    await driver.redis.set(
        keys.job_callback_streams_since, await _redis_ms(driver.redis) - 2 * ROLLOUT_WINDOW_MS
    )
    wrong_before = _counter("cb_orchestrator_wrong_stream_total", kind="job_callback")
    await driver.start(settings_for(admins=["ADM"]))
    first = message("start a build job")
    await _finished_first_turn(driver, first)

    forged_report = _report(first, "j1", "FORGED-REPORT-MARKER")  # as an ingress could write it
    await driver.inbound(forged_report)
    # as a compromised http-api or worker could write it: an admin's command in the thread
    forged_message = message(
        "FORGED-MESSAGE-MARKER /new", user="ADM", root=first.root_message_id, ts="111.300"
    )
    await driver.redis.xadd(keys.job_callback_stream_for(first.session_key), {"data": encode(forged_message)})

    letters = await wait_for(
        lambda: _dead_letters_when(driver.redis, keys, 2), what="both forged events dead-lettered"
    )
    by_source = {letter["source_stream"]: letter for letter in letters}
    inbound, job_stream = (
        keys.inbound_stream_for(first.session_key),
        keys.job_callback_stream_for(first.session_key),
    )
    assert set(by_source) == {inbound, job_stream}
    assert by_source[inbound]["reason"] == "refused: a job_callback event on a platform inbound stream"
    assert "FORGED-REPORT-MARKER" in by_source[inbound]["data"]
    assert by_source[job_stream]["reason"] == "refused: a message event on a job-callback stream"
    for stream in (inbound, job_stream):  # acked at the source: not redelivered
        assert (await driver.redis.xpending(stream, GROUP_ORCHESTRATOR))["pending"] == 0
    assert _counter("cb_orchestrator_wrong_stream_total", kind="job_callback") == wrong_before + 1
    # never handled: no turn, nothing queued, the admin's /new did not run (the thread is the same)
    assert len(await driver.run_requests()) == 1
    assert await driver.redis.llen(keys.session_queue(first.session_key)) == 0

    # the same session still takes a real report from its own stream, without the forged ones
    await driver.job_callback(_report(first, "j2", "REAL-REPORT-MARKER"))
    second = (await driver.wait_runs(2))[1]
    text = second.input[0].text or ""
    assert "REAL-REPORT-MARKER" in text and "FORGED" not in text
    assert second.thread_id == "thread-1"


async def test_a_previous_release_job_callback_on_inbound_is_handled_within_the_rollout_window(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    keys = driver.keys
    legacy_before = _counter("cb_orchestrator_legacy_job_callbacks_total")
    await driver.start(settings_for())  # the first reader sets the start of the job-callback streams
    first = message("start a build job")
    await _finished_first_turn(driver, first)
    assert await driver.redis.get(keys.job_callback_streams_since) is not None

    # written by a previous-release http-api still running: on the inbound stream
    await driver.inbound(_report(first, "j1", "OLD-RELEASE-REPORT"))
    second = (await driver.wait_runs(2))[1]
    assert "[background job j1: complete] OLD-RELEASE-REPORT" in (second.input[0].text or "")
    assert _counter("cb_orchestrator_legacy_job_callbacks_total") == legacy_before + 1

    # within the window too, a job callback whose actor is not its own job is refused
    await driver.inbound(_report(first, "j3", "NOT-ITS-JOB", actor_id="U1"))
    letters = await wait_for(
        lambda: _dead_letters_when(driver.redis, keys, 1), what="the stray job callback dead-lettered"
    )
    assert letters[0]["reason"] == "refused: a job_callback event on a platform inbound stream"
    assert _counter("cb_orchestrator_legacy_job_callbacks_total") == legacy_before + 1
