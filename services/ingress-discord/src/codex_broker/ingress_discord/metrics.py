"""Prometheus metrics of ingress-discord. Labels are bounded sets (methods we call, known results)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ENABLED = Gauge("cb_discord_enabled", "1 when the Discord bot token is configured")
CONNECTED = Gauge("cb_discord_gateway_connected", "1 while the gateway session is up")
API_CALLS = Counter(
    "cb_discord_api_calls_total",
    "Discord REST calls by method and result (after discord.py's retries)",
    ["method", "result"],
)
INBOUND = Counter(
    "cb_discord_inbound_total",
    "Gateway events by kind and result (persisted, duplicate, ignored, denied, failed)",
    ["kind", "result"],
)
BACKFILLED = Counter("cb_discord_backfilled_total", "Messages recovered from REST history after a reconnect")
