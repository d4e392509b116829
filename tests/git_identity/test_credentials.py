"""The credential helper gives git the GitHub token; the token is nowhere else.

`git credential fill` asks the configured helpers exactly like `git push` would, without any
network. The token must not be written to CODEX_HOME, must not reach logs, and background jobs
do not get it unless configured.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from codex_broker.codex_runner.git_identity import git_child_env, job_env_extras
from codex_broker.libs.logs import Redactor
from codex_broker.libs.settings import CommonSettings
from tests.git_identity.support import GitSettings, git_env, git_home, run_git

TOKEN = "ghp_FAKEtoken0123456789abcdefABCDEF0123"


def fill(env: dict[str, str], cwd: Path, url: str) -> tuple[int, str]:
    protocol, _, rest = url.partition("://")
    host = rest.split("/", 1)[0]
    done = run_git(cwd, env, "credential", "fill", stdin=f"protocol={protocol}\nhost={host}\n\n")
    return done.returncode, done.stdout


def test_helper_answers_github_from_the_environment(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings_values = {"gh_token": TOKEN}
    home = git_home(tmp_path / "codex-home", "http://127.0.0.1:9", **settings_values)
    env = git_env(home, "http://127.0.0.1:9", tmp_path, GH_TOKEN=TOKEN)

    code, out = fill(env, tmp_path, "https://github.com")
    assert code == 0
    assert "username=x-access-token" in out and f"password={TOKEN}" in out

    # another host gets nothing from us (and git may not prompt: it fails)
    code, out = fill(env, tmp_path, "https://gitlab.example.com")
    assert TOKEN not in out and code != 0

    # without the token in the environment, github.com gets nothing either
    env_without = {k: v for k, v in env.items() if k != "GH_TOKEN"}
    code, out = fill(env_without, tmp_path, "https://github.com")
    assert TOKEN not in out and code != 0

    # GITHUB_TOKEN alone works too
    code, out = fill({**env_without, "GITHUB_TOKEN": TOKEN}, tmp_path, "https://github.com")
    assert code == 0 and f"password={TOKEN}" in out

    # ssh-style GitHub remotes become https (so the helper applies to them)
    done = run_git(tmp_path, env, "ls-remote", "--get-url", "git@github.com:acme/widgets.git")
    assert done.stdout.strip() == "https://github.com/acme/widgets.git"

    # the token is on disk nowhere in CODEX_HOME, and not in anything logged
    for path in (tmp_path / "codex-home").rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(encoding="utf-8", errors="replace"), path
    assert TOKEN not in caplog.text


def test_ssh_agent_without_token_keeps_ssh_remotes(tmp_path: Path) -> None:
    home = git_home(tmp_path / "codex-home", "http://127.0.0.1:9", git_ssh_auth_sock="/run/agent.sock")
    env = git_env(home, "http://127.0.0.1:9", tmp_path)
    done = run_git(tmp_path, env, "ls-remote", "--get-url", "git@github.com:acme/widgets.git")
    assert done.stdout.strip() == "git@github.com:acme/widgets.git"


def test_token_is_a_redacted_secret_of_the_runner_settings() -> None:
    class RunnerLike(CommonSettings, GitSettings):
        pass

    settings = RunnerLike(gh_token=TOKEN, github_token=None, _env_file=None)  # type: ignore[call-arg]
    assert TOKEN in settings.secret_values()
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())
    redactor = Redactor(settings.secret_values())
    assert TOKEN not in redactor.text(f"git push failed: https://x-access-token:{TOKEN}@github.com/a/b")


def test_job_environment_has_no_token_by_default(tmp_path: Path) -> None:
    settings = GitSettings(gh_token=TOKEN, _env_file=None)  # type: ignore[call-arg]
    assert job_env_extras(settings) == {}
    child = git_child_env(settings, tmp_path, api_base="http://127.0.0.1:9")
    assert child["GH_TOKEN"] == TOKEN  # Codex's own shell is where it belongs
