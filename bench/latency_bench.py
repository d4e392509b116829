"""Latency of the whole broker against the direct app-server floor, turn by turn.

Starts the timed fake Slack and fake model as processes, the broker with `codex-broker up`
(shipped defaults, warm runner) on the local Redis under a throwaway prefix, and a bare client of
its own `codex app-server` on the same fake model (the floor). Then, one turn at a time and
alternating broker / floor so both see the same machine load:

  - new thread:  mention pushed at the fake Slack → first request at the fake model, against
                 thread/start + turn/start → first request (floor);
  - follow-up:   reply pushed in a thread with a session → first request, against turn/start on
                 a loaded thread (floor);
  - the way back: model answer completely written → final answer at the fake Slack
                 (chat.postMessage; with --native the streaming call that carries it), beside
                 Codex's own part of it: model done → turn/completed at the bare client.

Prints p50 / p95 / p99 and the broker overhead (p50 minus the floor's p50). Stops everything.

    uv run python bench/latency_bench.py [--turns 200] [--threads 10] [--native] [-c key=value ...]
        [--lifted] [--env KEY=VALUE ...]

`--env DEBOUNCE_MS=300` measures a non-default setting (here: the old default) beside the
shipped defaults; `--lifted` lifts the run caps.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
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

CHANNEL = "CBENCH"


class Turns:
    """Issues broker turns and floor turns; remembers when each floor turn started."""

    def __init__(self, slack: TimedSlack, direct: Direct, workspaces: Path) -> None:
        self.slack = slack
        self.direct = direct
        self.workspaces = workspaces
        self.answers = 0
        self.floor_started: dict[str, float] = {}
        self.floor_completed: dict[str, float] = {}  # turn/completed at the bare client

    def broker_new(self) -> tuple[str, str]:
        mark = marker()
        root = self.slack.mention(CHANNEL, mark)
        self._await_answer()
        return mark, root

    def broker_follow(self, root: str) -> str:
        mark = marker()
        self.slack.reply(CHANNEL, root, mark)
        self._await_answer()
        return mark

    def _await_answer(self) -> None:
        self.answers += 1
        if self.slack.wait_answers(self.answers, timeout_s=60) < self.answers:
            raise TimeoutError(f"answer {self.answers} did not reach the fake Slack within 60 s")

    async def floor_new(self) -> tuple[str, str]:
        mark = marker()
        workspace = self.workspaces / mark  # a fresh directory, as each session gets
        workspace.mkdir(parents=True)
        self.floor_started[mark] = time.monotonic()
        thread_id = await self.direct.thread_start(workspace)
        await self.direct.turn(thread_id, f"task {mark}")
        self.floor_completed[mark] = self.direct.completed_at[thread_id]  # type: ignore[attr-defined]
        return mark, thread_id

    async def floor_follow(self, thread_id: str) -> str:
        mark = marker()
        self.floor_started[mark] = time.monotonic()
        await self.direct.turn(thread_id, f"and then {mark}")
        self.floor_completed[mark] = self.direct.completed_at[thread_id]  # type: ignore[attr-defined]
        return mark


async def run(turns: int, threads: int, native: bool, overrides: list[str], env: dict[str, str]) -> None:
    codex = codex_bin()
    print(f"latency bench: {turns} turns per kind, native streaming {'on' if native else 'off'}")
    print(settings_note(env))
    if overrides:
        print(f"Codex overrides (runner and floor): {overrides}")
    print(f"before: {load_note()}")
    extra = {**env, **({"SLACK_NATIVE_STREAMING": "true"} if native else {})}
    if overrides:
        extra["CODEX_CONFIG_OVERRIDES"] = json.dumps(overrides)
    with broker_bench("latency", extra) as setup:
        async with floor(codex, setup, overrides) as direct:
            bench = Turns(setup.slack, direct, setup.root / "floor-ws")
            for _ in range(3):  # warm both paths (first-use costs: imports, caches, connections)
                bench.broker_new()
                await bench.floor_new()
            started_at = time.monotonic()
            new_pairs = []
            for _ in range(turns):
                broker_mark, _ = bench.broker_new()
                floor_mark, _ = await bench.floor_new()
                new_pairs.append((broker_mark, floor_mark))
            follow_pairs = []
            per_thread = max(1, turns // threads)
            for _ in range(threads):
                _, broker_root = bench.broker_new()
                _, floor_thread = await bench.floor_new()
                for _ in range(per_thread):
                    broker_mark = bench.broker_follow(broker_root)
                    floor_mark = await bench.floor_follow(floor_thread)
                    follow_pairs.append((broker_mark, floor_mark))
            elapsed = time.monotonic() - started_at
            report(setup.slack, setup.model, bench, new_pairs, follow_pairs)
            print(f"measured in {elapsed:.0f} s; after: {load_note()}")


def report(
    slack: TimedSlack,
    model: TimedModel,
    bench: Turns,
    new_pairs: list[tuple[str, str]],
    follow_pairs: list[tuple[str, str]],
) -> None:
    pushed, answered = slack.timings()
    model_turns = model.turns()

    def to_model(marks: list[str]) -> list[float]:
        return [model_turns[m][0] - pushed[m] for m in marks]

    def floor(marks: list[str]) -> list[float]:
        return [model_turns[m][0] - bench.floor_started[m] for m in marks]

    def way_back(marks: list[str]) -> list[float]:
        return [answered[m][0] - model_turns[m][1] for m in marks]

    def floor_back(marks: list[str]) -> list[float]:
        return [bench.floor_completed[m] - model_turns[m][1] for m in marks]

    def end_to_end(marks: list[str]) -> list[float]:
        return [answered[m][0] - pushed[m] for m in marks]

    new_b, new_f = [p[0] for p in new_pairs], [p[1] for p in new_pairs]
    fol_b, fol_f = [p[0] for p in follow_pairs], [p[1] for p in follow_pairs]
    methods = sorted({answered[m][1] for m in new_b + fol_b})
    rows = [
        ms_row("new thread: mention → first model request (broker)", to_model(new_b)),
        ms_row("new thread: thread/start+turn/start → request (floor)", floor(new_f)),
        ms_row("follow-up: reply → first model request (broker)", to_model(fol_b)),
        ms_row("follow-up: turn/start → request (floor)", floor(fol_f)),
        ms_row("model done → final message, new thread", way_back(new_b)),
        ms_row("model done → final message, follow-up", way_back(fol_b)),
        ms_row("model done → turn/completed at the client (floor)", floor_back(new_f + fol_f)),
        ms_row("mention → final message (whole turn), new thread", end_to_end(new_b)),
        ms_row("reply → final message (whole turn), follow-up", end_to_end(fol_b)),
    ]
    print()
    print_table(["measure", "p50 ms", "p95 ms", "p99 ms", "n"], rows)
    over_new = pct(to_model(new_b), 0.5) - pct(floor(new_f), 0.5)
    over_follow = pct(to_model(fol_b), 0.5) - pct(floor(fol_f), 0.5)
    print()
    print(f"broker overhead p50, new thread: {over_new * 1000:.1f} ms (target ≤ 10)")
    print(f"broker overhead p50, follow-up:  {over_follow * 1000:.1f} ms (target ≤ 8)")
    print(f"final answer delivered by: {', '.join(methods)}")


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--turns", type=int, default=200, help="turns per kind (new, follow-up)")
    parser.add_argument("--threads", type=int, default=10, help="threads the follow-ups are spread over")
    parser.add_argument("--native", action="store_true", help="Slack native streaming on")
    parser.add_argument(
        "-c",
        dest="overrides",
        action="append",
        default=[],
        help="a Codex -c key=value for the runner and the floor alike (repeatable)",
    )
    add_settings_args(parser)
    args = parser.parse_args()
    asyncio.run(run(args.turns, args.threads, args.native, args.overrides, settings_env(args)))


if __name__ == "__main__":
    main()
