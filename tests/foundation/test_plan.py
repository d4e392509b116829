"""Pure planning of `codex-broker up`: replicas, children, ports, env, restart backoff."""

from __future__ import annotations

import pytest

from codex_broker.cli.plan import (
    SERVICE_NAMES,
    PlanError,
    backoff_delay,
    backoff_schedule,
    canonical_service,
    failures_after_exit,
    parse_replicas,
    plan_children,
)


def test_parse_replicas() -> None:
    assert parse_replicas("") == {}
    assert parse_replicas("orchestrator=2,codex-runner=3") == {"orchestrator": 2, "codex-runner": 3}
    assert parse_replicas(" codex_runner = 1 , runner=4,slack=0,") == {"codex-runner": 4, "ingress-slack": 0}
    assert parse_replicas("worker=0") == {"worker": 0}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("orchestrator", "is not NAME=COUNT"),
        ("orchestrator=two", "not a number"),
        ("orchestrator=-1", "must be 0..64"),
        ("orchestrator=65", "must be 0..64"),
        ("billing=1", "unknown service 'billing'"),
    ],
)
def test_parse_replicas_rejects(spec: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        parse_replicas(spec)


def test_canonical_service_names() -> None:
    assert canonical_service("HTTP_API") == "http-api"
    assert canonical_service("feishu") == "ingress-feishu"


def _plan(**overrides: object) -> list:  # type: ignore[type-arg]
    args: dict[str, object] = {
        "python": "/venv/bin/python",
        "replicas": {},
        "metrics_port_base": 9100,
        "http_api_port": 3000,
        "with_worker": True,
        "worker_available": True,
        "base_env": {"KEY_PREFIX": "cb", "INSTANCE_ID": "ignored"},
    }
    args.update(overrides)
    return plan_children(**args)  # type: ignore[arg-type]


def test_plan_one_of_each_with_worker() -> None:
    children = _plan()
    assert [c.name for c in children] == [f"{s}-1" for s in SERVICE_NAMES] + ["worker-1"]
    assert [c.metrics_port for c in children] == list(range(9100, 9108))
    orch = children[2]
    assert orch.argv == ("/venv/bin/python", "-m", "codex_broker.orchestrator")
    assert orch.env["INSTANCE_ID"] == "orchestrator-1"
    assert orch.env["METRICS_PORT"] == "9102"
    assert orch.env["KEY_PREFIX"] == "cb"
    assert orch.env["PYTHONUNBUFFERED"] == "1"
    assert children[-1].argv[-1] == "codex_broker.http_api.worker"


def test_plan_replicas_ports_and_missing_worker() -> None:
    children = _plan(
        replicas={"orchestrator": 2, "codex-runner": 3, "ingress-feishu": 0, "http-api": 2},
        worker_available=False,
    )
    names = [c.name for c in children]
    assert names == [
        "ingress-slack-1",
        "orchestrator-1",
        "orchestrator-2",
        "codex-runner-1",
        "codex-runner-2",
        "codex-runner-3",
        "http-api-1",
        "http-api-2",
        "ingress-web-1",
        "ingress-discord-1",
    ]
    ports = [c.metrics_port for c in children]
    assert ports == list(range(9100, 9110))
    assert len({c.env["INSTANCE_ID"] for c in children}) == len(children)
    api = [c for c in children if c.service == "http-api"]
    assert "HTTP_API_PORT" not in api[0].env
    assert api[1].env["HTTP_API_PORT"] == "3001"


def test_extra_web_chat_replicas_get_their_own_ports() -> None:
    children = _plan(replicas={"ingress-web": 2}, http_web_port=3100)
    web = [c for c in children if c.service == "ingress-web"]
    assert "HTTP_WEB_PORT" not in web[0].env
    assert web[1].env["HTTP_WEB_PORT"] == "3101"


def test_plan_without_worker_flag() -> None:
    assert all(c.service != "worker" for c in _plan(with_worker=False))


def test_backoff_doubles_and_caps() -> None:
    assert backoff_delay(0, initial_s=0.5, max_s=30) == 0
    assert backoff_schedule(8, initial_s=0.5, max_s=30) == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff_delay(10_000, initial_s=0.5, max_s=30) == 30


def test_a_long_lived_child_starts_its_backoff_afresh() -> None:
    assert failures_after_exit(0, uptime_s=1, stable_after_s=60) == 1
    assert failures_after_exit(3, uptime_s=1, stable_after_s=60) == 4
    assert failures_after_exit(5, uptime_s=61, stable_after_s=60) == 1
