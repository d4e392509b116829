"""Idempotency leases and done markers, and RPC replies / timeouts, on the real Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from codex_broker.libs.contracts import OutboundResult, RpcReply
from codex_broker.libs.idempotency import Claim, Idempotency
from codex_broker.libs.keys import Keys
from codex_broker.libs.rpc import REPLY_TTL_S, RpcTimeout, new_reply_key, send_reply, wait_reply


async def test_claim_complete_and_done_result(redis: Redis, keys: Keys) -> None:
    idem = Idempotency(redis, keys, "outbound")
    first = await idem.claim("a1", lease_ms=5000)
    assert first.status == "new"
    assert (await idem.claim("a1")).status == "in_progress"
    await idem.complete("a1", "1700000000.000100", ttl_s=60)
    done = await idem.claim("a1")
    assert done.status == "done"
    assert done.result == "1700000000.000100"
    assert 0 < await redis.ttl(keys.idempotency("outbound", "a1")) <= 60


async def test_release_lets_a_redelivery_try_again(redis: Redis, keys: Keys) -> None:
    idem = Idempotency(redis, keys, "outbound")
    assert (await idem.claim("a2")).status == "new"
    await idem.release("a2")
    assert (await idem.claim("a2")).status == "new"


async def test_lease_expires_when_the_holder_dies(redis: Redis, keys: Keys) -> None:
    idem = Idempotency(redis, keys, "outbound")
    assert (await idem.claim("a3", lease_ms=100)).status == "new"
    for _ in range(100):  # bounded: the 100 ms lease expires well within 5 s
        if (await idem.claim("a3", lease_ms=5000)).status == "new":
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("lease never expired")


async def test_scopes_are_separate(redis: Redis, keys: Keys) -> None:
    slack = Idempotency(redis, keys, "inbound-slack")
    feishu = Idempotency(redis, keys, "inbound-feishu")
    assert (await slack.claim("e1")).status == "new"
    assert (await feishu.claim("e1")).status == "new"


async def test_first_time(redis: Redis, keys: Keys) -> None:
    idem = Idempotency(redis, keys, "inbound-slack")
    assert await idem.first_time("slack:C1:1.1", ttl_s=86400) is True
    assert await idem.first_time("slack:C1:1.1", ttl_s=86400) is False
    assert await idem.first_time("slack:C1:1.2", ttl_s=86400) is True
    assert 0 < await redis.ttl(keys.idempotency("inbound-slack", "slack:C1:1.1")) <= 86400


async def test_rpc_reply_reaches_the_waiter(redis: Redis, keys: Keys) -> None:
    reply_key = keys.rpc_reply("req1")

    async def replier() -> None:
        await asyncio.sleep(0.05)
        await send_reply(redis, reply_key, OutboundResult(action_id="req1", ok=True, message_ids=["9.9"]))

    task = asyncio.create_task(replier())
    result = await wait_reply(redis, reply_key, OutboundResult, timeout_s=5)
    await task
    assert result.ok and result.message_ids == ["9.9"]
    assert not await redis.exists(reply_key)  # consumed by BLPOP


async def test_rpc_reply_nobody_waits_for_expires(redis: Redis, keys: Keys) -> None:
    reply_key = keys.rpc_reply("req2")
    await send_reply(redis, reply_key, RpcReply(request_id="req2", ok=True))
    assert 0 < await redis.ttl(reply_key) <= REPLY_TTL_S


async def test_rpc_timeout(redis: Redis, keys: Keys) -> None:
    with pytest.raises(RpcTimeout, match="no reply"):
        await wait_reply(redis, keys.rpc_reply("nobody"), RpcReply, timeout_s=0.2)


def test_reply_keys_are_unique() -> None:
    assert new_reply_key(prefix="t") != new_reply_key(prefix="t")
    assert new_reply_key(prefix="t").startswith("t:rpc:reply:")


async def test_rpc_wait_longer_than_the_client_socket_timeout(redis_url: str, keys: Keys) -> None:
    """A reply arriving after the client's socket timeout still reaches the waiter."""
    client = Redis.from_url(redis_url, socket_timeout=3.0)
    reply_key = keys.rpc_reply("slow")

    async def reply_late() -> None:
        await asyncio.sleep(3.5)
        await send_reply(client, reply_key, RpcReply(request_id="slow", ok=True))

    replier = asyncio.create_task(reply_late())
    result = await wait_reply(client, reply_key, RpcReply, timeout_s=5)
    await replier
    assert result.ok
    await client.delete(reply_key)
    await client.aclose()


async def _lapses(idem: Idempotency, key: str) -> bool:
    for _ in range(100):  # bounded: a sub-second lease expires well within 5 s
        if await idem.redis.get(idem.keys.idempotency(idem.scope, key)) is None:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_renewing_keeps_a_short_lease_past_its_length(redis: Redis, keys: Keys) -> None:
    idem = Idempotency(redis, keys, "outbound")
    assert (await idem.claim("r1", lease_ms=300)).status == "new"
    async with idem.renewing("r1", lease_ms=300, every_s=0.1):
        await asyncio.sleep(1.0)  # more than three lease lengths
        assert (await idem.claim("r1", lease_ms=300)).status == "in_progress"
    assert await _lapses(idem, "r1"), "the renewal went on after the block"


async def test_renewing_stops_when_the_block_fails(redis: Redis, keys: Keys) -> None:
    idem = Idempotency(redis, keys, "outbound")
    assert (await idem.claim("r2", lease_ms=300)).status == "new"
    with pytest.raises(RuntimeError):
        async with idem.renewing("r2", lease_ms=300, every_s=0.1):
            raise RuntimeError("effect failed")
    assert await _lapses(idem, "r2")


async def test_renewing_does_not_revive_a_done_marker(redis: Redis, keys: Keys) -> None:
    idem = Idempotency(redis, keys, "outbound")
    assert (await idem.claim("r3", lease_ms=300)).status == "new"
    async with idem.renewing("r3", lease_ms=300, every_s=0.05):
        await idem.complete("r3", "result", ttl_s=60)
        await asyncio.sleep(0.2)
    assert (await idem.claim("r3")) == Claim("done", "result")


async def test_claim_waiting_takes_over_a_dead_holders_lease(redis: Redis, keys: Keys) -> None:
    idem = Idempotency(redis, keys, "outbound")
    assert (await idem.claim("w1", lease_ms=300)).status == "new"  # the holder dies here
    claim = await idem.claim_waiting("w1", lease_ms=300, wait_s=5, poll_s=0.05)
    assert claim.status == "new"


async def test_claim_waiting_sees_the_holder_finish(redis: Redis, keys: Keys) -> None:
    idem = Idempotency(redis, keys, "outbound")
    assert (await idem.claim("w2", lease_ms=5000)).status == "new"

    async def holder() -> None:
        await asyncio.sleep(0.3)
        await idem.complete("w2", "posted", ttl_s=60)

    finishing = asyncio.create_task(holder())
    claim = await idem.claim_waiting("w2", lease_ms=5000, wait_s=5, poll_s=0.05)
    await finishing
    assert claim == Claim("done", "posted")


async def test_claim_waiting_gives_up_on_a_live_slow_holder(redis: Redis, keys: Keys) -> None:
    idem = Idempotency(redis, keys, "outbound")
    assert (await idem.claim("w3", lease_ms=300)).status == "new"
    async with idem.renewing("w3", lease_ms=300, every_s=0.1):
        claim = await idem.claim_waiting("w3", lease_ms=300, wait_s=0.8, poll_s=0.05)
    assert claim.status == "in_progress"
