"""Red team: commands of one session's real Codex try to reach what belongs to others.

Each probe runs as an `exec_command` the fake model asks for, through the codex-runner and the
pinned Codex's own sandbox, exactly as a prompt-injected turn would; the probe's output comes
back to the model, and the test reads it there. A marker line per probe makes the assertions
independent of how Codex formats the output.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from codex_broker.libs import paths, session_token
from codex_broker.libs.keys import Keys
from tests.codex_runner.harness import (
    new_request,
    publish_run,
    runner_settings,
    running_runner,
    wait_terminal,
)
from tests.fakes.codex_home import write_codex_home
from tests.fakes.fake_model import FakeModel, text_reply
from tests.security.support import run_session_probes

pytestmark = pytest.mark.codex

FOREIGN_SECRET = "foreign-workspace-secret-7f3a"
AUTH_SECRET = "codex-auth-secret-91bd"
LOG_SECRET = "log-line-secret-5c21"
REPO_TEXT = "shared-repo-readme-44e0"
FOREIGN_TOKEN = "foreign-session-token-0d9e"


@pytest.fixture
def fake_model() -> Iterator[FakeModel]:
    with FakeModel() as fake:
        yield fake


@pytest.fixture
def data_root(tmp_path: Path, fake_model: FakeModel) -> Path:
    root = tmp_path / "data"
    write_codex_home(paths.codex_home(root), fake_model.base_url)
    return root


def plant(data_root: Path, foreign_session: str) -> None:
    foreign = paths.session_workspace(data_root, foreign_session)
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text(FOREIGN_SECRET)
    session_token.write_private_file(session_token.token_file(data_root, foreign_session), FOREIGN_TOKEN)
    (paths.codex_home(data_root) / "auth.json").write_text(f'{{"OPENAI_API_KEY": "{AUTH_SECRET}"}}')
    (data_root / "logs" / "orchestrator").mkdir(parents=True)
    (data_root / "logs" / "orchestrator" / "00.jsonl").write_text(LOG_SECRET)
    (paths.repos_root(data_root) / "shared").mkdir(parents=True)
    (paths.repos_root(data_root) / "shared" / "README").write_text(REPO_TEXT)
    shared = paths.repos_root(data_root) / "shared"
    for args in (["init", "-q"], ["add", "README"], ["commit", "-q", "-m", "shared repo"]):
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
        subprocess.run(git, cwd=shared, check=True, capture_output=True)


async def run_probes(
    data_root: Path,
    fake_model: FakeModel,
    redis: Redis,
    keys: Keys,
    key_prefix: str,
    redis_url: str,
    probes: dict[str, str],
    **settings: object,
) -> str:
    plant(data_root, "C0TEST:foreign-thread")
    return await run_session_probes(
        data_root, fake_model, redis, keys, key_prefix, redis_url, probes, **settings
    )


def probes_for(data_root: Path) -> dict[str, str]:
    sessions = data_root / "sessions"
    codex_home = paths.codex_home(data_root)
    return {
        "list_sessions": f"ls {sessions}",
        "foreign_file": f"cat {sessions}/*/workspace/notes.txt",
        "grep_data_root": f"grep -rhoa {FOREIGN_SECRET[:12]}.... {data_root}",
        "auth": f"cat {codex_home}/auth.json",
        "config": f"cat {codex_home}/config.toml",
        "logs": f"cat {data_root}/logs/orchestrator/00.jsonl",
        "foreign_token": f"cat {sessions}/*/{session_token.TOKEN_FILE}",
        "own_write": "echo own-file-ok > mine.txt && cat mine.txt",
        # the runner wrote this session's API token beside the workspace before the turn started
        "own_token": f"test -s ../{session_token.TOKEN_FILE} && echo own-token-ok",
        "repo_read": f"cat {paths.repos_root(data_root)}/shared/README",
        # a clone of the repos cache's canonical copy into the workspace (the documented way)
        "git_clone": f"git clone -q {paths.repos_root(data_root)}/shared task && cat task/README",
        "git_identity": f"ls {codex_home}/git-hooks",
        # .git is writable in the session's own workspace (Codex's legacy workspace-write keeps
        # it read-only): a commit works without danger-full-access
        "git_commit": "git init -q repo && cd repo && echo x > f && git add f"
        " && git commit -q --no-verify -m first && git log --format=%s",
    }


async def test_a_sessions_commands_see_nothing_of_other_sessions_or_codex_home(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    output = await run_probes(
        data_root, fake_model, redis, keys, key_prefix, redis_url, probes_for(data_root)
    )
    for secret in (FOREIGN_SECRET, FOREIGN_TOKEN, AUTH_SECRET, LOG_SECRET, 'model_provider = "fake"'):
        assert secret not in output, output
    assert "<<own_token:own-token-ok>>" in output, output
    assert "<<list_sessions:" in output and "Permission denied" in output
    # the legitimate paths still work: its own workspace, the shared repos cache, git identity
    assert "<<own_write:own-file-ok>>" in output, output
    assert f"<<repo_read:{REPO_TEXT}>>" in output, output
    assert f"<<git_clone:{REPO_TEXT}>>" in output, output
    assert "commit-msg" in output, output
    assert "<<git_commit:first>>" in output, output


async def test_the_probes_do_reach_everything_when_sealing_is_switched_off(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    """The same probes against the old behaviour, so that the test above cannot pass by accident
    (a probe that fails for another reason would hide a hole)."""
    output = await run_probes(
        data_root, fake_model, redis, keys, key_prefix, redis_url, probes_for(data_root), seal_sessions=False
    )
    for secret in (FOREIGN_SECRET, FOREIGN_TOKEN, AUTH_SECRET, LOG_SECRET):
        assert secret in output, output


async def test_a_run_naming_another_sessions_workspace_is_refused(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    plant(data_root, "C0TEST:foreign-thread")
    foreign = paths.session_workspace(data_root, "C0TEST:foreign-thread")
    fake_model.script(text_reply("should not run"))
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)):
        request = new_request(data_root, "hi")
        request = request.model_copy(update={"workspace": str(foreign)})
        await publish_run(redis, keys, request)
        events = await wait_terminal(redis, keys, request)
    assert events[-1].kind == "failed" and "workspace_refused" in (events[-1].text or "")
    assert fake_model.request_count == 0


async def test_a_runner_whose_sandbox_cannot_start_refuses_sealed_runs_and_says_so(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    """The boot probe passes on this host; a host without user namespaces is played by setting
    what the probe would have found there (bubblewrap's own message)."""
    fake_model.script(text_reply("should not run"))
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)) as runner:
        assert (await runner.ready())["sandbox"] == "ok"
        runner.sandbox_problem = "bwrap: No permissions to create new namespace"
        assert (await runner.ready())["sandbox"].startswith("fail: bwrap")
        request = new_request(data_root, "hi")
        await publish_run(redis, keys, request)
        events = await wait_terminal(redis, keys, request)
    assert events[-1].kind == "failed"
    assert "sandbox_unavailable" in (events[-1].text or "") and "SEAL_SESSIONS=false" in (
        events[-1].text or ""
    )
    assert fake_model.request_count == 0


@pytest.mark.parametrize("mode", ["danger-full-access", "read-only"])
async def test_an_unsealed_mode_named_by_a_run_is_refused_unless_the_runner_allows_it(
    data_root: Path,
    fake_model: FakeModel,
    redis: Redis,
    keys: Keys,
    key_prefix: str,
    redis_url: str,
    mode: str,
) -> None:
    """A RunRequest alone cannot unseal a session: the runner's UNSEALED_SANDBOXES decides."""
    fake_model.script(text_reply("should not run"))
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)):
        request = new_request(data_root, "hi", sandbox=mode)
        await publish_run(redis, keys, request)
        events = await wait_terminal(redis, keys, request)
    assert events[-1].kind == "failed" and "sandbox_refused" in (events[-1].text or "")
    assert fake_model.request_count == 0
    fake_model.script(text_reply("allowed"))
    async with running_runner(runner_settings(data_root, key_prefix, redis_url, unsealed_sandboxes=[mode])):
        request = new_request(data_root, "hi", sandbox=mode)
        await publish_run(redis, keys, request)
        events = await wait_terminal(redis, keys, request)
    assert events[-1].kind == "completed", events[-1].text
