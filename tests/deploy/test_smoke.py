"""Deployment smoke test: every Deployment of k8s/base and each overlay, and every service of
compose.yaml, runs its container command with the env its manifest gives it (secrets as test
values) on a Redis started by the shipped ACL script, and each declared probe — liveness,
readiness, the compose healthcheck or the image's HEALTHCHECK — must be answered. No container
engine is needed: the processes run as the image's entrypoint would run them (docs/deploy.md;
test_container.py runs the image itself where an engine runs).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from redis import Redis
from redis import exceptions as redis_errors

from codex_broker.libs import paths
from codex_broker.libs.codex_bin import find_codex_bin
from tests.deploy import smoke
from tests.deploy.test_manifests import OVERLAYS, ROOT, render
from tests.deploy.test_redis_acl import SERVICES, _passwords, _start
from tests.fakes.codex_home import FAKE_API_KEY, write_codex_home
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_feishu import FakeFeishu
from tests.fakes.fake_model import FakeModel
from tests.fakes.fake_slack_client import FakeSlackProcess, start_fake_slack_process
from tests.helpers import free_port

pytestmark = pytest.mark.codex  # the runner starts the real Codex app-server

FIXTURES = Path(__file__).parent / "fixtures"
DEAD_PROXY = "http://127.0.0.1:9"
ADMIN_TOKEN = "admin-token-for-the-smoke-test-0123456789"
PROBE_TIMEOUT_S = 150.0


@dataclass
class World:
    redis_port: int
    passwords: dict[str, str]
    slack: FakeSlackProcess
    feishu: FakeFeishu
    discord: FakeDiscord
    model: FakeModel
    tmp: Path

    def secrets(self) -> dict[str, dict[str, str]]:
        """Test values for every Secret the manifests declare."""
        return {
            "slack-credentials": {
                "SLACK_APP_TOKEN": self.slack.env["SLACK_APP_TOKEN"],
                "SLACK_BOT_TOKEN": self.slack.env["SLACK_BOT_TOKEN"],
            },
            "feishu-credentials": {
                "FEISHU_APP_ID": self.feishu.app_id,
                "FEISHU_APP_SECRET": self.feishu.app_secret,
            },
            "discord-credentials": {"DISCORD_BOT_TOKEN": self.discord.token},
            "codex-credentials": {"OPENAI_API_KEY": FAKE_API_KEY, "GH_TOKEN": "ghp_smoke_test_value"},
            "admin-credentials": {"BROKER_ADMIN_TOKEN": ADMIN_TOKEN},
            "redis-acl": dict(self.passwords),
        }

    def env_files(self) -> dict[str, dict[str, str]]:
        """compose's env files with test values (.env is the operator's: empty works)."""
        secrets = self.secrets()
        return {
            ".env": {},
            "secrets/slack.env": secrets["slack-credentials"],
            "secrets/feishu.env": secrets["feishu-credentials"],
            "secrets/discord.env": secrets["discord-credentials"],
            "secrets/codex.env": secrets["codex-credentials"],
            "secrets/admin.env": secrets["admin-credentials"],
        }

    def edges(self) -> dict[str, dict[str, str]]:
        """Where the platforms are (the fakes) and Codex's dead proxy: not deployment settings."""
        return {
            "codex_broker.ingress_slack": {"SLACK_API_URL": self.slack.env["SLACK_API_URL"]},
            "codex_broker.ingress_feishu": {"FEISHU_DOMAIN": self.feishu.url},
            "codex_broker.ingress_discord": {
                "DISCORD_API_BASE_URL": self.discord.api_url,
                "DISCORD_GATEWAY_URL": self.discord.gateway_url,
            },
            "codex_broker.codex_runner": {
                "HTTP_PROXY": DEAD_PROXY,
                "HTTPS_PROXY": DEAD_PROXY,
                "NO_PROXY": "127.0.0.1,localhost",
            },
        }


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server not on PATH (apt-get install redis-server)")
    passwords = _passwords(tmp_path / "redis-secrets")
    port = free_port()
    redis = _start(tmp_path, tmp_path / "redis-secrets", port)
    feishu = FakeFeishu().start()
    try:
        _wait_redis(port, redis)
        with start_fake_slack_process() as slack, FakeModel() as model, FakeDiscord() as discord:
            yield World(port, passwords, slack, feishu, discord, model, tmp_path)
    finally:
        feishu.stop()
        redis.terminate()
        redis.wait(timeout=15)


def _wait_redis(port: int, proc: object) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            Redis(port=port, socket_connect_timeout=1).ping()
        except redis_errors.AuthenticationError:
            return  # answering, and asking for a password
        except redis_errors.ConnectionError:
            assert time.monotonic() < deadline, "the ACL redis-server did not come up"
            time.sleep(0.05)


def _run(world: World, deployment: smoke.Deployment, label: str) -> dict[str, str]:
    data_root = world.tmp / label / "data"
    write_codex_home(paths.codex_home(data_root), world.model.base_url)
    codex_bin = find_codex_bin()
    assert codex_bin, "the pinned Codex CLI is not installed (scripts/install-codex.sh)"
    locals_ = smoke.localize(
        deployment,
        redis_port=world.redis_port,
        data_root=data_root,
        scratch=world.tmp / label / "pods",
        codex_bin=codex_bin,
        edges=world.edges(),
    )
    modules = {t.name: t.module for t in deployment.targets}
    logs = world.tmp / label / "logs"
    with smoke.running(locals_, modules, logs) as procs:
        failed = smoke.unanswered(locals_, procs, timeout_s=PROBE_TIMEOUT_S)
    if failed:
        print(smoke.log_tails(logs, sorted({name.split()[0] for name in failed})))
    return failed


def _assert_all_answered(deployment: smoke.Deployment, failed: dict[str, str]) -> None:
    assert {t.name for t in deployment.targets} >= set(SERVICES), "a service has no Deployment"
    for target in deployment.targets:
        kinds = {p.kind for p in target.probes}
        assert kinds, f"{target.name} declares no probe"
    assert not failed, "\n".join(f"{probe}: {answer}" for probe, answer in failed.items())


@pytest.mark.parametrize("overlay", [ROOT / "k8s" / "base", *OVERLAYS], ids=lambda p: p.name)
def test_every_k8s_deployment_answers_its_probes(world: World, overlay: Path) -> None:
    deployment = smoke.k8s_deployment(render(overlay), world.secrets())
    for target in deployment.targets:
        assert {"liveness", "readiness"} <= {p.kind for p in target.probes}, target.name
    _assert_all_answered(deployment, _run(world, deployment, overlay.name))


def test_every_compose_service_answers_its_healthcheck(world: World) -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    secret_files = {f"redis-{name}": password for name, password in world.passwords.items()}
    deployment = smoke.compose_deployment(compose, world.env_files(), secret_files)
    for target in deployment.targets:
        assert any(p.kind == "healthcheck" for p in target.probes), target.name
    _assert_all_answered(deployment, _run(world, deployment, "compose"))


def test_a_probe_on_a_port_nobody_listens_on_fails_the_check(world: World) -> None:
    """The broken fixture moves the worker's liveness probe off its METRICS_PORT: the check must
    name that probe (and only the worker runs, so it is the worker's own answer that counts)."""
    docs = render(FIXTURES / "wrong-probe-port")
    deployment = smoke.k8s_deployment(docs, world.secrets())
    deployment.targets = [t for t in deployment.targets if t.name == "worker"]
    failed = _run(world, deployment, "wrong-probe-port")
    assert len(failed) == 1, failed  # its readiness probe, on the right port, was answered
    ((probe, answer),) = failed.items()
    assert probe.startswith("worker liveness probe (/healthz on :"), failed
    assert answer.startswith("no answer"), failed
