"""schemathesis against /openapi.json of the real http-api process: no input yields a 5xx, and
responses match the documented status codes, content types and schemas.

Examples per operation: SCHEMATHESIS_MAX_EXAMPLES (default 12; about 200 requests in all per
generation mode). The requests carry a valid session token so that they get past the auth
checks where their coordinates match, and an ingress stand-in answers history and posts.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from redis import Redis as SyncRedis
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from codex_broker.libs.contracts import Coordinates
from codex_broker.libs.keys import Keys
from tests.helpers import free_port
from tests.http_api.support import (
    Responder,
    make_session,
    service_env,
    start_process,
    stop_process,
    wait_http,
)

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def served(
    sync_redis: SyncRedis, keys: Keys, key_prefix: str, redis_url: str, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    data_root = tmp_path / "data"
    port = free_port()
    env = service_env(key_prefix, redis_url, data_root, HTTP_API_PORT=str(port), RPC_TIMEOUT_S="2")
    coords = Coordinates(platform="slack", conversation_id="C1", root_message_id="1.1")
    token, _ = make_session(sync_redis, keys, coords, data_root)
    for service in ("orchestrator", "codex-runner"):  # so that /readyz answers 200, not 503
        beat = {"service": service, "instance": "i", "at": time.time() + 600, "capacity": 1}
        sync_redis.set(keys.heartbeat(service, "i"), json.dumps(beat), ex=600)
    api = start_process("codex_broker.http_api", env, tmp_path / "api.log")
    try:
        with Responder(redis_url, keys):
            wait_http(f"http://127.0.0.1:{port}/healthz")
            yield f"http://127.0.0.1:{port}", token
    finally:
        stop_process(api, sig=signal.SIGTERM)
        log = (tmp_path / "api.log").read_text(errors="replace")
        assert "unhandled error" not in log, log[-4000:]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_gives_a_server_error(served: tuple[str, str], mode: GenerationMode) -> None:
    base, token = served
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    headers = {"authorization": f"Bearer {token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18
    failures: list[str] = []
    for operation in operations:

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: schemathesis.Case) -> None:
            response = case.call(base_url=base, headers=headers, timeout=30)
            try:
                case.validate_response(response, checks=CHECKS, headers=headers)
            except Exception as exc:  # collect every operation's failure, report together
                op = case.operation
                failures.append(f"{op.method.upper()} {op.path}: {str(exc)[:1500]}")
                raise

        try:
            run()
        except Unsatisfiable:  # nothing to make invalid (no parameters): nothing to test
            continue
        except BaseException as exc:  # hypothesis re-raises the (grouped) failure recorded above
            if isinstance(exc, KeyboardInterrupt):
                raise
            if not failures or operation.path not in failures[-1]:
                failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
    assert httpx.get(f"{base}/healthz").status_code == 200
