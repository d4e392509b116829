"""Burst: 50 mentions in 50 new threads pushed at once, against 50 concurrent thread starts on
one app-server directly (the floor; Codex itself is CPU-bound there).

Same setup as latency_bench.py (timed fakes as processes, `codex-broker up` with the shipped
defaults, a bare app-server client on the same fake model). Each round pushes `--size`
mentions in one go from the fake Slack's own loop, waits for every answer, then issues `--size`
thread/start + turn/start concurrently on the floor app-server. The model holds every answer
until all `--size` turns of the round reached it (a slow model: all of them are live at once),
so a cap below the burst shows as turns that never reach the model (the round then times out
after `--hold-s` and the count is printed). Rounds alternate so both see the same load. Prints
p50 / p99 / max of mention → first model request against the floor, and their ratio.

    uv run python bench/burst_bench.py [--size 50] [--rounds 3] [--lifted] [--env KEY=VALUE ...]
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
    TimedModel,
    TimedSlack,
    add_settings_args,
    arg_parser,
    broker_bench,
    codex_bin,
    floor,
    load_note,
    marker,
    ms_row,
    pct,
    print_table,
    settings_env,
    settings_note,
)


def broker_burst(
    slack: TimedSlack, model: TimedModel, size: int, answered_before: int, channel: str, hold_s: float
) -> tuple[list[str], float]:
    """Push `size` top-level mentions at once; returns their markers and the seconds until the
    last answer reached the fake Slack."""
    marks = [marker() for _ in range(size)]
    model.hold(size, timeout_s=hold_s)
    started = time.monotonic()
    slack.burst([{"channel": channel, "user": BENCH_USER, "text": slack.mention_text(m)} for m in marks])
    done = slack.wait_answers(answered_before + size, timeout_s=300)
    if done < answered_before + size:
        raise TimeoutError(f"only {done - answered_before} of {size} answers within 300 s")
    return marks, time.monotonic() - started


async def floor_burst(
    direct: Direct, model: TimedModel, size: int, workspaces: Path, hold_s: float
) -> tuple[list[str], float]:
    marks = [marker() for _ in range(size)]
    model.hold(size, timeout_s=hold_s)
    for mark in marks:
        (workspaces / mark).mkdir(parents=True)

    async def one(mark: str) -> None:
        thread_id = await direct.thread_start(workspaces / mark)
        await direct.turn(thread_id, f"task {mark}")

    started = time.monotonic()
    await asyncio.gather(*(one(m) for m in marks))
    return marks, started


async def run(size: int, rounds: int, env: dict[str, str], hold_s: float) -> None:
    codex = codex_bin()
    print(f"burst bench: {rounds} rounds of {size} new threads at once, answers held until all arrived")
    print(settings_note(env))
    print(f"before: {load_note()}")
    with broker_bench("burst", env) as bench:
        slack, model = bench.slack, bench.model
        async with floor(codex, bench) as direct:
            answered = 0
            broker_burst(
                slack, model, 2, answered, "CWARM", hold_s
            )  # warm: first-use costs are not the subject
            answered += 2
            await floor_burst(direct, model, 2, bench.root / "floor-ws", hold_s)
            broker_marks: list[str] = []
            floor_marks: list[tuple[str, float]] = []
            finishes = []
            for index in range(rounds):
                marks, finished = broker_burst(slack, model, size, answered, f"CBURST{index}", hold_s)
                answered += size
                broker_marks += marks
                finishes.append(finished)
                marks, started = await floor_burst(direct, model, size, bench.root / "floor-ws", hold_s)
                floor_marks += [(m, started) for m in marks]
            pushed, _ = slack.timings()
            turns = model.turns()
            reached = [m for m in broker_marks if m in turns]
            print(f"mentions that reached the model: {len(reached)}/{len(broker_marks)}")
            via_broker = [turns[m][0] - pushed[m] for m in reached]
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
    parser.add_argument("--hold-s", type=float, default=30.0, help="longest hold of a round's answers")
    add_settings_args(parser)
    args = parser.parse_args()
    asyncio.run(run(args.size, args.rounds, settings_env(args), args.hold_s))


if __name__ == "__main__":
    main()
