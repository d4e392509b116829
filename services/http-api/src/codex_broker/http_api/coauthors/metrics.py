"""Co-author metrics (bounded labels: outcome and platform only)."""

from __future__ import annotations

from prometheus_client import Counter

RESOLVES = Counter(
    "cb_coauthor_resolves_total",
    "Commit co-author resolutions answered",
    ["caller", "outcome"],  # caller: session|hook|admin; outcome: trailers|none|unresolved
)
PROMPTS = Counter(
    "cb_coauthor_prompts_total", "'Configure co-authors' prompts sent to a thread", ["platform"]
)
