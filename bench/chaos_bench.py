"""Chaos at a larger size than CI: mentions over many Slack threads through every service as a
process (2 orchestrators, 3 runners, 2 ingress-slack, 2 http-api), the real Codex on the fake
model, random SIGKILLs every few seconds and one Redis restart (AOF, fsync always).

    uv run python bench/chaos_bench.py [--mentions 200] [--threads 20] [--seed 1] [--gap 0.05,0.6]

Prints the table of tests/chaos/chaos.py (mentions, replies, duplicates, kills, restarts) and, if
anything was missing, duplicated or out of order, the per-thread detail. Exit 1 in that case.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.chaos.chaos import ChaosConfig, run_chaos  # noqa: E402
from tests.replicas.support import fake_model_process  # noqa: E402


def pair(raw: str) -> tuple[float, float]:
    low, high = (float(x) for x in raw.split(","))
    return low, high


def main() -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--mentions", type=int, default=200)
    parser.add_argument("--threads", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--gap", type=pair, default=(0.05, 0.6), help="seconds between mentions: low,high")
    parser.add_argument("--kill-every", type=pair, default=(2.0, 4.0), help="seconds between kills: low,high")
    parser.add_argument("--settle", type=float, default=300.0, help="longest wait for the last answers (s)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, Redis AOF)")
    args = parser.parse_args()
    config = ChaosConfig(
        mentions=args.mentions,
        threads=args.threads,
        seed=args.seed,
        send_gap_s=args.gap,
        kill_every_s=args.kill_every,
        redis_restart_after_s=20.0,
        settle_timeout_s=args.settle,
    )
    tmp = Path(tempfile.mkdtemp(prefix="chaos-bench-"))
    started = time.monotonic()

    def log(line: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {line}", flush=True)

    log(f"chaos: {config.mentions} mentions over {config.threads} threads, seed {config.seed}, dir {tmp}")
    with fake_model_process() as model:
        report = run_chaos(tmp, model, config, log=log)
    print()
    print(report.table())
    if not report.ok or report.unsettled or report.other_notices:
        print("\n".join(report.threads_detail))
        print(f"other notices: {report.other_notices}")
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if report.ok and not report.other_notices else 1


if __name__ == "__main__":
    raise SystemExit(main())
