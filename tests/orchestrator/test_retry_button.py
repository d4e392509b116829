"""Issue 16 item 5: the notice of an unclaimed turn offers Retry; a click runs the same input
once more, and a second click does nothing. Orchestrator over real Redis, no runner at all."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis

from codex_broker.libs.contracts import PostPayload, ProgressPayload, UpdatePayload
from codex_broker.libs.keys import GROUP_ORCHESTRATOR, Keys
from codex_broker.libs.records import RunRecord
from codex_broker.orchestrator.retry import can_retry
from tests.helpers import wait_for
from tests.orchestrator.harness import Driver, button, make_settings, message


async def _inbound_done(redis: Redis, keys: Keys, session_key: str) -> bool:
    groups = await redis.xinfo_groups(keys.inbound_stream_for(session_key))
    group = next(g for g in groups if g["name"] == GROUP_ORCHESTRATOR.encode())
    return group["pending"] == 0 and group["lag"] == 0


async def test_retry_reruns_a_lost_turn_once(
    driver: Driver, redis: Redis, keys: Keys, key_prefix: str, redis_url: str, tmp_path: Path
) -> None:
    await driver.start(make_settings(key_prefix, redis_url, tmp_path / "data", run_claim_timeout_s=0.5))
    first = message("retry-marker-3 please answer")
    await driver.inbound(first)
    (lost,) = await driver.wait_runs(1)
    final = await driver.wait_outbound(lambda a: a.action_id == f"final:{lost.run_id}", timeout_s=30)
    assert isinstance(final.payload, ProgressPayload) and final.payload.outcome == "failed"
    offer = await driver.wait_outbound(lambda a: a.action_id == f"retry-offer:{lost.run_id}")
    assert isinstance(offer.payload, PostPayload)
    [retry_button] = offer.payload.buttons
    assert (retry_button.action, retry_button.value) == ("retry", lost.run_id)

    await driver.inbound(button("retry", lost.run_id, root=first.root_message_id))
    runs = await driver.wait_runs(2)
    again = runs[1]
    assert again.run_id != lost.run_id and again.session_key == lost.session_key
    assert again.input == lost.input
    done = await driver.wait_outbound(lambda a: a.action_id == f"retry-done:{lost.run_id}")
    assert isinstance(done.payload, UpdatePayload) and done.payload.ref == offer.payload.ref

    await driver.inbound(button("retry", lost.run_id, root=first.root_message_id))
    await wait_for(lambda: _inbound_done(redis, keys, first.session_key), what="the second click handled")
    assert len(await driver.run_requests()) == 2
    assert [a.action_id for a in await driver.outbound()].count(f"retry-done:{lost.run_id}") == 1


def test_what_can_be_retried() -> None:
    run = RunRecord(session_key="s", fenced="unclaimed", inputs="[]")
    assert can_retry(run, "s")
    assert not can_retry(run, "other-thread")
    assert not can_retry(run.replace(fenced=""), "s")  # not reported lost: it may still run
    assert not can_retry(RunRecord(session_key="s", fenced="gone"), "s")  # an older run: no input kept
