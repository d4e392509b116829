"""The claim/fence scripts on the real Redis: whichever of "reported lost" and "claimed" comes
first wins, and a fenced or ended run is never claimed afterwards."""

from __future__ import annotations

from redis.asyncio import Redis

from codex_broker.libs import run_fence
from codex_broker.libs.keys import Keys


async def _claim(redis: Redis, key: str) -> run_fence.ClaimResult:
    reply = await redis.eval(run_fence.CLAIM_RUN, 1, key, *run_fence.claim_args("r1", "boot1", 5))  # type: ignore[misc]
    return run_fence.claim_result(reply)


async def _fence(redis: Redis, key: str, mode: run_fence.FenceMode) -> int:
    return int(await redis.eval(run_fence.FENCE_RUN, 1, key, *run_fence.fence_args(mode)))  # type: ignore[misc]


async def test_a_fenced_run_is_never_claimed(redis: Redis, keys: Keys) -> None:
    key = keys.run("run-a")
    await redis.hset(key, mapping={"session_key": "s", "status": "queued"})
    assert await _fence(redis, key, "unclaimed") == 1
    assert await _claim(redis, key) == "fenced"
    assert await redis.hget(key, "runner_id") is None
    assert await redis.hget(key, "status") == b"queued"


async def test_a_run_claimed_first_is_not_fenced_as_unclaimed(redis: Redis, keys: Keys) -> None:
    key = keys.run("run-b")
    await redis.hset(key, mapping={"session_key": "s", "status": "queued"})
    assert await _claim(redis, key) == "claimed"
    assert await _fence(redis, key, "unclaimed") == 0
    assert await redis.hget(key, run_fence.FENCED_FIELD) is None
    # its runner gone: fenced anyway, and a second delivery of the entry cannot start it again
    assert await _fence(redis, key, "gone") == 1
    assert await _claim(redis, key) == "fenced"


async def test_an_ended_or_cancelled_run(redis: Redis, keys: Keys) -> None:
    ended = keys.run("run-c")
    await redis.hset(ended, mapping={"session_key": "s", run_fence.ENDED_FIELD: "completed"})
    assert await _claim(redis, ended) == "fenced"
    cancelled = keys.run("run-d")
    await redis.hset(cancelled, mapping={"session_key": "s", "cancel_requested": "1"})
    assert await _claim(redis, cancelled) == "cancelled"
    assert await redis.hget(cancelled, "runner_id") == b"r1"
