"""Issue 20 items 3 and 4 through the real runner and the real Codex binary against the fake
model: a channel's default repo is cloned into the repos cache on first use and is the cwd
Codex starts the thread in, the channel's model is the model the fake endpoint is asked for, and
the command Codex ran is on the audit trail once, with its exit code."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from redis.asyncio import Redis

from codex_broker.libs import audit, channel_defaults, paths
from codex_broker.libs.keys import Keys
from tests.codex_runner.harness import runner_settings
from tests.fakes.fake_model import FakeModel, text_reply, tool_call_reply, tool_outputs
from tests.orchestrator.harness import Driver, make_settings, message
from tests.orchestrator.test_with_runner import runner_with_heartbeat

pytestmark = pytest.mark.codex

MARKER = "channel-default-repo-marker-41"


def upstream_repo(root: Path) -> Path:
    """A git repository on local disk standing in for the team's remote."""
    repo = root / "upstream" / "app"
    repo.mkdir(parents=True)
    (repo / "MARKER.txt").write_text(MARKER + "\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "MARKER.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    return repo


async def test_channel_default_repo_and_model_reach_thread_start(
    driver: Driver,
    fake_model: FakeModel,
    codex_data_root: Path,
    tmp_path: Path,
    redis: Redis,
    keys: Keys,
    key_prefix: str,
    redis_url: str,
) -> None:
    upstream = upstream_repo(tmp_path)
    defaults = channel_defaults.ChannelDefaults(
        repo="team/app", model="gpt-channel-default", repos={"team/app": str(upstream)}
    )
    await channel_defaults.save(redis, keys, "slack", "C1", defaults)
    fake_model.script(
        tool_call_reply("cat MARKER.txt", match="show the marker"),
        text_reply("The marker is there."),
    )
    await driver.start(make_settings(key_prefix, redis_url, codex_data_root))
    async with runner_with_heartbeat(runner_settings(codex_data_root, key_prefix, redis_url)):
        await driver.inbound(message("show the marker", conversation="C1"))
        final = await driver.wait_outbound(lambda a: a.action_id.startswith("final:"), timeout_s=90)
    assert final.payload.outcome == "completed"  # type: ignore[union-attr]
    clone = paths.repos_root(codex_data_root) / "team" / "app"
    assert (clone / ".git").is_dir() and (clone / "MARKER.txt").read_text().strip() == MARKER
    assert fake_model.requests[0]["model"] == "gpt-channel-default"
    # the command ran in the clone: its output is the marker the model got back
    assert any(MARKER in out for body in fake_model.requests for out in tool_outputs(body))
    commands = await audit.search(redis, keys, audit.Query(kind="command"))
    [command] = commands
    assert "cat MARKER.txt" in command.summary and command.exit_code == 0 and command.actor == "codex"
    [turn] = await audit.search(redis, keys, audit.Query(kind="turn"))
    assert turn.actor == "U1" and turn.details["workspace"] == str(clone)
    assert MARKER not in repr(await redis.xrange(keys.audit_stream))  # the output is not recorded
