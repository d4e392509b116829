"""A commit made through Codex's shell carries the thread's co-authors.

The real Codex 0.169.0 (driven by an in-process codex-runner) runs `git commit` through
`exec_command` scripted on the project's fake model, in a real repository in the session
workspace, with the git config the runner prepares in CODEX_HOME. The real http-api (with the
co-author routes) answers the commit-msg hook. Then the unmapped participant answers through
the modal (orchestrator side, libs.coauthor_actions) and the next commit carries them too.
The GitHub token is usable by git inside Codex's shell, and appears nowhere else.

Sandbox: the shipped default, a sealed workspace-write session with network access: the
session's permission profile grants `.git` write (Codex's legacy workspace-write kept it
read-only) and its proxy admits the http-api the hook asks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from codex_broker.codex_runner import supervisor
from codex_broker.codex_runner.config import Settings as RunnerSettings
from codex_broker.codex_runner.git_identity import git_child_env, prepare_git_home
from codex_broker.http_api.context import AppContext
from codex_broker.libs import paths
from codex_broker.libs.authors import Author
from codex_broker.libs.coauthor_actions import handle_coauthor_action
from codex_broker.libs.contracts import (
    ActionPayload,
    Actor,
    EphemeralPayload,
    InboundEvent,
    RunInput,
    RunRequest,
)
from codex_broker.libs.keys import Keys
from tests.codex_runner.harness import publish_run, runner_settings, running_runner, wait_terminal
from tests.fakes.codex_home import write_codex_home
from tests.fakes.fake_model import FakeModel, text_reply, tool_call_reply, tool_outputs
from tests.git_identity.support import (
    CHILD_PATH,
    Session,
    agit,
    api_settings,
    git_settings,
    make_session,
    outbound_actions,
    serve_api,
)

pytestmark = pytest.mark.codex

TOKEN = "ghp_FAKEcodexShellToken0123456789abcdef"
ANN = Author("Ann Lee", "ann@example.com", "manual")
COMMIT_AND_CHECK = (
    "echo {n} > change-{n}.txt && git add change-{n}.txt && git commit -q -m 'Codex change {n}' && "
    "printf 'protocol=https\\nhost=github.com\\n\\n' | git credential fill | grep -c '^password=' ; "
    "git log -1 --format=%B"
)


@pytest.fixture
def fake_model() -> Iterator[FakeModel]:
    with FakeModel() as fake:
        yield fake


@pytest.fixture
def data_root(tmp_path: Path, fake_model: FakeModel) -> Path:
    root = tmp_path / "data"
    write_codex_home(paths.codex_home(root), fake_model.base_url)
    return root


def _wired() -> bool:
    return "gh_token" in RunnerSettings.model_fields


@pytest.fixture
def wire_git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until the lead wires git_identity into the runner, apply exactly the documented wiring."""
    if _wired():
        return
    original = supervisor.child_env
    extra = git_settings(gh_token=TOKEN)

    def child_env(settings: Any, profile: Any) -> dict[str, str]:
        env = original(settings, profile)
        prepare_git_home(profile.codex_home, extra, api_base=settings.api_base, child_path=settings.path)
        env.update(git_child_env(extra, profile.codex_home, api_base=settings.api_base))
        return env

    monkeypatch.setattr(supervisor, "child_env", child_env)


def _request(session: Session, n: int) -> RunRequest:
    return RunRequest(
        session_key=session.key,
        coords=session.coords,
        workspace=str(session.workspace),
        sandbox="workspace-write",
        network_access=True,
        approval_policy="never",
        input=[RunInput(type="text", text=f"commit number {n}")],
    )


async def _turn(redis: Redis, keys: Keys, fake: FakeModel, session: Session, n: int) -> str:
    fake.script(
        tool_call_reply(COMMIT_AND_CHECK.format(n=n), match=f"commit number {n}"),
        text_reply(f"committed {n}", match=f"commit number {n}"),
    )
    request = _request(session, n)
    await publish_run(redis, keys, request)
    events = await wait_terminal(redis, keys, request, timeout_s=120)
    assert events[-1].kind == "completed", [(e.kind, e.text) for e in events]
    done = await agit(session.workspace, _plain_env(session), "log", "-1", "--format=%B")
    return done.stdout


def _plain_env(session: Session) -> dict[str, str]:
    return {"PATH": CHILD_PATH, "HOME": str(session.workspace)}


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and path.stat().st_size < 20_000_000 and needle in path.read_bytes()
    ]


async def test_commit_through_codex_carries_coauthors(
    wire_git_identity: None,
    fake_model: FakeModel,
    redis: Redis,
    keys: Keys,
    redis_url: str,
    key_prefix: str,
    data_root: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    await redis.hset(keys.github_authors("slack"), "U1", ANN.to_json())  # type: ignore[misc]
    session = await make_session(redis, keys, data_root, {"U1": "Ann", "U3": "Cy"})
    init = await agit(session.workspace, _plain_env(session), "init", "-q", ".")
    assert init.returncode == 0, init.stderr

    ctx = AppContext.create(api_settings(redis_url, key_prefix, data_root))
    try:
        async with serve_api(ctx) as base:
            overrides: dict[str, Any] = {"broker_api_base": base}
            if _wired():
                overrides["gh_token"] = TOKEN
            async with running_runner(runner_settings(data_root, key_prefix, redis_url, **overrides)):
                first = await _turn(redis, keys, fake_model, session, 1)
                assert first.startswith("Codex change 1"), tool_outputs(fake_model.requests[-1])
                assert ANN.trailer in first and "Cy" not in first
                [prompt] = await outbound_actions(redis, keys, "slack")
                assert isinstance(prompt.payload, EphemeralPayload) and prompt.payload.user_id == "U3"

                submit = InboundEvent(
                    event_id="slack-action:codex-submit",
                    platform="slack",
                    conversation_id=session.coords.conversation_id,
                    root_message_id=session.coords.root_message_id,
                    kind="action",
                    actor=Actor(id="U3", display_name="Cy"),
                    action=ActionPayload(
                        action="coauthor_submit",
                        values={"coauthors_0": ["U1", "U3"], "github_email": "cy@example.com"},
                    ),
                )
                assert await handle_coauthor_action(redis, keys, ctx.bus, submit)

                second = await _turn(redis, keys, fake_model, session, 2)
                assert ANN.trailer in second and "Co-authored-by: cy <cy@example.com>" in second
    finally:
        await ctx.aclose()

    # git inside Codex's shell got the token from the helper (the command printed only a count)
    outputs = "\n".join(o for body in fake_model.requests for o in tool_outputs(body))
    assert outputs.count("\n1\nCodex change") == 2, outputs
    # ... and the token is nowhere else: not in what the model saw, not in logs, not on disk
    assert TOKEN not in outputs and TOKEN not in caplog.text
    assert await asyncio.to_thread(_files_containing, data_root, TOKEN.encode()) == []
