"""The Dockerfile, read offline (test_container.py builds and runs it where an engine runs): every stage
builds from the BASE_IMAGE argument, the runtime has git, gh and rg from Debian besides the
pinned Codex, runs non-root, and declares the HEALTHCHECK test_smoke.py runs."""

from __future__ import annotations

import re

from tests.deploy import smoke
from tests.deploy.test_manifests import ROOT


def _instructions() -> list[tuple[str, str]]:
    return smoke.dockerfile_instructions(smoke.DOCKERFILE.read_text())


def test_every_stage_starts_from_the_base_image_argument() -> None:
    instructions = _instructions()
    stages = [rest for word, rest in instructions if word == "FROM"]
    assert stages and all(rest.split()[0] == "${BASE_IMAGE}" for rest in stages), stages
    args = [rest for word, rest in instructions if word == "ARG"]
    assert any(re.fullmatch(r"BASE_IMAGE=debian:bookworm\S*", rest) for rest in args), args


def test_the_runtime_ships_git_gh_rg_and_the_pinned_codex() -> None:
    runtime = smoke.runtime_stage()
    installed = " ".join(rest for word, rest in runtime if word == "RUN" and "apt-get install" in rest)
    for package in ("git", "gh", "ripgrep", "python3", "nodejs", "tini"):
        assert re.search(rf"\s{package}(\s|$)", installed), package
    checked = " ".join(rest for word, rest in runtime if word == "RUN")
    assert all(f"{tool} --version" in checked for tool in ("codex", "git", "gh", "rg"))
    pinned = re.search(r'VERSION="([^"]+)"', (ROOT / "scripts" / "install-codex.sh").read_text())
    assert pinned is not None
    args = [rest for word, rest in _instructions() if word == "ARG"]
    assert f"CODEX_VERSION={pinned.group(1)}" in args


def test_the_image_runs_non_root_with_a_healthcheck() -> None:
    runtime = smoke.runtime_stage()
    users = [rest for word, rest in runtime if word == "USER"]
    assert users == ["broker"]
    command = smoke.image_healthcheck()
    assert command is not None and "/healthz" in command and "METRICS_PORT" in command
    assert smoke.image_env()["PATH"].startswith("/app/.venv/bin:")
