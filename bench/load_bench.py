"""Load: 50, 100, 200 threads at once with an instant model — all answered? p99 mention → reply,
CPU and RSS of every service.

Beside mention → reply, the table splits it: mention → first model request (inbound path and
Codex) and model done → answer at the fake Slack (the way back).

Same setup as latency_bench.py (timed fakes as processes, `codex-broker up` with DEBOUNCE_MS=0,
no admission limit and 256 runner slots). Each step pushes N top-level mentions in N new
threads in one go and waits (≤ 300 s) for every answer at the fake Slack. CPU is user+system
seconds of each child of `up` and its descendants (the runner includes its app-server) during
the step, read from /proc; RSS is taken right after the step.

    uv run python bench/load_bench.py [--steps 50,100,200]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    BENCH_USER,
    LIFTED_CAPS,
    Usage,
    arg_parser,
    broker_bench,
    load_note,
    marker,
    pct,
    print_table,
    service_pids,
    tree_rss_mib,
)


def run(steps: list[int]) -> None:
    print(f"load bench: steps {steps} (new threads at once, instant model)")
    print(f"before: {load_note()}")
    with broker_bench("load", LIFTED_CAPS) as bench:
        slack, model = bench.slack, bench.model
        answered = 0
        for _ in range(2):  # warm
            slack.mention("CWARM", marker())
            answered += 1
            slack.wait_answers(answered, timeout_s=60)
        pids = service_pids(bench.broker)
        rows = []
        usage_rows = []
        for step in steps:
            time.sleep(2)  # let the previous step's tail (status clears, view updates) settle
            marks = [marker() for _ in range(step)]
            before = Usage.sample(pids)
            started = time.monotonic()
            slack.burst(
                [
                    {"channel": f"CLOAD{step}", "user": BENCH_USER, "text": slack.mention_text(m)}
                    for m in marks
                ]
            )
            done = slack.wait_answers(answered + step, timeout_s=300) - answered
            elapsed = time.monotonic() - started
            answered += done
            cpu = Usage.sample(pids).since(before)
            pushed, answers = slack.timings()
            turns = model.turns()
            latencies = [answers[m][0] - pushed[m] for m in marks if m in answers]
            to_model = [turns[m][0] - pushed[m] for m in marks if m in turns]
            way_back = [answers[m][0] - turns[m][1] for m in marks if m in answers and m in turns]
            rows.append(
                [
                    str(step),
                    f"{done}/{step}",
                    *(f"{pct(latencies, q):.2f}" if latencies else "-" for q in (0.5, 0.99)),
                    *(f"{pct(v, 0.99):.2f}" if v else "-" for v in (to_model, way_back)),
                    f"{elapsed:.2f}",
                    f"{os.getloadavg()[0]:.1f}",
                ]
            )
            for name in sorted(pids):
                usage_rows.append(
                    [
                        f"{step}: {name}",
                        f"{cpu[name]:.2f}",
                        f"{cpu[name] / elapsed * 100:.0f}",
                        f"{tree_rss_mib(pids[name]):.0f}",
                    ]
                )
        print()
        print_table(
            [
                "threads",
                "answered",
                "p50 s",
                "p99 s",
                "p99 → model s",
                "p99 done → answer s",
                "all done s",
                "load1",
            ],
            rows,
        )
        print()
        print_table(["step: service", "CPU s", "CPU %", "RSS MiB"], usage_rows)
        print(f"after: {load_note()}")


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--steps", default="50,100,200")
    args = parser.parse_args()
    run([int(n) for n in args.steps.split(",")])


if __name__ == "__main__":
    main()
