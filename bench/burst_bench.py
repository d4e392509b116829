"""Burst: 50 mentions in 50 new threads pushed at once, against 50 concurrent thread starts on
one app-server directly (the floor; Codex itself is CPU-bound there).

Same setup as latency_bench.py (timed fakes as processes, `codex-broker up` with DEBOUNCE_MS=0
and enough runner slots, a bare app-server client on the same fake model). Each round pushes
`--size` mentions in one go from the fake Slack's own loop, waits for every answer, then issues
`--size` thread/start + turn/start concurrently on the floor app-server. Rounds alternate so
both see the same load. Prints p50 / p99 / max of mention → first model request against the
floor, and their ratio.

    uv run python bench/burst_bench.py [--size 50] [--rounds 3]
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    BENCH_USER,
    Direct,
    TimedSlack,
    arg_parser,
    broker_bench,
    codex_bin,
    floor,
    load_note,
    marker,
    ms_row,
    pct,
    print_table,
)


def broker_burst(slack: TimedSlack, size: int, answered_before: int, channel: str) -> tuple[list[str], float]:
    """Push `size` top-level mentions at once; returns their markers and the seconds until the
    last answer reached the fake Slack."""
    marks = [marker() for _ in range(size)]
    started = time.monotonic()
    slack.burst([{"channel": channel, "user": BENCH_USER, "text": slack.mention_text(m)} for m in marks])
    done = slack.wait_answers(answered_before + size, timeout_s=300)
    if done < answered_before + size:
        raise TimeoutError(f"only {done - answered_before} of {size} answers within 300 s")
    return marks, time.monotonic() - started


async def floor_burst(direct: Direct, size: int, workspaces: Path) -> tuple[list[str], float]:
    marks = [marker() for _ in range(size)]
    for mark in marks:
        (workspaces / mark).mkdir(parents=True)

    async def one(mark: str) -> None:
        thread_id = await direct.thread_start(workspaces / mark)
        await direct.turn(thread_id, f"task {mark}")

    started = time.monotonic()
    await asyncio.gather(*(one(m) for m in marks))
    return marks, started


async def run(size: int, rounds: int) -> None:
    codex = codex_bin()
    print(f"burst bench: {rounds} rounds of {size} new threads at once")
    print(f"before: {load_note()}")
    with broker_bench("burst") as bench:
        slack, model = bench.slack, bench.model
        async with floor(codex, bench) as direct:
            answered = 0
            broker_burst(slack, 2, answered, "CWARM")  # warm: first-use costs are not the subject
            answered += 2
            await floor_burst(direct, 2, bench.root / "floor-ws")
            broker_marks: list[str] = []
            floor_marks: list[tuple[str, float]] = []
            finishes = []
            for index in range(rounds):
                marks, finished = broker_burst(slack, size, answered, f"CBURST{index}")
                answered += size
                broker_marks += marks
                finishes.append(finished)
                marks, started = await floor_burst(direct, size, bench.root / "floor-ws")
                floor_marks += [(m, started) for m in marks]
            pushed, _ = slack.timings()
            turns = model.turns()
            via_broker = [turns[m][0] - pushed[m] for m in broker_marks]
            floor_times = [turns[m][0] - started for m, started in floor_marks]
            print()
            headers = ["measure", "p50 ms", "p95 ms", "p99 ms", "n"]
            print_table(
                headers,
                [
                    ms_row(f"{size} at once: mention → first model request (broker)", via_broker),
                    ms_row(f"{size} at once: thread/start+turn/start → request (floor)", floor_times),
                ],
            )
            ratio = pct(via_broker, 0.99) / pct(floor_times, 0.99)
            print()
            print(f"p99 broker / p99 floor: {ratio:.2f} (target ≤ 1.1)")
            print(f"max: broker {max(via_broker) * 1000:.0f} ms, floor {max(floor_times) * 1000:.0f} ms")
            print(f"last answer after the push, per round (s): {[round(f, 2) for f in finishes]}")
            print(f"after: {load_note()}")


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--size", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.size, args.rounds))


if __name__ == "__main__":
    main()
