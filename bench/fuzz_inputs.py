"""The hypothesis fuzz suites of tests/fuzz at bench size: malformed Slack Socket Mode traffic,
malformed Feishu long-connection frames, and garbage entries on every stream (inbound,
run-events, runs, control, outbound:slack, outbound:feishu), through the real services against
the fakes and real Redis.

Runs pytest on tests/fuzz (the schemathesis test excluded: see bench/fuzz_api.py) with
FUZZ_EXAMPLES examples per test and prints one row per test: examples, result, wall time.

    uv run python bench/fuzz_inputs.py [--examples 300] [-k EXPR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=300, help="hypothesis examples per test")
    parser.add_argument("-k", default="not test_api and not regressions", help="pytest -k expression")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    env["FUZZ_EXAMPLES"] = str(args.examples)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.xml"
        started = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "tests/fuzz",
                "-q",
                "-p",
                "no:cacheprovider",
                "-k",
                args.k,
                f"--junitxml={report}",
                "--timeout=3600",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - started
        rows = []
        for case in ET.parse(report).getroot().iter("testcase"):
            failed = case.find("failure") is not None or case.find("error") is not None
            skipped = case.find("skipped") is not None
            result = "FAILED" if failed else "skipped" if skipped else "passed"
            module = case.get("classname", "").removeprefix("tests.fuzz.").replace(".", "/")
            rows.append(
                (
                    f"{module}::{case.get('name')}",
                    result,
                    float(case.get("time", 0)),
                )
            )
    width = max((len(name) for name, _, _ in rows), default=10)
    print(f"hypothesis fuzz suites, {args.examples} examples per test")
    print(f"{'test':<{width}}  {'result':>7}  {'seconds':>8}")
    for name, result, seconds in rows:
        print(f"{name:<{width}}  {result:>7}  {seconds:8.1f}")
    print(f"{'total':<{width}}  {sum(r == 'passed' for _, r, _ in rows):>4}/{len(rows):<2}  {wall:8.1f}")
    if proc.returncode != 0:
        print(proc.stdout[-6000:])
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
