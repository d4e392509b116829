"""Memory: runner RSS with 0 / 50 / 200 idle sessions loaded, or with N turns live at once.

Same setup as load_bench.py (`codex-broker up`, timed fakes as processes, instant model). The
sessions are created through the whole broker (mentions in new threads at the fake Slack), so
the runner holds them as it does in production: one loaded Codex thread per session in its
warm app-server plus the runner's own bookkeeping. RSS is read from /proc after the answers
arrived and a few seconds of idling: the runner process alone, its app-server children, total.

    uv run python bench/memory_bench.py [--sessions 0,50,200]
    uv run python bench/memory_bench.py --live 25,50,100

`--live`: the model holds every answer (a slow model), so each step's turns are all in flight
when RSS is read — a new Codex thread each, with its turn started and its model request open;
then the answers are let go. The runner gets enough slots for the largest step (that is what
is being sized); the per-turn figure is what `MAX_CONCURRENT_TURNS` is derived from
(docs/benchmarks.md, "Concurrency defaults").
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    BENCH_USER,
    arg_parser,
    broker_bench,
    load_note,
    marker,
    own_rss_mib,
    print_table,
    service_pids,
    tree_rss_mib,
)

SETTLE_S = 5.0


def run(counts: list[int]) -> None:
    print(f"memory bench: runner RSS with {counts} idle sessions")
    print(f"before: {load_note()}")
    with broker_bench("memory") as bench:
        slack = bench.slack
        runner = service_pids(bench.broker)["codex-runner-1"]
        loaded = 0
        rows = []
        baseline = 0.0
        for count in sorted(counts):
            while loaded < count:
                batch = min(50, count - loaded)
                marks = [marker() for _ in range(batch)]
                messages = [
                    {"channel": "CMEM", "user": BENCH_USER, "text": slack.mention_text(m)} for m in marks
                ]
                slack.burst(messages)
                if slack.wait_answers(loaded + batch, timeout_s=300) < loaded + batch:
                    raise TimeoutError("sessions did not all answer within 300 s")
                loaded += batch
            time.sleep(SETTLE_S)
            own, total = own_rss_mib(runner), tree_rss_mib(runner)
            if count == 0:
                baseline = total
            per = f"{(total - baseline) / count * 1024:.0f}" if count else "-"
            rows.append([str(count), f"{own:.1f}", f"{total - own:.1f}", f"{total:.1f}", per])
        print()
        print_table(["idle sessions", "runner MiB", "app-server MiB", "total MiB", "KiB per session"], rows)
        print(f"after: {load_note()}")


def run_live(counts: list[int]) -> None:
    """RSS with `count` turns in flight at once (new threads, answers held by the model)."""
    print(f"memory bench: runner RSS with {counts} live turns")
    print(f"before: {load_note()}")
    slots = str(max(counts) + 1)
    with broker_bench("memory-live", {"MAX_CONCURRENT_TURNS": slots, "MAX_ACTIVE_RUNS": "0"}) as bench:
        slack, model = bench.slack, bench.model
        runner = service_pids(bench.broker)["codex-runner-1"]
        rows = []
        answered = 0
        for index, count in enumerate(sorted(n for n in counts if n > 0)):
            time.sleep(SETTLE_S)
            before = tree_rss_mib(runner)
            model.hold(10**6, timeout_s=300)  # held until released below
            marks = [marker() for _ in range(count)]
            slack.burst(
                [
                    {"channel": f"CLIVE{index}", "user": BENCH_USER, "text": slack.mention_text(m)}
                    for m in marks
                ]
            )
            deadline = time.monotonic() + 300
            while model.held() < count:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"only {model.held()} of {count} turns reached the model")
                time.sleep(0.2)
            time.sleep(SETTLE_S)
            own, live = own_rss_mib(runner), tree_rss_mib(runner)
            model.hold(None)
            answered += count
            if slack.wait_answers(answered, timeout_s=300) < answered:
                raise TimeoutError("live turns did not all answer within 300 s")
            per = (live - before) / count * 1024
            rows.append(
                [str(count), f"{before:.1f}", f"{own:.1f}", f"{live - own:.1f}", f"{live:.1f}", f"{per:.0f}"]
            )
        print()
        headers = [
            "live turns",
            "before MiB",
            "runner MiB",
            "app-server MiB",
            "total MiB",
            "KiB per live turn",
        ]
        print_table(headers, rows)
        print("(a step's turns start new threads; 'before' holds the idle sessions of earlier steps)")
        print(f"after: {load_note()}")


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--sessions", default="0,50,200")
    parser.add_argument("--live", default=None, help="live turns per step, e.g. 0,25,50,100")
    args = parser.parse_args()
    if args.live:
        run_live([int(n) for n in args.live.split(",")])
    else:
        run([int(n) for n in args.sessions.split(",")])


if __name__ == "__main__":
    main()
