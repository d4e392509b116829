"""Auth profiles: one warm app-server per profile, each with its own CODEX_HOME and team links."""

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
from tests.fakes.codex_home import fake_config_toml, write_codex_home
from tests.fakes.fake_model import FakeModel

pytestmark = pytest.mark.codex

TEAM_KEY = "sk-team-b-000000000000000000000"


def _team_home(data_root: Path, base_url: str) -> Path:
    team = paths.team_home(data_root)
    (team / "skills").mkdir(parents=True)
    (team / "skills" / "deploy.md").write_text("# deploy skill\n")
    (team / "AGENTS.md").write_text("Team rule: answer briefly.\n")
    (team / "config.toml").write_text(fake_config_toml(base_url))
    return team


async def test_profiles_select_codex_home_auth_and_fail_clearly(
    tmp_path: Path, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    data_root = tmp_path / "data"
    with FakeModel(api_key=TEAM_KEY) as fake:
        team = _team_home(data_root, fake.base_url)
        write_codex_home(paths.codex_home(data_root), fake.base_url)  # default profile: the wrong key
        team_b = paths.codex_home(data_root, "team-b")
        team_b.mkdir(parents=True)
        (team_b / "auth.json").write_text(json.dumps({"OPENAI_API_KEY": TEAM_KEY}))

        async with running_runner(runner_settings(data_root, key_prefix, redis_url)) as runner:
            good = new_request(data_root, "hello from team b", auth_profile="team-b")
            wrong_key = new_request(data_root, "hello from default")
            no_key = new_request(data_root, "hello without auth", auth_profile="nobody")
            for request in (good, wrong_key, no_key):
                await publish_run(redis, keys, request)
            good_events = await wait_terminal(redis, keys, good)
            wrong_events = await wait_terminal(redis, keys, wrong_key)
            no_key_events = await wait_terminal(redis, keys, no_key)
            assert set(runner.supervisors) == {"default", "team-b", "nobody"}

        assert good_events[-1].kind == "completed", good_events[-1].text
        assert good_events[-1].text == "echo: hello from team b"
        for entry in ("AGENTS.md", "skills", "config.toml"):
            assert (team_b / entry).is_symlink() and (team_b / entry).resolve() == (team / entry).resolve()
        # the operator's own config.toml in the default CODEX_HOME is never replaced by a link
        assert not (paths.codex_home(data_root) / "config.toml").is_symlink()
        # the team AGENTS.md reached the model through the profile's CODEX_HOME
        assert "Team rule: answer briefly." in json.dumps(fake.requests[0]["input"])

        assert wrong_events[-1].kind == "failed" and "401" in (wrong_events[-1].text or "")
        assert no_key_events[-1].kind == "failed"
        assert "OPENAI_API_KEY" in (no_key_events[-1].text or "") or "401" in (no_key_events[-1].text or "")
