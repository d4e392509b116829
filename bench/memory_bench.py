"""Memory: runner RSS with 0 / 50 / 200 idle sessions loaded (each after one turn).

Same setup as load_bench.py (`codex-broker up`, timed fakes as processes, instant model). The
sessions are created through the whole broker (mentions in new threads at the fake Slack), so
the runner holds them as it does in production: one loaded Codex thread per session in its
warm app-server plus the runner's own bookkeeping. RSS is read from /proc after the answers
arrived and a few seconds of idling: the runner process alone, its app-server children, total.

    uv run python bench/memory_bench.py [--sessions 0,50,200]
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


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--sessions", default="0,50,200")
    args = parser.parse_args()
    run([int(n) for n in args.sessions.split(",")])


if __name__ == "__main__":
    main()
