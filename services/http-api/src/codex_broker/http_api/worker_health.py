"""The rq worker's /healthz, /readyz and /metrics, on METRICS_PORT like every other process.

The worker's main process is rq's pool loop (synchronous, forking the work horses), so these are
served by a small stdlib HTTP server in a daemon thread of that process: no event loop to share,
and the forked horses never serve. Readiness is Redis answering and the jobs sandbox not refused
(a worker that refuses every job must not count as ready); the metrics are read from Redis at
scrape time (queue depth, attempts running), so they are right whichever process changed them.
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis import Redis as SyncRedis
from rq import Queue
from rq.registry import StartedJobRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Readiness:
    ok: bool
    checks: dict[str, str]


def readiness(redis_error: str | None, sandbox_mode: str, sandbox_reason: str) -> Readiness:
    """Pure: the verdict over what the worker knows."""
    checks = {"redis": "ok" if redis_error is None else f"fail: {redis_error}"}
    if sandbox_mode == "refused":
        checks["jobs_sandbox"] = f"fail: {sandbox_reason}"[:300]
    elif sandbox_mode == "unsandboxed":
        checks["jobs_sandbox"] = "degraded: jobs run unsandboxed (JOBS_UNSANDBOXED=true)"
    else:
        checks["jobs_sandbox"] = "ok"
    ok = all(value == "ok" or value.startswith("degraded:") for value in checks.values())
    return Readiness(ok, checks)


class QueueCollector(Collector):
    """Queue depth and running attempts of the jobs queue, read from Redis at each scrape."""

    def __init__(self, redis: SyncRedis, queue_name: str, capacity: int) -> None:
        self.redis = redis
        self.queue_name = queue_name
        self.capacity = capacity

    def collect(self) -> Iterable[GaugeMetricFamily]:
        capacity = GaugeMetricFamily("cb_worker_capacity", "Job attempts this worker runs at once")
        capacity.add_metric([], self.capacity)
        yield capacity
        try:
            queued = Queue(self.queue_name, connection=self.redis).count
            running = StartedJobRegistry(self.queue_name, connection=self.redis).count
        except Exception as exc:  # a scrape during a Redis outage shows the outage, not a 500
            log.warning("worker metrics unavailable", extra={"error": str(exc)[:200]})
            return
        depth = GaugeMetricFamily("cb_worker_queue_depth", "Job attempts waiting in the rq queue")
        depth.add_metric([], queued)
        yield depth
        started = GaugeMetricFamily("cb_worker_jobs_running", "Job attempts running (all workers)")
        started.add_metric([], running)
        yield started


def serve(
    host: str,
    port: int,
    *,
    service: str,
    instance: str,
    redis: SyncRedis,
    registry: CollectorRegistry,
    state: Callable[[], tuple[str, str]],
) -> http.server.ThreadingHTTPServer:
    """Start serving in a daemon thread; `state()` gives (sandbox mode, reason)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._json(200, {"ok": True, "service": service, "instance": instance})
            elif self.path == "/readyz":
                verdict = readiness(_redis_error(redis), *state())
                self._json(200 if verdict.ok else 503, {"ok": verdict.ok, "checks": verdict.checks})
            elif self.path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            else:
                self._json(404, {"ok": False, "error": "not_found", "field": "path"})

        def _json(self, status: int, body: dict[str, object]) -> None:
            self._send(status, "application/json", json.dumps(body).encode())

        def _send(self, status: int, content_type: str, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:  # probes every few seconds: not log lines
            pass

    server = http.server.ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="worker-health", daemon=True).start()
    return server


def _redis_error(redis: SyncRedis) -> str | None:
    try:
        redis.ping()
    except Exception as exc:
        return type(exc).__name__
    return None
