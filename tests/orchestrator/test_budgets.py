"""Budgets on real Redis: a user over budget is refused with the limit and its reset time, the
80 % notice comes once, an admin's exemption lets the user in again, and two orchestrator
replicas (and concurrent counters) count exactly."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from codex_broker.libs.contracts import AuditRecord, TokenUsage, decode
from codex_broker.libs.keys import Keys, shard_of
from codex_broker.libs.usage_counters import Subjects, TurnUsage, add_turn, period_id, read_facts
from codex_broker.orchestrator import budget
from codex_broker.orchestrator.config import Settings
from tests.helpers import wait_for
from tests.orchestrator.harness import Driver, FakeRunnerScript, message

LIMITS = {"user.day.tokens": 1000}


async def finish_turn(driver: Driver, request_index: int, *, tokens: int, runner_id: str = "r1") -> None:
    """A scripted runner claims run `request_index`, reports `tokens` used and completes it."""
    requests = await driver.wait_runs(request_index + 1)
    request = requests[request_index]
    runner = FakeRunnerScript(driver, request, runner_id=runner_id)
    await runner.claim()
    usage = TokenUsage(input_tokens=tokens - 10, output_tokens=10, total_tokens=tokens)
    await runner.emit("token_usage", usage=usage)
    await runner.emit("completed", text="done")

    async def idle() -> bool:
        return await driver.redis.hget(driver.keys.session_state(request.session_key), "state") == b"idle"

    await wait_for(idle, what="session idle after the run")


async def posts(driver: Driver, needle: str) -> list[str]:
    return [text for text in await driver.replies() if needle in text]


async def _kept(
    found: Awaitable[list[AuditRecord]], keep: Callable[[AuditRecord], bool]
) -> list[AuditRecord]:
    return [r for r in await found if keep(r)]


async def _count(found: Awaitable[list[str]], n: int) -> bool:
    return len(await found) >= n


async def user_tokens_today(driver: Driver, user: str = "slack:U1") -> int:
    now = datetime.now(UTC)
    raw = await driver.redis.hget(driver.keys.budget_counter("user", user, period_id("day", now)), "tokens")
    return int(raw or 0)


async def budget_audit(driver: Driver) -> list[AuditRecord]:
    entries = await driver.redis.xrange(driver.keys.audit_stream)
    records = [decode(AuditRecord, fields[b"data"]) for _, fields in entries]
    return [r for r in records if r.kind == "budget"]


async def test_over_budget_is_refused_with_the_limit_and_reset_time(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    orch = await driver.start(settings_for(budget_limits=LIMITS))
    await driver.inbound(message("first task", conversation="C1"))
    await finish_turn(driver, 0, tokens=1200)
    assert await user_tokens_today(driver) == 1200

    await driver.inbound(message("second task", conversation="C2"))
    [refusal] = await wait_for(lambda: posts(driver, "Budget reached"), what="the refusal")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d 00:00 UTC")
    assert "`user.day.tokens`" in refusal and "1,200 tokens of 1,000 tokens" in refusal
    assert tomorrow in refusal
    assert len(await driver.run_requests()) == 1  # no second turn
    [audited] = await wait_for(lambda: budget_audit(driver), what="the refusal on the audit trail")
    assert (audited.action, audited.platform, audited.actor) == ("refuse", "slack", "U1")
    assert audited.details["limit"] == "user.day.tokens" and audited.details["used"] == 1200

    # the counters are in Redis: a restarted orchestrator refuses just the same
    await driver.stop(orch)
    await driver.start(settings_for(budget_limits=LIMITS))
    await driver.inbound(message("after the restart", conversation="C5"))
    await wait_for(lambda: _count(posts(driver, "Budget reached"), 2), what="the refusal after a restart")
    assert len(await driver.run_requests()) == 1

    # another user of the same channel is not affected by U1's budget
    await driver.inbound(message("my task", conversation="C2", user="U2", name="Bob"))
    await driver.wait_runs(2)


async def test_a_running_turn_is_not_cut_steering_passes(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for(budget_limits=LIMITS))
    first = message("long task", conversation="C3")
    await driver.inbound(first)
    [request] = await driver.wait_runs(1)
    runner = FakeRunnerScript(driver, request, runner_id="r-long")
    await runner.claim()

    async def turn_active() -> bool:
        return await driver.redis.hget(driver.keys.session_state(request.session_key), "turn_active") == b"1"

    await wait_for(turn_active, what="turn active")
    # meanwhile another thread of the same user uses the whole budget
    await driver.inbound(message("quick task", conversation="C1"))
    await finish_turn(driver, 1, tokens=1100)
    # the running turn goes on and takes the user's follow-up; a new thread is refused
    await driver.inbound(message("also this", conversation="C3", root=first.root_message_id))

    async def steered() -> list:
        return [c for c in await driver.controls("r-long") if c.kind == "steer"]

    await wait_for(steered, what="the follow-up steered into the running turn")
    await driver.inbound(message("new thread", conversation="C4"))
    await wait_for(lambda: posts(driver, "Budget reached"), what="the new thread refused")
    await runner.emit("token_usage", usage=TokenUsage(input_tokens=300, output_tokens=0, total_tokens=300))
    await runner.emit("completed", text="done")

    async def counted() -> bool:
        return await user_tokens_today(driver) == 1400

    await wait_for(counted, what="the running turn counted when it ended")
    assert len(await driver.run_requests()) == 2


async def test_the_80_percent_notice_is_given_once(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for(budget_limits=LIMITS))
    await driver.inbound(message("one", conversation="C1"))
    await finish_turn(driver, 0, tokens=850)
    [notice] = await wait_for(lambda: posts(driver, "85% used"), what="the 80 % notice")
    assert "`user.day.tokens`" in notice and "850 tokens of 1,000 tokens" in notice
    await driver.inbound(message("two", conversation="C2"))  # still admitted, no second notice
    await finish_turn(driver, 1, tokens=50)
    await driver.inbound(message("three", conversation="C3"))
    await driver.wait_runs(3)
    await driver.inbound(
        message("-usage", conversation="C3", root=(await driver.run_requests())[2].coords.root_message_id)
    )
    await wait_for(lambda: posts(driver, "*You:*"), what="the usage answer")
    assert len(await posts(driver, "% used")) == 1


async def test_admin_exemption_and_raise_from_chat(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for(budget_limits=LIMITS, admins=["ADM"]))
    await driver.inbound(message("one", conversation="C1"))
    await finish_turn(driver, 0, tokens=1500)
    await driver.inbound(message("two", conversation="C2"))
    await wait_for(lambda: posts(driver, "Budget reached"), what="refused")

    await driver.inbound(message("-budget exempt user U1", conversation="C9", user="U2", name="Bob"))
    await wait_for(lambda: posts(driver, "Only admins"), what="a non-admin is refused")
    await driver.inbound(message("-budget exempt user <@U1>", conversation="C9", user="ADM", name="Root"))
    await wait_for(lambda: posts(driver, "now exempt"), what="exempted")
    exemptions = await wait_for(
        lambda: _kept(budget_audit(driver), lambda r: r.action == "exempt"), what="the exemption audited"
    )
    assert [(r.actor, r.details["user"]) for r in exemptions] == [("ADM", "slack:U1")]
    await driver.inbound(message("three", conversation="C3"))
    await driver.wait_runs(2)

    await driver.inbound(message("-budget unexempt user U1", conversation="C9", user="ADM", name="Root"))
    await wait_for(lambda: posts(driver, "no longer exempt"), what="unexempted")
    await driver.inbound(message("-budget set user U1 day tokens 5000", conversation="C9", user="ADM"))
    await wait_for(lambda: posts(driver, "is now 5,000 tokens"), what="raised")
    await driver.inbound(message("four", conversation="C4"))
    await driver.wait_runs(3)
    await driver.inbound(message("-budget show user U1", conversation="C9", user="ADM"))
    [shown] = await wait_for(lambda: posts(driver, "*Budgets*"), what="shown")
    assert "1,500 tokens of 5,000 tokens" in shown


async def test_two_replicas_count_one_user_exactly(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    a = await driver.start(settings_for())
    b = await driver.start(settings_for())

    async def split() -> bool:
        return len(a.held()) == 2 and len(b.held()) == 2

    await wait_for(split, timeout_s=15, what="shards split 2/2")
    events = [message(f"task {i}", conversation=f"C{i}") for i in range(10)]
    assert {shard_of(e.session_key, 4) in a.held() for e in events} == {True, False}  # both count
    for event in events:
        await driver.inbound(event)
    requests = await driver.wait_runs(10)
    runners = [FakeRunnerScript(driver, r, runner_id=f"r-{i}") for i, r in enumerate(requests)]
    for i, runner in enumerate(runners):
        await runner.claim()
        usage = TokenUsage(
            input_tokens=100 + i, cached_input_tokens=10, output_tokens=1, total_tokens=101 + i
        )
        await runner.emit("token_usage", usage=usage)
    await asyncio.gather(*(r.emit("completed", text="ok") for r in runners))
    expected = sum(101 + i for i in range(10))

    async def counted() -> bool:
        return await user_tokens_today(driver) == expected

    await wait_for(counted, timeout_s=20, what="all ten turns counted")
    facts = await read_facts(driver.redis, driver.keys, Subjects("slack:U1", "slack:C0"), datetime.now(UTC))
    assert (
        sum(
            v
            for k, v in facts.used.items()
            if k.scope == "deployment" and k.period == "month" and k.unit == "tokens"
        )
        == expected
    )


async def test_concurrent_counters_on_two_clients_are_exact(redis: Redis, keys: Keys, redis_url: str) -> None:
    other = Redis.from_url(redis_url)
    now = datetime.now(UTC)
    subjects = Subjects(user="slack:U7", channel="slack:C7", profile="team")
    turn = TurnUsage(input=90, cached=30, output=10, tokens=100, micro_usd=1234)

    async def one(client: Redis) -> None:
        pipe = client.pipeline(transaction=False)
        add_turn(pipe, keys, subjects, turn, now)
        await pipe.execute()

    try:
        await asyncio.gather(*(one(redis if i % 2 else other) for i in range(200)))
    finally:
        await other.aclose()
    for scope, subject in (
        ("user", "slack:U7"),
        ("channel", "slack:C7"),
        ("deployment", "all"),
        ("profile", "team"),
    ):
        for period in ("day", "month"):
            counter = await redis.hgetall(keys.budget_counter(scope, subject, period_id(period, now)))  # type: ignore[arg-type]
            assert counter[b"tokens"] == b"20000" and counter[b"micro_usd"] == b"246800"
            assert counter[b"turns"] == b"200" and counter[b"cached"] == b"6000"
            assert await redis.ttl(keys.budget_counter(scope, subject, period_id(period, now))) > 0  # type: ignore[arg-type]


async def test_an_admin_page_override_alone_is_enforced(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    """No limit in the environment: the override the admin page wrote is what refuses."""
    now = datetime.now(UTC)
    pipe = driver.redis.pipeline(transaction=False)
    add_turn(pipe, driver.keys, Subjects("slack:U1", "slack:C1"), TurnUsage(0, 0, 0, 600, 0), now)
    await pipe.execute()
    await driver.redis.hset(driver.keys.budget_overrides, "channel.month.tokens|slack:C1", "500")
    await driver.start(settings_for())
    await driver.inbound(message("task", conversation="C1"))
    [refusal] = await wait_for(lambda: posts(driver, "Budget reached"), what="the refusal")
    assert "this channel's monthly token budget (`channel.month.tokens`)" in refusal
    assert budget.when(budget.reset_at("month", now)) in refusal
    await driver.inbound(message("elsewhere", conversation="C2"))  # another channel is not limited
    await driver.wait_runs(1)
