"""A real container run: the image built from a Debian base (scripts/container-image.sh), and
compose.yaml's Slack pipeline — ingress-slack, orchestrator, codex-runner with the real Codex
inside the image — answering one mention end to end against the fake Slack and the fake model.

The containers share the host's network (tests/deploy/compose.container-test.yaml) so that they
reach the fakes and the test's Redis on 127.0.0.1 and nothing else; Redis is started by the
shipped ACL script with compose's per-service users and password files. Skipped where no
container engine runs, failed instead under CB_REQUIRE_CONTAINER=1 (tests/deploy/container.py).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from redis import Redis
from redis import exceptions as redis_errors

from codex_broker.libs import paths
from tests.deploy import container
from tests.deploy.test_manifests import ROOT
from tests.deploy.test_redis_acl import _passwords, _start
from tests.fakes.codex_home import FAKE_API_KEY, write_codex_home
from tests.fakes.fake_model import FakeModel, text_reply, tool_call_reply, tool_outputs
from tests.fakes.fake_slack_client import FakeSlackProcess, start_fake_slack_process
from tests.helpers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.codex, pytest.mark.timeout(container.BUILD_TIMEOUT_S + 900)]

OVERRIDE = Path(__file__).parent / "compose.container-test.yaml"
SERVICES = ("ingress-slack", "orchestrator", "codex-runner")
BROKER_UID = 10001  # the Dockerfile's `broker` user
WAIT_S = 240.0  # a bound on every wait below (the first Codex start in a fresh container is slow)
PINNED_CODEX = re.search(r'VERSION="([^"]+)"', (ROOT / "scripts" / "install-codex.sh").read_text())


@pytest.fixture(scope="module")
def image() -> str:
    container.require_engine()
    seconds = container.build_image(container.IMAGE)
    print(f"container image {container.IMAGE} ready in {seconds:.0f} s")
    return container.IMAGE


def _in_image(image: str, *argv: str) -> str:
    result = container.run(
        ["docker", "run", "--rm", "--network", "none", "--entrypoint", argv[0], image, *argv[1:]],
        timeout_s=120,
    )
    return result.stdout.strip()


def test_the_image_ships_git_gh_rg_and_the_pinned_codex_and_runs_non_root(image: str) -> None:
    assert PINNED_CODEX is not None
    assert _in_image(image, "codex", "--version").split()[-1] == PINNED_CODEX.group(1)
    assert _in_image(image, "git", "--version").startswith("git version ")
    assert _in_image(image, "gh", "--version").startswith("gh version ")
    assert _in_image(image, "rg", "--version").startswith("ripgrep ")
    assert _in_image(image, "id", "-u") == str(BROKER_UID)
    # what the service command finds: the locked packages in the image's venv
    assert _in_image(image, "python", "-c", "import codex_broker.codex_runner; print('ok')") == "ok"


@dataclass
class Compose:
    project: str
    argv: list[str]
    env: dict[str, str]
    ports: dict[str, int]

    def __call__(self, *args: str, timeout_s: float = 300, check: bool = True) -> str:
        result = container.run([*self.argv, *args], timeout_s=timeout_s, env=self.env, check=check)
        return result.stdout + result.stderr

    def health(self) -> dict[str, str]:
        """Each container's state under the image's HEALTHCHECK, as the engine reports it."""
        ids = self("ps", "-q").split()
        fmt = '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Health.Status}}'
        out = container.run(["docker", "inspect", "--format", fmt, *ids], timeout_s=60).stdout
        return dict(line.split() for line in out.splitlines() if line.strip())

    def leftovers(self) -> list[str]:
        label = f"label=com.docker.compose.project={self.project}"
        found = []
        for kind in ("ps -a", "volume ls", "network ls"):
            out = container.run(["docker", *kind.split(), "-q", "--filter", label], timeout_s=60)
            found += [f"{kind}: {line}" for line in out.stdout.split()]
        return found


def _project_dir(root: Path, slack: FakeSlackProcess) -> Path:
    """What an operator puts next to compose.yaml (docs/deploy.md), with test values."""
    project = root / "project"
    (project / "secrets").mkdir(parents=True)
    (project / ".env").write_text("")
    env_files = {
        "slack": {k: v for k, v in slack.env.items() if k != "SLACK_API_URL"},
        "feishu": {"FEISHU_APP_ID": "cli_unused", "FEISHU_APP_SECRET": "unused"},
        "discord": {"DISCORD_BOT_TOKEN": "unused"},
        "codex": {"OPENAI_API_KEY": FAKE_API_KEY},
        "admin": {"BROKER_ADMIN_TOKEN": "admin-token-for-the-container-test-0123"},
    }
    for name, values in env_files.items():
        (project / "secrets" / f"{name}.env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    _passwords(project / "secrets" / "redis", prefix="")  # compose's secrets: files
    for path in (project / "secrets" / "redis").iterdir():
        path.chmod(0o644)  # bind-mounted into the container, read by uid 10001
    return project


def _data_root(root: Path, model: FakeModel) -> Path:
    """DATA_ROOT for the containers: the broker user's, with CODEX_HOME pointing at the fake."""
    data = root / "data"
    write_codex_home(paths.codex_home(data), model.base_url)
    for path in (data, *data.rglob("*")):
        os.chown(path, BROKER_UID, BROKER_UID)
    return data


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    """A redis-server started by k8s/base/redis/start-redis.sh: compose's ACL users, no default."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server not on PATH (apt-get install redis-server)")
    secrets = tmp_path / "redis-secrets"
    _passwords(secrets)
    port = free_port()
    proc = _start(tmp_path, secrets, port)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                Redis(port=port, socket_connect_timeout=1).ping()
            except redis_errors.AuthenticationError:
                break  # answering, and asking for a password
            except redis_errors.ConnectionError:
                assert time.monotonic() < deadline, "the ACL redis-server did not come up"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.fixture
def composed(
    image: str, tmp_path: Path, redis_port: int
) -> Iterator[tuple[Compose, FakeSlackProcess, FakeModel]]:
    with start_fake_slack_process() as slack, FakeModel() as model:
        slack.client.add_user("U1", "alice", display_name="Alice")
        project_dir = _project_dir(tmp_path, slack)
        ports = {name: free_port() for name in SERVICES}
        env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/root"),
            "CODEX_BROKER_IMAGE": image,
            "CB_TEST_DATA": str(_data_root(tmp_path, model)),
            "CB_TEST_REDIS_PORT": str(redis_port),
            "CB_TEST_SLACK_API_URL": slack.env["SLACK_API_URL"],
            **{f"CB_TEST_PORT_{name.upper().replace('-', '_')}": str(port) for name, port in ports.items()},
        }
        project = f"cbtest{uuid.uuid4().hex[:8]}"
        argv = ["docker-compose", "--ansi", "never", "-p", project, "--project-directory", str(project_dir)]
        argv += ["-f", str(ROOT / "compose.yaml"), "-f", str(OVERRIDE)]
        compose = Compose(project, argv, env, ports)
        try:
            compose("up", "-d", "--no-build", "--no-deps", *SERVICES)
            yield compose, slack, model
        finally:
            print(compose("logs", "--no-color", "--tail", "80", timeout_s=120, check=False)[-12000:])
            compose("down", "-v", "--remove-orphans", "--timeout", "60", timeout_s=300, check=False)
    assert compose.leftovers() == [], "docker-compose down left something behind"


def _get(port: int, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5, trust_env=False)
    except httpx.HTTPError:
        return None


def _until(probe: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not probe():
        assert time.monotonic() < deadline, f"gave up after {WAIT_S:.0f} s waiting for {what}"
        time.sleep(0.5)


def _thread_text(slack: FakeSlackProcess, channel: str, thread_ts: str) -> str:
    streams = {ts: s for ts, s in slack.client.streams().items() if s["thread_ts"] == thread_ts}
    parts = [
        m.get("text", "") + json.dumps(m.get("blocks") or [])
        for m in slack.client.messages(channel=channel, thread_ts=thread_ts, from_bot=True)
        if not m.get("deleted") and m["ts"] not in streams
    ]
    return "\n".join(parts + [s["text"] for s in streams.values()])


def test_compose_answers_a_mention_end_to_end_with_codex_sealed_in_the_container(
    composed: tuple[Compose, FakeSlackProcess, FakeModel],
) -> None:
    compose, slack, model = composed
    runner = compose.ports["codex-runner"]

    def ready(name: str) -> bool:
        answer = _get(compose.ports[name], "/readyz")
        return answer is not None and answer.status_code == 200

    for name in SERVICES:
        _until(functools.partial(ready, name), f"{name}'s /readyz")
    readiness = _get(runner, "/readyz")
    assert readiness is not None and readiness.json()["checks"]["sandbox"] == "ok", readiness
    slack.client.wait_connected(timeout_s=WAIT_S)

    # one shell command, run by Codex inside the container in the session's sandbox
    probe = (
        "id -u; git --version; "
        f"cat {paths.codex_home(Path('/data'))}/config.toml >/dev/null 2>&1 "
        "&& echo codex-home-readable || echo codex-home-hidden"
    )
    model.script(
        tool_call_reply(probe, match="container check"),
        text_reply("Checked from inside the container.", match="container check"),
    )
    sent = slack.client.user_message("C1", "U1", f"<@{slack.info['bot_user_id']}> container check")
    _until(
        lambda: "Checked from inside the container." in _thread_text(slack, "C1", sent.ts),
        "the answer in the mention's thread",
    )
    outputs = [o for r in model.requests for o in tool_outputs(r)]
    assert any(str(BROKER_UID) in o and "git version" in o for o in outputs), outputs
    assert any("codex-home-hidden" in o for o in outputs), outputs  # the session is sealed
    assert not any("codex-home-readable" in o for o in outputs), outputs

    # the Dockerfile's HEALTHCHECK (on each service's METRICS_PORT), run by the engine itself
    _until(lambda: compose.health() == dict.fromkeys(SERVICES, "healthy"), "every container healthy")
