"""Writes docs/metrics.md from the metrics the code defines (run: uv run python scripts/gen_metrics_doc.py).

tests/deploy/test_metrics_doc.py fails when the file is stale.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from prometheus_client import REGISTRY

import codex_broker

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "metrics.md"
HEADER = """# Metrics reference

Every service serves Prometheus metrics on its own port (`METRICS_PORT`; the http-api on its API
port) at `/metrics`. Labels are bounded: never a session, user, channel or run id. Stream labels are
the stream's kind (`inbound`, `runs`, `control`, `run-events`, `outbound:slack`, …), shards summed.
Generated from the code by `scripts/gen_metrics_doc.py`; a test fails when it is stale.

| metric | type | labels | meaning | defined in |
|---|---|---|---|---|
"""


def import_metric_modules() -> None:
    for module in pkgutil.walk_packages(codex_broker.__path__, prefix="codex_broker."):
        if module.name.rsplit(".", 1)[-1] in {"metrics", "streamstats"}:
            importlib.import_module(module.name)


def rows() -> list[str]:
    import_metric_modules()
    found = []
    for collector in list(REGISTRY._collector_to_names):
        name = getattr(collector, "_name", None)
        kind = getattr(collector, "_type", None)
        if not name or not name.startswith("cb_") or kind is None:
            continue
        shown = f"{name}_total" if kind == "counter" else name
        labels = ", ".join(f"`{label}`" for label in getattr(collector, "_labelnames", ())) or "—"
        doc = str(getattr(collector, "_documentation", "")).replace("|", "\\|")
        module = type(collector).__module__
        origin = _origin(name)
        found.append((shown, f"| `{shown}` | {kind} | {labels} | {doc} | {origin or module} |"))
    return [row for _, row in sorted(found)]


def _origin(name: str) -> str:
    for module_name, module in sorted(sys.modules.items()):
        if not module_name.startswith("codex_broker.") or module is None:
            continue
        for value in vars(module).values():
            if getattr(value, "_name", None) == name:
                return f"`{module_name}`"
    return ""


def render() -> str:
    return HEADER + "\n".join(rows()) + "\n"


if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC.relative_to(ROOT)}")
