"""docs/metrics.md lists exactly the metrics the code defines."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_metrics_reference_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen_metrics_doc", ROOT / "scripts" / "gen_metrics_doc.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    expected = generator.render()
    actual = (ROOT / "docs" / "metrics.md").read_text()
    assert actual == expected, "docs/metrics.md is stale: run `uv run python scripts/gen_metrics_doc.py`"
