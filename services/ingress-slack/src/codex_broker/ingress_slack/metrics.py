"""Prometheus metrics of ingress-slack. Labels are bounded sets (methods we call, known errors)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

API_CALLS = Counter("cb_slack_api_calls_total", "Slack Web API calls made (each attempt)", ["method"])
API_ERRORS = Counter(
    "cb_slack_api_errors_total", "Slack Web API errors by method and error code", ["method", "error"]
)
API_SECONDS = Histogram(
    "cb_slack_api_seconds",
    "Duration of one Slack Web API call",
    ["method"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RATE_LIMITED = Counter("cb_slack_ratelimited_total", "429 answers honoured with Retry-After", ["method"])
INBOUND = Counter(
    "cb_slack_inbound_total",
    "Socket Mode envelopes by kind and result (persisted, duplicate, ignored, failed)",
    ["kind", "result"],
)
INBOUND_PERSIST_SECONDS = Histogram(
    "cb_slack_inbound_persist_seconds",
    "From envelope received to InboundEvent in Redis (what the ack waits for)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
CAPABILITY_LEARNED = Counter(
    "cb_slack_capability_learned_total", "Capabilities learned as refused", ["capability"]
)
SOCKET_CONNECTED = Gauge("cb_slack_socket_connected", "1 while the Socket Mode websocket is connected")
ENABLED = Gauge("cb_slack_enabled", "1 when Slack tokens are configured, 0 when the service is disabled")
USER_CACHE = Counter(
    "cb_slack_user_cache_total", "users.info cache lookups by result (hit, miss)", ["result"]
)
