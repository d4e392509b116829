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

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    BENCH_USER,
    Direct,
    TimedSlack,
    broker_env,
    drop_keys,
    fakes,
    load_note,
    marker,
    ms_row,
    pct,
    print_table,
    start_broker,
    start_direct,
)
from codex_broker.codex_runner.environment import native_codex_bin
from codex_broker.libs import paths
from codex_broker.libs.codex_bin import find_codex_bin
from tests.fakes.codex_home import write_codex_home


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
    codex = find_codex_bin()
    if codex is None:
        raise SystemExit("Codex CLI not installed: scripts/install-codex.sh")
    codex = native_codex_bin(codex)
    print(f"burst bench: {rounds} rounds of {size} new threads at once")
    print(f"before: {load_note()}")
    with tempfile.TemporaryDirectory(prefix="burst-bench-") as tmp, fakes() as (slack, model):
        root = Path(tmp)
        data_root = root / "data"
        codex_home = paths.codex_home(data_root)
        write_codex_home(codex_home, model.base_url)
        broker = start_broker(data_root, broker_env(slack))
        direct: Direct | None = None
        try:
            slack.client.wait_connected(timeout_s=60)
            (root / "home").mkdir()
            direct = await start_direct(codex, codex_home, root / "home")
            answered = 0
            broker_burst(slack, 2, answered, "CWARM")  # warm: first-use costs are not the subject
            answered += 2
            await floor_burst(direct, 2, root / "floor-ws")
            broker_marks: list[str] = []
            floor_marks: list[tuple[str, float]] = []
            finishes = []
            for index in range(rounds):
                marks, finished = broker_burst(slack, size, answered, f"CBURST{index}")
                answered += size
                broker_marks += marks
                finishes.append(finished)
                marks, started = await floor_burst(direct, size, root / "floor-ws")
                floor_marks += [(m, started) for m in marks]
            pushed, _ = slack.timings()
            turns = model.turns()
            via_broker = [turns[m][0] - pushed[m] for m in broker_marks]
            floor = [turns[m][0] - started for m, started in floor_marks]
            print()
            headers = ["measure", "p50 ms", "p95 ms", "p99 ms", "n"]
            print_table(
                headers,
                [
                    ms_row(f"{size} at once: mention → first model request (broker)", via_broker),
                    ms_row(f"{size} at once: thread/start+turn/start → request (floor)", floor),
                ],
            )
            ratio = pct(via_broker, 0.99) / pct(floor, 0.99)
            print()
            print(f"p99 broker / p99 floor: {ratio:.2f} (target ≤ 1.1)")
            print(f"max: broker {max(via_broker) * 1000:.0f} ms, floor {max(floor) * 1000:.0f} ms")
            print(f"last answer after the push, per round (s): {[round(f, 2) for f in finishes]}")
            print(f"after: {load_note()}")
        finally:
            if direct is not None:
                await direct.server.close()
            broker.stop()
            drop_keys(broker.key_prefix)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.size, args.rounds))


if __name__ == "__main__":
    main()
