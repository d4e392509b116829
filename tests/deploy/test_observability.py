"""Alerts and the dashboard only use metrics the code defines; rules parse; labels stay bounded."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import codex_broker

ROOT = Path(__file__).resolve().parents[2]
METRIC_NAME = re.compile(r"\bcb_[a-z0-9_]+\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count", "_created")
UNBOUNDED_LABELS = {
    "session",
    "session_key",
    "user",
    "user_id",
    "run_id",
    "channel",
    "conversation_id",
    "thread_id",
}


def import_all_metric_modules() -> None:
    """Import every module that defines metrics so that the registry knows all of them."""
    for module in pkgutil.walk_packages(codex_broker.__path__, prefix="codex_broker."):
        if module.name.rsplit(".", 1)[-1] in {"metrics", "streamstats"}:
            importlib.import_module(module.name)


def defined_metrics() -> dict[str, list[str]]:
    """Every sample name the registry would expose, with the labels of its metric."""
    import_all_metric_modules()
    found: dict[str, list[str]] = {}
    for collector, names in REGISTRY._collector_to_names.items():  # the registry's own index
        labels = list(getattr(collector, "_labelnames", ()))
        for name in names:
            found[name] = labels
    return found


def base_name(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def alert_rules() -> list[dict]:
    doc = yaml.safe_load((ROOT / "k8s/base/prometheusrule.yaml").read_text())
    return [rule for group in doc["spec"]["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((ROOT / "deploy/grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def used_metrics() -> set[str]:
    exprs = [rule["expr"] for rule in alert_rules()] + dashboard_exprs()
    return {name for expr in exprs for name in METRIC_NAME.findall(expr)}


def test_every_metric_in_alerts_and_dashboard_is_defined_in_code() -> None:
    defined = defined_metrics()
    missing = sorted(
        name for name in used_metrics() if name not in defined and base_name(name) not in defined
    )
    assert not missing, f"used by alerts/dashboard but defined nowhere: {missing}"


def test_metric_labels_stay_bounded() -> None:
    offenders = {name: labels for name, labels in defined_metrics().items() if UNBOUNDED_LABELS & set(labels)}
    assert not offenders, f"metrics labelled by an unbounded id: {offenders}"


def test_required_alerts_exist() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    for needed in (
        "StuckTurn",
        "StreamLag",
        "DeadLetters",
        "SlackApiErrors",
        "FeishuApiErrors",
        "NoRunnerReady",
    ):
        assert any(needed in name for name in names), needed


def test_alert_rules_parse_with_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (.ci/run installs Debian's prometheus package for it)")
    doc = yaml.safe_load((ROOT / "k8s/base/prometheusrule.yaml").read_text())
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}))
    result = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_is_valid_grafana_json() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana-dashboard.json").read_text())
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for topic in ("inbound", "latency", "active turns", "queue", "dead letters", "api errors", "tokens"):
        assert topic in titles, topic
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
