"""Routing throughput without Codex: ingress → orchestrator → runs stream (and on through the
outbound stream back to the fake Slack), with a bench consumer in place of the runner.

`codex-broker up` runs with no codex-runner (`--replicas codex-runner=0`); this script reads the
runs stream in the runners' group. Two sources, each a burst of N new threads at once:

  - slack:  N mentions pushed by the fake Slack (each is two Socket Mode envelopes, `message`
            and `app_mention`, which the ingress folds into one inbound event);
  - stream: N InboundEvents XADDed straight onto the inbound streams (the orchestrator alone).

and two passes per source:

  - routing:    the bench consumer claims each RunRequest as a runner does (publishes
                `accepted`) and holds the run: the figure is the path the target names,
                ingress → orchestrator → runs stream, with nothing else competing for the CPU;
                the held runs are then completed (not measured);
  - round trip: it answers at once (`accepted`, `turn_started`, `completed` with `ok <marker>`),
                so the orchestrator also finishes runs and the ingress posts answers.

Prints events per second to the runs stream (N / time until the bench consumer read the last
RunRequest), through to the final answer at the fake Slack, and CPU per event of each service.

    uv run python bench/routing_bench.py [--events 1000] [--sources slack,stream] [--orchestrators 1]
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bench._common import (
    BENCH_USER,
    LIFTED_CAPS,
    REDIS_URL,
    TimedSlack,
    Usage,
    arg_parser,
    broker_bench,
    load_note,
    marker,
    print_table,
    service_pids,
)
from codex_broker.libs.bus import DATA_FIELD
from codex_broker.libs.contracts import Actor, InboundEvent, RunEvent, RunRequest, decode, encode
from codex_broker.libs.heartbeat import Heartbeat
from codex_broker.libs.keys import GROUP_RUNNERS, Keys

RUNNER_ID = "bench-consumer"


class BenchConsumer:
    """Plays an infinitely fast runner: every RunRequest is answered `completed` at once."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self.seen: dict[str, float] = {}  # marker → when its RunRequest was read
        # False: only claim (publish `accepted`, as a runner does) and hold the runs, so the pass
        # measures routing alone; they are completed when `complete` is set again
        self.complete = True
        self.held: list[tuple[RunRequest, str | None]] = []
        self.waiting: set[str] = set()  # markers a pass waits for; `all_seen` once all are read
        self.all_seen = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        stream = self.keys.runs_stream
        with contextlib.suppress(ResponseError):  # BUSYGROUP: already there
            await self.redis.xgroup_create(stream, GROUP_RUNNERS, id="0", mkstream=True)
        beating = asyncio.create_task(self.heartbeat(stop))
        try:
            await self.consume(stream, stop)
        finally:
            beating.cancel()

    async def heartbeat(self, stop: asyncio.Event) -> None:
        """Like a runner's: without it the orchestrator reports runs of a runner it cannot see as lost."""
        beat = Heartbeat(
            self.redis, self.keys, "codex-runner", RUNNER_ID, ttl_s=10, details=lambda: {"active": 0}
        )
        while not stop.is_set():
            await beat.beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2)
        await beat.clear()

    async def consume(self, stream: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            response: Any = await self.redis.xreadgroup(
                GROUP_RUNNERS, RUNNER_ID, {stream: ">"}, count=500, block=500
            )
            if not response:
                continue
            now = time.monotonic()
            pipe = self.redis.pipeline(transaction=False)
            ids = []
            for entry_id, fields in response[0][1]:
                ids.append(entry_id)
                request = decode(RunRequest, fields[DATA_FIELD.encode()])
                text = " ".join(i.text or "" for i in request.input)
                mark = next((w for w in text.split() if w.startswith("bm") and len(w) == 14), None)
                if mark:
                    self.seen.setdefault(mark, now)
                    self.waiting.discard(mark)
                    if not self.waiting:
                        self.all_seen.set()
                self.add_events(pipe, request, self.events(request, mark, upto=0))
                if self.complete:
                    self.add_events(pipe, request, self.events(request, mark)[1:], status="completed")
                else:
                    self.held.append((request, mark))
            pipe.xack(stream, GROUP_RUNNERS, *ids)
            await pipe.execute()

    async def release(self) -> None:
        """Complete every held run (after a claim-only pass) and go back to instant turns."""
        self.complete = True
        held, self.held = self.held, []
        pipe = self.redis.pipeline(transaction=False)
        for request, mark in held:
            self.add_events(pipe, request, self.events(request, mark)[1:], status="completed")
        await pipe.execute()

    def add_events(self, pipe: Any, request: RunRequest, events: list[RunEvent], status: str = "") -> None:
        for event in events:
            pipe.xadd(self.keys.run_events_stream_for(request.session_key), {DATA_FIELD: encode(event)})
        fields = {"runner_id": RUNNER_ID, "status": status or "running"}
        pipe.hset(self.keys.run(request.run_id), mapping=fields)

    @staticmethod
    def events(request: RunRequest, mark: str | None, upto: int = 2) -> list[RunEvent]:
        thread = request.thread_id or f"thread-{request.run_id}"
        common = {"run_id": request.run_id, "session_key": request.session_key, "runner_id": RUNNER_ID}
        return [
            RunEvent(seq=0, kind="accepted", **common),
            RunEvent(
                seq=1, kind="turn_started", thread_id=thread, turn_id=f"turn-{request.run_id}", **common
            ),
            RunEvent(seq=2, kind="completed", thread_id=thread, text=f"ok {mark}", **common),
        ][: upto + 1]


def inbound(mark: str, index: int) -> InboundEvent:
    ts = f"{int(time.time())}.{index:06d}"
    return InboundEvent(
        event_id=f"slack:CSTREAM:{ts}-{mark}",
        platform="slack",
        conversation_id="CSTREAM",
        root_message_id=f"{ts}{mark[-4:]}",
        message_id=f"{ts}{mark[-4:]}",
        actor=Actor(id=BENCH_USER, display_name="Bench"),
        text=f"task {mark}",
        is_mention=True,
    )


async def burst(source: str, n: int, slack: TimedSlack, redis: Redis, keys: Keys) -> list[str]:
    marks = [marker() for _ in range(n)]
    if source == "slack":
        messages = [
            {"channel": f"CROUTE{i % 20}", "user": BENCH_USER, "text": slack.mention_text(m)}
            for i, m in enumerate(marks)
        ]
        await asyncio.to_thread(slack.burst, messages)
    else:
        pipe = redis.pipeline(transaction=False)
        for index, mark in enumerate(marks):
            event = inbound(mark, index)
            pipe.xadd(keys.inbound_stream_for(event.session_key), {DATA_FIELD: encode(event)})
        await pipe.execute()
    return marks


async def wait_seen(consumer: BenchConsumer, marks: list[str], timeout_s: float) -> None:
    consumer.waiting = {m for m in marks if m not in consumer.seen}
    consumer.all_seen.clear()
    if consumer.waiting:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(consumer.all_seen.wait(), timeout_s)


async def one_pass(
    source: str, mode: str, n: int, ctx: dict[str, Any], consumer: BenchConsumer
) -> list[str] | None:
    """One burst; returns its table row (None for the warm-up)."""
    slack, redis, keys, pids = ctx["slack"], ctx["redis"], ctx["keys"], ctx["pids"]
    consumer.complete = mode == "round trip"
    before = Usage.sample(pids)
    started = time.monotonic()
    marks = await burst(source, n, slack, redis, keys)
    if consumer.complete:
        ctx["answered"] = await asyncio.to_thread(slack.wait_answers, ctx["answered"] + n, 600)
    else:
        await wait_seen(consumer, marks, 600)
    ended = time.monotonic()
    cpu = Usage.sample(pids).since(before)
    if not consumer.complete:  # finish the held runs before the next pass (not measured)
        await consumer.release()
        ctx["answered"] = await asyncio.to_thread(slack.wait_answers, ctx["answered"] + n, 600)
    if ctx.pop("warm_up", False):
        return None
    _, answers = await asyncio.to_thread(slack.timings)
    routed = [m for m in marks if m in consumer.seen]
    last_run = max(consumer.seen[m] for m in routed)
    answered = [m for m in marks if m in answers]
    last_answer = max(answers[m][0] for m in answered) if answered and mode == "round trip" else None

    def per_event_ms(prefix: str) -> str:
        return f"{sum(v for k, v in cpu.items() if k.startswith(prefix)) * 1000 / n:.2f}"

    return [
        source,
        mode,
        f"{len(routed)}/{n}",
        f"{len(answered)}/{n}",
        f"{n / (last_run - started):.0f}",
        f"{n / (last_answer - started):.0f}" if last_answer else "-",
        f"{ended - started:.2f}",
        per_event_ms("ingress-slack"),
        per_event_ms("orchestrator"),
    ]


async def run(n: int, sources: list[str], orchestrators: int) -> None:
    print(
        f"routing bench: bursts of {n} new threads, sources {sources}, {orchestrators} orchestrator(s),"
        " bench consumer instead of a runner"
    )
    print(f"before: {load_note()}")
    replicas = {"codex-runner": 0, "orchestrator": orchestrators}
    with broker_bench("routing", LIFTED_CAPS, replicas=replicas) as bench:
        broker = bench.broker
        redis = Redis.from_url(REDIS_URL)
        stop = asyncio.Event()
        consumer = BenchConsumer(redis, broker.keys)
        task = asyncio.create_task(consumer.run(stop))
        try:
            ctx: dict[str, Any] = {
                "slack": bench.slack,
                "redis": redis,
                "keys": broker.keys,
                "pids": service_pids(broker),
                "answered": 0,
                "warm_up": True,
            }
            await one_pass("slack", "round trip", 20, ctx, consumer)  # warms every path up
            rows = []
            for source in sources:
                for mode in ("routing", "round trip"):
                    row = await one_pass(source, mode, n, ctx, consumer)
                    assert row is not None
                    rows.append(row)
            print()
            print_table(
                [
                    "source",
                    "pass",
                    "routed",
                    "answered",
                    "→ runs /s",
                    "→ answer /s",
                    "wall s",
                    "ingress CPU ms/ev",
                    "orch CPU ms/ev",
                ],
                rows,
            )
            print(f"after: {load_note()}")
        finally:
            stop.set()
            await task
            await redis.aclose()


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--sources", default="slack,stream")
    parser.add_argument("--orchestrators", type=int, default=1, help="orchestrator replicas")
    args = parser.parse_args()
    asyncio.run(run(args.events, args.sources.split(","), args.orchestrators))


if __name__ == "__main__":
    main()
