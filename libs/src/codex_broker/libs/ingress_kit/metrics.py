"""Metrics of the kit's machinery, labelled by platform (bounded: a handful of values each)."""

from __future__ import annotations

from prometheus_client import Counter

OUTBOUND = Counter(
    "cb_ingress_outbound_total",
    "Outbound actions handled by an ingress kit executor",
    ["platform", "kind", "result"],  # result: done, duplicate, retry, dead_letter
)
LIVE_VIEW = Counter(
    "cb_ingress_live_view_total",
    "Live view snapshots by what became of them",
    ["platform", "result"],  # applied, parked, stale
)
INBOUND = Counter(
    "cb_ingress_inbound_total",
    "Inbound platform events by what became of them",
    ["platform", "kind", "result"],  # persisted, duplicate, failed, dead_letter
)
