"""schemathesis against the real http-api (`/openapi.json`, positive and negative cases for every
operation, admin API included) at bench size: ≥ 2,000 cases by default. The same harness as
`tests/fuzz/test_api.py` (tests/fuzz/api_target.py), with more examples.

Prints one table: cases, operations, responses by status class (2xx / 4xx / 5xx), admin-API
cases sent again without the admin token, failed checks (status code, content type and schema
conformance, 401 without the admin token), wall time, and the slowest operations.
Exit status 1 if any 5xx or failed check. Needs Redis on REDIS_URL (default 127.0.0.1:6379).

    uv run python bench/fuzz_api.py [--examples 60] [--min-cases 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fuzz.api_target import ApiFuzzStats, run_api_fuzz, served_http_api  # noqa: E402


def table(stats: ApiFuzzStats, examples: int) -> str:
    rows = [
        ("examples per operation and mode", str(examples)),
        ("operations", str(stats.operations)),
        ("cases", str(stats.cases)),
        ("  positive / negative", f"{stats.per_mode['positive']} / {stats.per_mode['negative']}"),
        ("2xx", str(stats.statuses["2xx"])),
        ("4xx", str(stats.statuses["4xx"])),
        ("5xx", str(stats.statuses["5xx"])),
        ("other", str(sum(v for k, v in stats.statuses.items() if k not in ("2xx", "4xx", "5xx")))),
        ("admin-only operations", str(stats.admin_only)),
        ("  cases resent without token", str(stats.refused)),
        ("failed checks", str(len(stats.failures))),
        ("wall time", f"{stats.wall_s:.1f} s"),
        ("cases per second", f"{stats.cases / stats.wall_s:.0f}" if stats.wall_s else "-"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = ["schemathesis vs http-api", "-" * (width + 12)]
    lines += [f"{name:<{width}}  {value:>8}" for name, value in rows]
    slowest = sorted(stats.seconds.items(), key=lambda kv: -kv[1])[:5]
    lines += ["", "slowest operations (s)"] + [f"  {secs:6.2f}  {name}" for name, secs in slowest]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=60, help="examples per operation and mode")
    parser.add_argument("--min-cases", type=int, default=2000, help="raise --examples until this many ran")
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    examples = args.examples
    while True:
        with (
            tempfile.TemporaryDirectory() as tmp,
            served_http_api(redis_url, f"bfuzz{uuid.uuid4().hex[:8]}", Path(tmp)) as target,
        ):
            stats = run_api_fuzz(target, max_examples=examples)
        if stats.cases >= args.min_cases or examples >= 2000:
            break
        print(f"{stats.cases} cases with {examples} examples each; raising", file=sys.stderr)
        examples = int(examples * args.min_cases / max(stats.cases, 1) * 1.2) + 1
    print(table(stats, examples))
    for line in (stats.server_errors + stats.failures)[:20]:
        print("FAIL", line)
    return 1 if stats.server_errors or stats.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
