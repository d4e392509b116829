"""The one schemathesis harness of the http-api: the served process and a counting runner.

`served_http_api()` starts the real process (helpers of tests/http_api/support.py: a session with
a token, an ingress stand-in that answers the RPCs, fresh heartbeats so that /readyz is 200) with
an admin token, so that the admin API is exercised past its auth check. `run_api_fuzz()` runs
every operation in positive and negative generation mode with both tokens and checks every
response; the first cases of each operation that only the admin token opens are sent a second
time with the session token alone and must be refused with 401 (the guard reads headers only, so
a few per operation and mode cover it). It counts every response by status class instead of
stopping at the first failure: `tests/fuzz/test_api.py` asserts on the counts (CI size),
`bench/fuzz_api.py` prints them as a table (bench size).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

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
from schemathesis.errors import FailureGroup
from schemathesis.schemas import APIOperation

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

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
ADMIN_HEADER = "x-admin-token"
ADMIN_SCHEME = "adminHeader"  # the securityScheme of the admin token in /openapi.json
SESSION_SCHEMES = {"sessionBearer", "sessionHeader", "jobToken"}
REFUSED_PER_MODE = 3  # admin-API cases per operation and mode sent again without the admin token


@dataclass
class Target:
    base_url: str
    headers: dict[str, str]  # session token and admin token
    log_path: Path

    @property
    def session_headers(self) -> dict[str, str]:
        return {name: value for name, value in self.headers.items() if name != ADMIN_HEADER}


@contextmanager
def served_http_api(redis_url: str, key_prefix: str, root: Path) -> Iterator[Target]:
    """The real http-api process on 127.0.0.1 with real Redis; stopped, its keys gone."""
    keys = Keys(prefix=key_prefix, shard_count=4)
    redis = SyncRedis.from_url(redis_url)
    data_root = root / "data"
    port = free_port()
    admin_token = secrets.token_urlsafe(16)
    env = service_env(
        key_prefix,
        redis_url,
        data_root,
        HTTP_API_PORT=str(port),
        RPC_TIMEOUT_S="2",
        BROKER_ADMIN_TOKEN=admin_token,
    )
    coords = Coordinates(platform="slack", conversation_id="C1", root_message_id="1.1")
    token, _ = make_session(redis, keys, coords, data_root)
    for service in ("orchestrator", "codex-runner"):  # so that /readyz answers 200, not 503
        beat = {"service": service, "instance": "i", "at": time.time() + 3600, "capacity": 1}
        redis.set(keys.heartbeat(service, "i"), json.dumps(beat), ex=3600)
    log_path = root / "http-api.log"
    api = start_process("codex_broker.http_api", env, log_path)
    try:
        with Responder(redis_url, keys):
            wait_http(f"http://127.0.0.1:{port}/healthz")
            headers = {"authorization": f"Bearer {token}", ADMIN_HEADER: admin_token}
            yield Target(f"http://127.0.0.1:{port}", headers, log_path)
    finally:
        stop_process(api, sig=signal.SIGTERM)
        for key in redis.scan_iter(match=f"{key_prefix}:*", count=1000):
            redis.delete(key)
        redis.close()


@dataclass
class ApiFuzzStats:
    cases: int = 0
    operations: int = 0
    admin_only: int = 0  # operations that only the admin token opens
    refused: int = 0  # their cases sent again without the admin token
    statuses: Counter[str] = field(default_factory=Counter)  # "2xx", "4xx", "5xx", …
    per_mode: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # per operation and mode
    wall_s: float = 0.0

    def record(self, mode: str, status: int) -> None:
        self.cases += 1
        self.per_mode[mode] += 1
        self.statuses[f"{status // 100}xx"] += 1


def admin_only(operation: APIOperation) -> bool:
    """Its security names the admin token and no session or job token (the admin API)."""
    names = {name for requirement in operation.definition.raw.get("security") or [] for name in requirement}
    return ADMIN_SCHEME in names and not names & SESSION_SCHEMES


def run_api_fuzz(
    target: Target, *, max_examples: int, modes: tuple[GenerationMode, ...] = MODES
) -> ApiFuzzStats:
    """Every operation and mode with `max_examples` each; every response checked, none skipped."""
    started = time.perf_counter()
    stats = ApiFuzzStats()
    schema = schemathesis.openapi.from_url(f"{target.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    stats.operations = len(operations)
    stats.admin_only = sum(1 for operation in operations if admin_only(operation))
    for operation in operations:
        for mode in modes:
            began = time.perf_counter()
            _run_operation(target, operation, mode, max_examples, stats)
            stats.seconds[f"{operation.method.upper()} {operation.path} [{mode.value}]"] = (
                time.perf_counter() - began
            )
    stats.wall_s = time.perf_counter() - started
    return stats


def _check(
    target: Target, case: schemathesis.Case, headers: dict[str, str], where: str, stats: ApiFuzzStats
) -> int:
    response = case.call(base_url=target.base_url, headers=headers, timeout=30)
    if response.status_code >= 500:
        stats.server_errors.append(f"{where} → {response.status_code}: {case.as_curl_command(headers)}")
    # keep generating: the table counts every case. Several failed checks come as a FailureGroup,
    # a BaseExceptionGroup that `except Exception` would let through to hypothesis.
    try:
        case.validate_response(response, checks=CHECKS, headers=headers)
    except (FailureGroup, Exception) as exc:
        stats.failures.append(f"{where}: {str(exc)[:1200]}")
    return response.status_code


def _run_operation(
    target: Target, operation: APIOperation, mode: GenerationMode, max_examples: int, stats: ApiFuzzStats
) -> None:
    admin = admin_only(operation)
    refused_before = stats.refused

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        where = f"{case.operation.method.upper()} {case.operation.path} [{mode.value}]"
        stats.record(mode.value, _check(target, case, target.headers, where, stats))
        if admin and stats.refused - refused_before < REFUSED_PER_MODE:
            stats.refused += 1
            status = _check(target, case, target.session_headers, f"{where} without admin token", stats)
            if status != 401:
                stats.failures.append(f"{where} without admin token → {status}, not 401")

    with contextlib.suppress(Unsatisfiable):  # nothing to make invalid (no parameters): skip this mode
        run()
