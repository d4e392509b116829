"""ingress-feishu metrics (bounded labels: operation names, outcomes, reasons — never ids)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

API_CALLS = Counter("cb_feishu_api_calls_total", "Feishu open-platform calls", ["op", "outcome"])
API_SECONDS = Histogram(
    "cb_feishu_api_seconds",
    "Duration of one Feishu API call (retries excluded)",
    ["op"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
API_RETRIES = Counter("cb_feishu_api_retries_total", "Feishu calls retried", ["op", "reason"])
INBOUND_EVENTS = Counter(
    "cb_feishu_inbound_events_total", "Long-connection events by result", ["type", "result"]
)
INBOUND_IGNORED = Counter("cb_feishu_inbound_ignored_total", "Events not forwarded, by reason", ["reason"])
INBOUND_PERSIST_SECONDS = Histogram(
    "cb_feishu_inbound_persist_seconds",
    "Time from receiving an event to having it in Redis",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
USER_NAMES = Counter(
    "cb_feishu_user_names_total", "Display names of inbound senders: cached, looked_up, failed", ["result"]
)
CARD_UPDATES = Counter("cb_feishu_card_updates_total", "Run card updates by surface", ["surface"])
WS_CONNECTED = Gauge("cb_feishu_ws_connected", "1 while this replica's long connection is up")
WS_LEASE_HELD = Gauge("cb_feishu_ws_lease_held", "1 while this replica holds the app's connection lease")
WS_RECONNECTS = Counter("cb_feishu_ws_reconnects_total", "Long-connection reconnect attempts")
