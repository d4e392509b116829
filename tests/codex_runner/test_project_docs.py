"""A session's workspace is its Codex project root (environment.ALWAYS_OVERRIDES,
`project_root_markers=[]`, which spares every turn a sandboxed walk up the tree): the cut must
not cost the workspace's own AGENTS.md — it still reaches the model — and nothing above the
workspace is read, even when a directory there looks like a project root (a `.git` in DATA_ROOT,
as in a development checkout). A sealed thread whose workspace has no project doc is told so
(project_docs.py, `project_doc_max_bytes = 0`: two sandboxed helpers fewer per new thread); the
global instructions in CODEX_HOME still reach the model. What the cuts save is measured by
bench/latency_bench.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from redis.asyncio import Redis

from codex_broker.libs import paths
from codex_broker.libs.keys import Keys
from tests.codex_runner.harness import (
    new_request,
    publish_run,
    runner_settings,
    running_runner,
    wait_terminal,
)
from tests.fakes.fake_model import FakeModel, text_reply

pytestmark = pytest.mark.codex

INSIDE = "workspace-rules-marker-41"
ABOVE = "data-root-rules-marker-17"
GLOBAL = "codex-home-rules-marker-63"


def _write_rules(data_root: Path, workspace: Path) -> None:
    (data_root / ".git").mkdir(parents=True, exist_ok=True)
    (data_root / "AGENTS.md").write_text(f"Always say {ABOVE}.\n")
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "AGENTS.md").write_text(f"Always say {INSIDE}.\n")


async def test_only_the_workspace_agents_md_is_read(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    request = new_request(data_root, "say hello")
    _write_rules(data_root, Path(request.workspace))
    fake_model.script(text_reply("hello"))
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)):
        await publish_run(redis, keys, request)
        events = await wait_terminal(redis, keys, request)
    assert events[-1].kind == "completed", events[-1].text
    seen = json.dumps(fake_model.requests[-1])
    assert INSIDE in seen
    assert ABOVE not in seen


async def test_a_workspace_without_docs_still_gets_the_global_instructions(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    (paths.codex_home(data_root) / "AGENTS.md").write_text(f"Always say {GLOBAL}.\n")
    request = new_request(data_root, "say hello")
    fake_model.script(text_reply("hello"))
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)):
        await publish_run(redis, keys, request)
        events = await wait_terminal(redis, keys, request)
    assert events[-1].kind == "completed", events[-1].text
    workspace = paths.session_workspace(data_root, request.session_key)
    assert not any(workspace.iterdir())  # nothing by a doc name: the cut applied
    assert GLOBAL in json.dumps(fake_model.requests[-1])


def _snapshots(codex_home: Path) -> list[str]:
    folder = codex_home / "shell_snapshots"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


async def test_a_sealed_thread_with_network_takes_no_shell_snapshot(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    """The runner switches Codex's shell snapshot off (a login shell and a dozen helpers per new
    thread); a sealed thread's own config must not switch it back on (sealing.sealed_config)."""
    fake_model.script(text_reply("hello"), text_reply("again"))
    async with running_runner(runner_settings(data_root, key_prefix, redis_url)) as runner:
        home = runner.supervisor("default").profile.codex_home
        first = new_request(data_root, "say hello", network_access=True)
        await publish_run(redis, keys, first)
        events = await wait_terminal(redis, keys, first)
        assert events[-1].kind == "completed", events[-1].text
        # a second turn of the loaded thread: Codex snapshots at thread start, beside the turn
        again = new_request(
            data_root,
            "again",
            session=first.coords.root_message_id,
            thread_id=events[-1].thread_id,
            network_access=True,
        )
        await publish_run(redis, keys, again)
        assert (await wait_terminal(redis, keys, again))[-1].kind == "completed"
        assert _snapshots(home) == []
