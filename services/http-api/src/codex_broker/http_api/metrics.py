"""http-api metrics. Labels are bounded: the route template, never an id from the path."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("cb_http_requests_total", "HTTP requests answered", ["route", "method", "status"])
REQUEST_SECONDS = Histogram(
    "cb_http_request_seconds",
    "Time to answer one HTTP request",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120),
)
RPC_SECONDS = Histogram(
    "cb_http_rpc_seconds",
    "Round trip of a history/post/upload RPC to an ingress",
    ["kind", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120),
)
JOBS_REGISTERED = Counter("cb_jobs_registered_total", "Background jobs registered", ["kind_bucket"])
JOB_CALLBACKS = Counter("cb_job_callbacks_total", "Job callbacks turned into inbound events", ["status"])
JOBS_FINISHED = Counter("cb_jobs_finished_total", "Background jobs that ended", ["outcome"])
