"""Orchestrator routing figures without Codex: inbound event → RunRequest on the runs stream.

Starts one in-process orchestrator (DEBOUNCE_MS=0) on the local Redis under a throwaway prefix,
then (1) latency: one mention at a time in a new thread, time from XADD to the RunRequest
appearing (read with a blocking XREAD), and (2) throughput: N mentions in N new threads pushed
at once, until N RunRequests are out. Prints a table and cleans up its keys.

    uv run python bench/orchestrator_routing.py [--latency-n 200] [--burst-n 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from redis.asyncio import Redis

from codex_broker.libs.contracts import Actor, InboundEvent, encode
from codex_broker.orchestrator.config import Settings
from codex_broker.orchestrator.main import orchestrator_redis
from codex_broker.orchestrator.service import Orchestrator


def mention(i: int, tag: str) -> InboundEvent:
    ts = f"{1000 + i}.{tag}"
    return InboundEvent(
        event_id=f"slack:CB:{ts}",
        platform="slack",
        conversation_id=f"CB{i % 50}",
        root_message_id=ts,
        message_id=ts,
        actor=Actor(id="U1", display_name="Bench"),
        text=f"task {i}",
        is_mention=True,
    )


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main(latency_n: int, burst_n: int, redis_url: str) -> None:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    data_root = Path(tempfile.mkdtemp(prefix="orch-bench-"))
    settings = Settings(
        redis_url=redis_url,
        key_prefix=prefix,
        data_root=data_root,
        debounce_ms=0,
        max_active_runs=0,
        metrics_port=0,
        housekeeping_enabled=False,
        run_claim_timeout_s=3600,
        slack_initial_thread_history_count=0,
    )
    keys = settings.keys
    redis = Redis.from_url(redis_url)
    stop = asyncio.Event()
    orch = Orchestrator(settings, orchestrator_redis(settings), stop=stop)
    tasks = [asyncio.create_task(t(stop)) for t in orch.tasks()]
    try:
        while len(orch.held()) < keys.shard_count:  # noqa: ASYNC110 - start-up only, not measured
            await asyncio.sleep(0.05)
        last_id = "0-0"
        latencies = []
        for i in range(latency_n):
            event = mention(i, "l")
            started = time.perf_counter()
            await redis.xadd(keys.inbound_stream_for(event.session_key), {"data": encode(event)})
            reply = await redis.xread({keys.runs_stream: last_id}, count=1, block=5000)
            latencies.append((time.perf_counter() - started) * 1000)
            last_id = reply[0][1][-1][0]
        started = time.perf_counter()
        cpu_started = time.process_time()
        pipe = redis.pipeline(transaction=False)
        for i in range(burst_n):
            event = mention(i, "b")
            pipe.xadd(keys.inbound_stream_for(event.session_key), {"data": encode(event)})
        await pipe.execute()
        seen = latency_n
        while seen < latency_n + burst_n:
            reply = await redis.xread({keys.runs_stream: last_id}, count=5000, block=2000)
            for _, entries in reply or []:
                seen += len(entries)
                last_id = entries[-1][0]
            # this reader shares the orchestrator's event loop: reading every entry as it lands
            # would take a large share of the CPU being measured; 5 ms adds at most that much
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        cpu_ms = (time.process_time() - cpu_started) * 1000 / burst_n
        print(f"{'measure':<44}{'value':>12}")
        print(f"{'mention → RunRequest p50 (ms, new thread)':<44}{statistics.median(latencies):>12.2f}")
        print(f"{'mention → RunRequest p95 (ms)':<44}{pct(latencies, 95):>12.2f}")
        print(f"{'mention → RunRequest p99 (ms)':<44}{pct(latencies, 99):>12.2f}")
        print(f"{f'burst of {burst_n} new threads (s)':<44}{elapsed:>12.2f}")
        print(f"{'routing throughput (events/s)':<44}{burst_n / elapsed:>12.0f}")
        # this process's CPU (orchestrator + the bench's own XADDs and reads) per event: steadier
        # than the rate on a machine with other load
        print(f"{'CPU per event (ms)':<44}{cpu_ms:>12.3f}")
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await orch.redis.aclose()
        async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
            await redis.delete(key)
        async for key in redis.scan_iter(match=f"{{{prefix}:*", count=1000):
            await redis.delete(key)
        await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-n", type=int, default=200)
    parser.add_argument("--burst-n", type=int, default=2000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    asyncio.run(main(args.latency_n, args.burst_n, args.redis_url))
