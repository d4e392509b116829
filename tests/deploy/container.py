"""A container engine for tests/deploy/test_container.py, and when those tests may be skipped.

Like the browser tests (tests/browser.py): on a machine with no docker binary, no docker-compose
or no daemon answering, the container tests are skipped with the reason. `.ci/run` installs
Debian's docker.io, docker-compose and debootstrap, starts dockerd and sets
CB_REQUIRE_CONTAINER=1: there an engine that does not answer fails the tests instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "scripts" / "container-image.sh"
IMAGE = "codex-broker:container-test"
BUILD_TIMEOUT_S = 3600.0


def engine_problem() -> str | None:
    """Why no container can run here, or None when docker and docker-compose both answer."""
    if os.geteuid() != 0:
        return "the container test runs as root (debootstrap; /data handed to the image's uid 10001)"
    for tool, package in (("docker", "docker.io"), ("docker-compose", "docker-compose")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install -y {package})"
    try:
        info = run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout_s=60, check=False)
    except subprocess.TimeoutExpired:
        return "the docker daemon did not answer `docker info` within 60 s"
    if info.returncode != 0 or not info.stdout.strip():
        return f"no docker daemon answers (start dockerd, see .ci/run): {info.stderr.strip()[:300]}"
    return None


def require_engine() -> None:
    """Skip (or, under CB_REQUIRE_CONTAINER, fail) the calling test when no engine runs."""
    problem = engine_problem()
    if problem is None:
        return
    if os.environ.get("CB_REQUIRE_CONTAINER"):
        pytest.fail(f"CB_REQUIRE_CONTAINER is set but {problem}")
    pytest.skip(problem)


def build_image(tag: str = IMAGE) -> float:
    """scripts/container-image.sh: the base from Debian packages when missing, then the image.
    Returns the seconds it took (the script prints each step's own)."""
    started = time.monotonic()
    result = run(["bash", str(BUILD_SCRIPT), tag], timeout_s=BUILD_TIMEOUT_S, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-60:])
        raise AssertionError(f"{BUILD_SCRIPT.name} failed ({result.returncode}):\n{tail}")
    print(result.stderr.splitlines()[-1] if result.stderr else "")
    return time.monotonic() - started


def run(
    argv: Sequence[str],
    *,
    timeout_s: float,
    check: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if check and result.returncode != 0:
        error = result.stderr.strip()[-2000:]
        raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}): {error}")
    return result
