"""schemathesis against the real http-api process (positive and negative cases for every
operation, admin API included): no 5xx, every response matches the documented status codes,
content types and schemas, and the admin API refuses its cases without the admin token (401).
CI size: `FUZZ_API_EXAMPLES` per operation and mode (default 12: about 650 cases, plus 64 sent
without the admin token); `bench/fuzz_api.py` runs the same harness with ≥ 2,000 cases."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from tests.fuzz.api_target import run_api_fuzz, served_http_api

EXAMPLES = int(os.environ.get("FUZZ_API_EXAMPLES", "12"))


def test_openapi_fuzz_no_server_error(redis_url: str, key_prefix: str, tmp_path: Path) -> None:
    with served_http_api(redis_url, key_prefix, tmp_path) as target:
        stats = run_api_fuzz(target, max_examples=EXAMPLES)
        assert httpx.get(f"{target.base_url}/healthz").status_code == 200
    log = target.log_path.read_text(errors="replace")
    assert stats.operations >= 30 and stats.cases >= stats.operations
    assert stats.admin_only >= 10 and stats.refused >= stats.admin_only
    assert not stats.server_errors, "\n".join(stats.server_errors)
    assert not stats.failures, "\n\n".join(stats.failures)
    assert "unhandled error" not in log, log[-4000:]
