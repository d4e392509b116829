"""Routing throughput without Codex: ingress → orchestrator → runs stream (and on through the
outbound stream back to the fake Slack), with a bench consumer in place of the runner.

`codex-broker up` runs with no codex-runner (`--replicas codex-runner=0`); this script reads the
runs stream in the runners' consumer group and, for each RunRequest, publishes at once what a
runner would for an instant turn (`accepted`, `turn_started`, `completed` with `ok <marker>`)
in one pipeline per batch, then acks. Two sources, each a burst of N new threads at once:

  - slack:  N mentions pushed by the fake Slack (each is two Socket Mode envelopes, `message`
            and `app_mention`, which the ingress folds into one inbound event);
  - stream: N InboundEvents XADDed straight onto the inbound streams (the orchestrator alone).

Prints events per second to the runs stream (N / time until the bench consumer read the last
RunRequest) and through to the final answer at the fake Slack.

    uv run python bench/routing_bench.py [--events 1000] [--sources slack,stream]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bench._common import (
    BENCH_USER,
    REDIS_URL,
    TimedSlack,
    Usage,
    broker_env,
    drop_keys,
    fakes,
    load_note,
    marker,
    print_table,
    service_pids,
    start_broker,
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
                for event in self.events(request, mark):
                    pipe.xadd(
                        self.keys.run_events_stream_for(request.session_key), {DATA_FIELD: encode(event)}
                    )
                pipe.hset(
                    self.keys.run(request.run_id), mapping={"runner_id": RUNNER_ID, "status": "completed"}
                )
            pipe.xack(stream, GROUP_RUNNERS, *ids)
            await pipe.execute()

    @staticmethod
    def events(request: RunRequest, mark: str | None) -> list[RunEvent]:
        thread = request.thread_id or f"thread-{request.run_id}"
        common = {"run_id": request.run_id, "session_key": request.session_key, "runner_id": RUNNER_ID}
        return [
            RunEvent(seq=0, kind="accepted", **common),
            RunEvent(
                seq=1, kind="turn_started", thread_id=thread, turn_id=f"turn-{request.run_id}", **common
            ),
            RunEvent(seq=2, kind="completed", thread_id=thread, text=f"ok {mark}", **common),
        ]


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


async def run(n: int, sources: list[str]) -> None:
    print(f"routing bench: bursts of {n} new threads, sources {sources}, bench consumer instead of a runner")
    print(f"before: {load_note()}")
    with tempfile.TemporaryDirectory(prefix="routing-bench-") as tmp, fakes() as (slack, _model):
        broker = start_broker(Path(tmp) / "data", broker_env(slack), replicas={"codex-runner": 0})
        redis = Redis.from_url(REDIS_URL)
        stop = asyncio.Event()
        keys = broker.keys
        consumer = BenchConsumer(redis, keys)
        task = asyncio.create_task(consumer.run(stop))
        try:
            slack.client.wait_connected(timeout_s=60)
            pids = service_pids(broker)
            answered = 0
            for source in ["slack", *sources]:  # the first slack round warms every path up
                size = 20 if answered == 0 else n
                before = Usage.sample(pids)
                started = time.monotonic()
                marks = await burst(source, size, slack, redis, keys)
                done = await asyncio.to_thread(slack.wait_answers, answered + size, 600)
                answers_at = time.monotonic()
                answered = done
                cpu = Usage.sample(pids).since(before)
                if size != n:
                    continue
                _, answers = await asyncio.to_thread(slack.timings)
                missing = [m for m in marks if m not in consumer.seen or m not in answers]
                last_run = max(consumer.seen[m] for m in marks if m in consumer.seen)
                last_answer = max(answers[m][0] for m in marks if m in answers)
                row = [
                    source,
                    f"{n - len(missing)}/{n}",
                    f"{n / (last_run - started):.0f}",
                    f"{n / (last_answer - started):.0f}",
                    f"{answers_at - started:.2f}",
                    f"{cpu.get('ingress-slack-1', 0):.1f}",
                    f"{cpu.get('orchestrator-1', 0):.1f}",
                ]
                print()
                print_table(
                    ["source", "done", "→ runs /s", "→ answer /s", "wall s", "ingress CPU s", "orch CPU s"],
                    [row],
                )
            print(f"after: {load_note()}")
        finally:
            stop.set()
            await task
            await redis.aclose()
            broker.stop()
            drop_keys(broker.key_prefix)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--sources", default="slack,stream")
    args = parser.parse_args()
    asyncio.run(run(args.events, args.sources.split(",")))


if __name__ == "__main__":
    main()
