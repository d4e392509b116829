"""The ingress kit on the in-memory FakePlatform and the real Redis: inbound store, outbound
executor (once per action id, failure policy, RPC replies, refs), live view (seq, pacing, lease)."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from codex_broker.libs.bus import DeadLetter, Delivery, StreamBus
from codex_broker.libs.contracts import (
    Actor,
    Attachment,
    DownloadPayload,
    EphemeralPayload,
    HistoryPayload,
    InboundEvent,
    OutboundAction,
    OutboundResult,
    PostPayload,
    ProgressPayload,
    UpdatePayload,
    decode,
    encode,
)
from codex_broker.libs.idempotency import Idempotency
from codex_broker.libs.ingress_kit import live_view
from codex_broker.libs.ingress_kit.deadletter import DeadLetterWriter
from codex_broker.libs.ingress_kit.fake import FakePlatform
from codex_broker.libs.ingress_kit.inbound import InboundStore
from codex_broker.libs.ingress_kit.live_view import LiveViews, ViewBusy
from codex_broker.libs.ingress_kit.outbound import (
    OutboundConfig,
    OutboundExecutor,
    current_action_id,
    outbound_consumer,
    run_outbound,
)
from codex_broker.libs.ingress_kit.parts import PostedParts
from codex_broker.libs.ingress_kit.platform import Platform, PlatformError, Target, ViewsIn
from codex_broker.libs.keys import Keys
from codex_broker.libs.rpc import wait_reply
from tests.helpers import wait_for

CONV, ROOT = "chat", "100.000001"
TARGET = Target(CONV, ROOT)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def inbound(event_id: str = "web:e1", text: str = "hello") -> InboundEvent:
    return InboundEvent(
        event_id=event_id,
        platform="web",
        conversation_id=CONV,
        root_message_id=ROOT,
        message_id=ROOT,
        actor=Actor(id="alice", display_name="alice"),
        text=text,
        is_direct=True,
    )


def action(payload: object, action_id: str = "a1", reply_to: str | None = None) -> OutboundAction:
    return OutboundAction(
        action_id=action_id,
        platform="web",
        conversation_id=CONV,
        root_message_id=ROOT,
        payload=payload,  # type: ignore[arg-type]
        reply_to=reply_to,
    )


def delivery(a: OutboundAction, entry: str = "1-0") -> Delivery:
    return Delivery(stream="s", entry_id=entry, data=encode(a))


def snap(seq: int, phase: str = "update", **extra: object) -> ProgressPayload:
    return ProgressPayload(progress_id="run-1", run_id="run-1", seq=seq, phase=phase, **extra)  # type: ignore[arg-type]


@pytest.fixture
def fake() -> FakePlatform:
    return FakePlatform("web")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def views(fake: FakePlatform, redis: Redis, keys: Keys, clock: Clock) -> LiveViews:
    return LiveViews(fake, redis, keys, interval_s=1.0, clock=clock)


@pytest.fixture
def executor(fake: FakePlatform, redis: Redis, keys: Keys, views: LiveViews) -> OutboundExecutor:
    return OutboundExecutor(fake, redis, keys, views)


def test_the_fake_implements_the_protocol(fake: FakePlatform) -> None:
    assert isinstance(fake, Platform)


# ---- inbound --------------------------------------------------------------------------------------


async def test_inbound_persists_once_per_event_id(redis: Redis, keys: Keys) -> None:
    store = InboundStore(redis, keys, platform="web", maxlen=1000)
    event = inbound()
    assert await store.persist(event) is True
    assert await store.persist(event) is False
    entries = await redis.xrange(keys.inbound_stream_for(event.session_key))
    assert len(entries) == 1
    assert decode(InboundEvent, entries[0][1][b"data"]).text == "hello"


async def test_a_failed_store_releases_the_claim_so_a_resend_is_stored(redis: Redis, keys: Keys) -> None:
    store = InboundStore(redis, keys, platform="web", maxlen=1000)
    event = inbound("web:e2")
    with pytest.raises(Exception, match="expire"):  # an EX of 0 fails the round trip in Redis
        await store.persist(event, also_set={keys.lease("x"): ("v", 0)})
    assert await store.persist(event, also_set={keys.lease("x"): ("v", 60)}) is True
    assert await redis.get(keys.lease("x")) == b"v"


async def test_dead_letter_writer_records_the_source(redis: Redis, keys: Keys) -> None:
    writer = DeadLetterWriter(redis, keys, source="web:http", group="ingress-web")
    await writer.write({"bad": "x" * 100_000}, "not a message", source_id="req-1")
    [(_, fields)] = await redis.xrange(keys.dead_letter_stream)
    assert fields[b"source_stream"] == b"web:http" and fields[b"source_id"] == b"req-1"
    assert fields[b"reason"] == b"not a message" and len(fields[b"data"]) <= 64 * 1024


# ---- outbound effects -----------------------------------------------------------------------------


async def test_an_effect_runs_once_and_a_redelivery_gets_the_stored_result(
    executor: OutboundExecutor, fake: FakePlatform, redis: Redis, keys: Keys
) -> None:
    first = action(PostPayload(text="hi"), reply_to=keys.rpc_reply("r1"))
    await executor.handle(delivery(first))
    await executor.handle(delivery(first, "2-0"))
    assert fake.count("post") == 1
    replies = [await wait_reply(redis, keys.rpc_reply("r1"), OutboundResult, timeout_s=2) for _ in range(2)]
    assert replies[0].message_ids == replies[1].message_ids and replies[0].ok


async def test_a_transient_failure_stays_pending_and_the_retry_posts(
    executor: OutboundExecutor, fake: FakePlatform
) -> None:
    fake.fail("post", "rate_limited", permanent=False)
    a = action(PostPayload(text="retry me"))
    with pytest.raises(Exception, match="rate_limited"):
        await executor.handle(delivery(a))
    await executor.handle(delivery(a))
    assert [m.text for m in fake.thread(TARGET)] == ["retry me"]


async def test_a_permanent_failure_dead_letters_and_answers_the_requester(
    executor: OutboundExecutor, fake: FakePlatform, redis: Redis, keys: Keys
) -> None:
    fake.fail("post", "channel_not_found", permanent=True)
    a = action(PostPayload(text="never"), reply_to=keys.rpc_reply("r2"))
    with pytest.raises(DeadLetter, match="channel_not_found"):
        await executor.handle(delivery(a))
    reply = await wait_reply(redis, keys.rpc_reply("r2"), OutboundResult, timeout_s=2)
    assert reply.ok is False and reply.error == "channel_not_found"


async def test_an_ephemeral_answer_carries_the_platforms_link_to_the_thread_it_names(
    executor: OutboundExecutor, fake: FakePlatform
) -> None:
    linked = EphemeralPayload(user_id="alice", text="d1 completed", thread="200.1")
    await executor.handle(delivery(action(linked, "e1")))
    [shown] = [m.text for m in fake.thread(TARGET)]
    assert shown == "d1 completed\n[the thread](fake://chat/200.1)"
    await executor.handle(delivery(action(EphemeralPayload(user_id="alice", text="plain"), "e2")))
    assert fake.count("thread_link") == 1  # only asked for when there is a thread


async def test_a_thread_link_refused_for_good_leaves_the_text_and_a_passing_failure_retries(
    executor: OutboundExecutor, fake: FakePlatform
) -> None:
    fake.fail("thread_link", "message_not_found", permanent=True)
    await executor.handle(delivery(action(EphemeralPayload(user_id="alice", text="a", thread="9.9"), "e1")))
    fake.fail("thread_link", "ratelimited", permanent=False)
    retried = action(EphemeralPayload(user_id="alice", text="b", thread="9.9"), "e2")
    with pytest.raises(PlatformError, match="ratelimited"):
        await executor.handle(delivery(retried))
    await executor.handle(delivery(retried))
    assert [m.text for m in fake.thread(TARGET)] == ["a", "b\n[the thread](fake://chat/9.9)"]


async def test_a_wrong_platform_is_dead_lettered(executor: OutboundExecutor) -> None:
    a = action(PostPayload(text="x")).model_copy(update={"platform": "slack"})
    with pytest.raises(DeadLetter, match="slack on the web stream"):
        await executor.handle(delivery(a))


async def test_an_update_by_ref_edits_the_post_of_that_name(
    executor: OutboundExecutor, fake: FakePlatform
) -> None:
    await executor.handle(delivery(action(PostPayload(text="approve?", ref="approval:1"), "p1")))
    await executor.handle(delivery(action(UpdatePayload(ref="approval:1", text="approved"), "u1")))
    assert [m.text for m in fake.thread(TARGET)] == ["approved"]
    with pytest.raises(DeadLetter, match="unknown message ref"):
        await executor.handle(delivery(action(UpdatePayload(ref="nope", text="x"), "u2")))


async def test_reads_answer_every_time(
    executor: OutboundExecutor, fake: FakePlatform, redis: Redis, keys: Keys
) -> None:
    fake.seed(TARGET, "alice", "first")
    fake.seed(TARGET, "bob", "second")
    history = action(HistoryPayload(limit=10), "h1", reply_to=keys.rpc_reply("h"))
    await executor.handle(delivery(history))
    await executor.handle(delivery(history))
    for _ in range(2):
        reply = await wait_reply(redis, keys.rpc_reply("h"), OutboundResult, timeout_s=2)
        assert [m.text for m in reply.messages] == ["first", "second"]
    files = DownloadPayload(attachments=[Attachment(id="f1", name="a.txt")], dest_dir="/x")
    await executor.handle(delivery(action(files, "d1", reply_to=keys.rpc_reply("d"))))
    reply = await wait_reply(redis, keys.rpc_reply("d"), OutboundResult, timeout_s=2)
    assert reply.ok and reply.files[0].local_path == "/x/a.txt"


async def test_the_consumer_dead_letters_a_permanent_failure_from_the_stream(
    executor: OutboundExecutor, fake: FakePlatform, redis: Redis, keys: Keys
) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    consumer = outbound_consumer(executor, bus, consumer="c1")
    fake.fail("post", "invalid_blocks", permanent=True)
    await bus.publish(keys.outbound_stream("web"), action(PostPayload(text="bad"), "x1"))
    await bus.publish(keys.outbound_stream("web"), action(PostPayload(text="good"), "x2"))
    assert await consumer.drain() == 2
    assert [m.text for m in fake.thread(TARGET)] == ["good"]
    [(_, fields)] = await redis.xrange(keys.dead_letter_stream)
    assert b"invalid_blocks" in fields[b"reason"]


# ---- live view ------------------------------------------------------------------------------------


async def test_snapshots_apply_in_seq_order_and_stale_ones_are_dropped(
    executor: OutboundExecutor, fake: FakePlatform, clock: Clock
) -> None:
    await executor.handle(delivery(action(snap(0, "start", activity="starting"), "v0")))
    clock.now += 2
    await executor.handle(delivery(action(snap(2, answer_text="two"), "v2")))
    clock.now += 2
    await executor.handle(delivery(action(snap(1, answer_text="one"), "v1")))  # late: dropped
    await executor.handle(delivery(action(snap(2, answer_text="two"), "v2")))  # redelivered: dropped
    assert [(op, s.seq) for op, s in fake.views["run-1"]] == [("open", 0), ("update", 2)]


async def test_a_snapshot_inside_the_interval_is_parked_and_flushed_later(
    executor: OutboundExecutor, views: LiveViews, fake: FakePlatform, clock: Clock
) -> None:
    await executor.handle(delivery(action(snap(0, "start"), "v0")))
    await executor.handle(delivery(action(snap(1, answer_text="a"), "v1")))
    await executor.handle(delivery(action(snap(2, answer_text="ab"), "v2")))  # replaces the parked one
    assert [s.seq for _, s in fake.views["run-1"]] == [0]
    clock.now += 1
    await views.flush("run-1")
    assert [(op, s.seq, s.answer_text) for op, s in fake.views["run-1"]][-1] == ("update", 2, "ab")
    await views.close()


async def test_the_finish_is_applied_at_once_and_marks_the_answer_done(
    executor: OutboundExecutor, fake: FakePlatform, redis: Redis, keys: Keys
) -> None:
    await executor.handle(delivery(action(snap(0, "start"), "v0")))
    finish = snap(1, "finish", outcome="completed", final_text="The answer.")
    await executor.handle(delivery(action(finish, "final:run-1")))
    assert [op for op, _ in fake.views["run-1"]] == ["open", "finish"]
    assert "The answer." in [m.text for m in fake.thread(TARGET)]
    claim = await Idempotency(redis, keys, "outbound").claim("final:run-1")
    assert claim.status == "done" and decode(OutboundResult, claim.result or "").ok
    await executor.handle(delivery(action(snap(2, answer_text="late"), "v9")))  # after the finish: dropped
    assert len(fake.views["run-1"]) == 2


async def test_a_run_that_ends_before_any_view_only_posts_the_answer(
    executor: OutboundExecutor, fake: FakePlatform
) -> None:
    await executor.handle(delivery(action(snap(0, "finish", final_text="Quick."), "final:run-1")))
    assert [op for op, _ in fake.views["run-1"]] == ["finish"]
    assert [m.text for m in fake.thread(TARGET)] == ["Quick."]


async def test_a_permanent_failure_of_the_finish_still_marks_it_done(
    executor: OutboundExecutor, fake: FakePlatform, redis: Redis, keys: Keys
) -> None:
    fake.fail("view_finish", "msg_too_long", permanent=True)
    with pytest.raises(DeadLetter):
        await executor.handle(delivery(action(snap(0, "finish", final_text="x"), "final:run-1")))
    claim = await Idempotency(redis, keys, "outbound").claim("final:run-1")
    assert claim.status == "done" and not decode(OutboundResult, claim.result or "").ok


async def test_another_replicas_lease_on_the_view_is_respected(
    fake: FakePlatform, redis: Redis, keys: Keys, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_view, "LOCK_WAIT_S", 0.2)
    replica_a = LiveViews(fake, redis, keys, clock=clock)
    replica_b = LiveViews(fake, redis, keys, clock=clock)
    await replica_a.handle(action(snap(0, "start"), "v0"))
    lock = keys.live_view("web", "run-1") + ":lock"
    await redis.set(lock, "someone-else", px=60_000)  # another replica is mid-apply
    with pytest.raises(ViewBusy):
        await replica_b.handle(action(snap(1, "finish", final_text="done"), "final"))
    assert [op for op, _ in fake.views["run-1"]] == ["open"]
    await redis.delete(lock)
    await replica_b.handle(action(snap(1, "finish", final_text="done"), "final"))
    assert [op for op, _ in fake.views["run-1"]] == ["open", "finish"]
    assert await redis.get(lock) is None  # released after the apply


async def test_two_replicas_applying_at_once_never_apply_one_seq_twice(
    fake: FakePlatform, redis: Redis, keys: Keys, clock: Clock
) -> None:
    replicas = [LiveViews(fake, redis, keys, interval_s=0, clock=clock) for _ in range(2)]
    await replicas[0].handle(action(snap(0, "start"), "v0"))
    snapshots = [action(snap(seq, answer_text=str(seq)), f"v{seq}") for seq in range(1, 9)]
    await asyncio.gather(*(replicas[i % 2].handle(a) for i, a in enumerate(snapshots + snapshots)))
    applied = [s.seq for _, s in fake.views["run-1"]]
    assert applied == sorted(set(applied)) and applied[-1] == 8


# ---- what the slack and feishu adapters need of the kit ----------------------------------------------


async def test_a_transient_failure_on_the_last_delivery_is_given_up_and_answered(
    fake: FakePlatform, redis: Redis, keys: Keys, views: LiveViews
) -> None:
    told: list[tuple[str, str]] = []

    async def tell(a: OutboundAction, exc: PlatformError) -> None:
        told.append((a.action_id, exc.error))

    executor = OutboundExecutor(fake, redis, keys, views, max_deliveries=3, on_give_up=tell)
    fake.fail("post", "timeout", permanent=False, times=3)
    a = action(PostPayload(text="x"), "t1", reply_to=keys.rpc_reply("t1"))
    for deliveries in (1, 2):  # not the last one yet: left pending for redelivery
        with pytest.raises(PlatformError):
            await executor.handle(Delivery(stream="s", entry_id="1-0", data=encode(a), deliveries=deliveries))
    assert told == []
    with pytest.raises(DeadLetter, match="timeout"):
        await executor.handle(Delivery(stream="s", entry_id="1-0", data=encode(a), deliveries=3))
    reply = await wait_reply(redis, keys.rpc_reply("t1"), OutboundResult, timeout_s=2)
    assert reply.ok is False and reply.error == "timeout"
    assert told == [("t1", "timeout")]


async def test_the_give_up_hook_is_not_asked_for_a_failed_read_and_its_own_failure_is_harmless(
    fake: FakePlatform, redis: Redis, keys: Keys, views: LiveViews
) -> None:
    told: list[str] = []

    async def tell(a: OutboundAction, exc: PlatformError) -> None:
        told.append(a.kind)
        raise RuntimeError("the thread is gone too")

    executor = OutboundExecutor(fake, redis, keys, views, on_give_up=tell)
    fake.fail("history", "not_in_channel", permanent=True)
    with pytest.raises(DeadLetter):
        await executor.handle(delivery(action(HistoryPayload(limit=5), "h9")))
    fake.fail("post", "not_in_channel", permanent=True)
    with pytest.raises(DeadLetter, match="not_in_channel"):
        await executor.handle(delivery(action(PostPayload(text="x"), "p9")))
    assert told == ["post"]


async def test_the_claim_lease_is_the_executors_own_and_a_lapsed_one_is_taken_over(
    fake: FakePlatform, redis: Redis, keys: Keys, views: LiveViews
) -> None:
    executor = OutboundExecutor(fake, redis, keys, views, lease_ms=300, renew_s=0.1)
    a = action(PostPayload(text="once"), "l1")
    # a replica claimed it and died: its 300 ms claim lapses, this one waits it out and posts
    assert (await Idempotency(redis, keys, "outbound").claim("l1", lease_ms=300)).status == "new"
    await executor.handle(delivery(a))
    assert fake.count("post") == 1


async def test_an_effect_sees_its_action_id(
    fake: FakePlatform, redis: Redis, keys: Keys, views: LiveViews
) -> None:
    seen: list[str | None] = []

    class Recording(FakePlatform):
        async def post(self, target: Target, payload: PostPayload, *, parts_id: str) -> list[str]:
            seen.append(current_action_id())
            return await super().post(target, payload, parts_id=parts_id)

    executor = OutboundExecutor(Recording("web"), redis, keys, views)
    await executor.handle(delivery(action(PostPayload(text="x"), "id-7")))
    assert seen == ["id-7"] and current_action_id() is None


async def test_a_checkpointed_open_is_continued_after_a_failure_not_opened_again(
    redis: Redis, keys: Keys, clock: Clock
) -> None:
    class TwoStepOpen(FakePlatform):
        """Opens with two calls; the second fails once after the first made the view."""

        async def view_open(self, target: Target, snapshot: ProgressPayload) -> dict[str, object]:
            handle = await super().view_open(target, snapshot)
            await live_view.checkpoint(handle)
            self._call("view_open_second_call")
            return handle

    platform = TwoStepOpen("web")
    platform.fail("view_open_second_call", "timeout")
    views = LiveViews(platform, redis, keys, clock=clock)
    with pytest.raises(PlatformError):
        await views.handle(action(snap(0, "start", activity="one"), "v0"))
    clock.now += 2
    await views.handle(action(snap(0, "start", activity="one"), "v0"))  # the redelivery
    assert [op for op, _ in platform.views["run-1"]] == ["open", "update"]
    assert len(platform.thread(TARGET)) == 1
    await live_view.checkpoint({"outside": "an apply"})  # a no-op there


async def test_posted_parts_post_only_the_missing_pieces(redis: Redis, keys: Keys) -> None:
    parts = PostedParts(redis, keys, "slack")
    sent: list[int] = []

    async def send(index: int) -> str:
        if index == 2 and not sent.count(2):
            sent.append(2)
            raise RuntimeError("crashed before the third piece")
        sent.append(index)
        return f"ts{index}"

    with pytest.raises(RuntimeError):
        await parts.post_missing("p1", 3, send)
    assert await parts.post_missing("p1", 3, send) == ["ts0", "ts1", "ts2"]
    assert sent == [0, 1, 2, 2]
    assert await redis.ttl(keys.outbound_ref("slack", "parts:p1")) > 0


async def test_views_in_hands_the_three_view_steps_to_the_adapters_view_module(fake: FakePlatform) -> None:
    steps: list[str] = []

    class Surface:
        async def open(self, target: Target, snapshot: ProgressPayload) -> dict[str, object]:
            steps.append("open")
            return {"n": 1}

        async def update(
            self, target: Target, handle: dict[str, object], snapshot: ProgressPayload
        ) -> dict[str, object]:
            steps.append(f"update {handle['n']}")
            return {"n": 2}

        async def finish(
            self, target: Target, handle: dict[str, object] | None, snapshot: ProgressPayload
        ) -> dict[str, object]:
            steps.append(f"finish {handle}")
            return {}

    class Adapter(ViewsIn):
        views = Surface()

    adapter = Adapter()
    assert await adapter.view_open(TARGET, snap(0, "start")) == {"n": 1}
    assert await adapter.view_update(TARGET, {"n": 1}, snap(1)) == {"n": 2}
    await adapter.view_finish(TARGET, None, snap(2, "finish"))
    assert steps == ["open", "update 1", "finish None"]


async def test_run_outbound_consumes_the_platforms_stream_and_flushes_parked_snapshots_on_stop(
    fake: FakePlatform, redis: Redis, keys: Keys
) -> None:
    bus = StreamBus(redis, dead_letter_stream=keys.dead_letter_stream)
    stream = keys.outbound_stream("web")
    await bus.publish(stream, action(PostPayload(text="hello"), "o1"))
    await bus.publish(stream, action(snap(0, "start", activity="one"), "o2"))
    await bus.publish(stream, action(snap(1, activity="two"), "o3"))  # inside the 60 s pace: parked
    stop = asyncio.Event()
    config = OutboundConfig(consumer="c1", interval_s=60, block_ms=100)
    task = asyncio.create_task(run_outbound(fake, redis, keys, bus, stop, config))
    view = keys.live_view("web", "run-1")
    await wait_for(lambda: redis.hget(view, "pending_seq"), what="the second snapshot parked")
    assert fake.count("post") == 1 and fake.count("view_open") == 1 and fake.count("view_update") == 0
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert [(op, s.seq) for op, s in fake.views["run-1"]] == [("open", 0), ("update", 1)]
