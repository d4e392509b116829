"""Driving a red-team probe through the real Codex: the fake model asks for one `exec_command`
that runs every probe in a fresh session, through the codex-runner and Codex's own sandbox,
exactly as a prompt-injected turn would; the output comes back to the model and is read there.
A marker line per probe keeps the assertions independent of how Codex formats the output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs.keys import Keys
from tests.codex_runner.harness import (
    new_request,
    publish_run,
    runner_settings,
    running_runner,
    wait_terminal,
)
from tests.fakes.fake_model import FakeModel, text_reply, tool_call_reply, tool_outputs


def probe(name: str, command: str) -> str:
    return f"echo '<<{name}:'\"$( {command} 2>&1 )\"'>>'"


async def run_session_probes(
    data_root: Path,
    fake_model: FakeModel,
    redis: Redis,
    keys: Keys,
    key_prefix: str,
    redis_url: str,
    probes: dict[str, str],
    *,
    request_fields: dict[str, Any] | None = None,
    **settings: object,
) -> str:
    """Run every probe in one command of a fresh session; the command's output as the model saw it.
    `request_fields` go into the RunRequest (e.g. network_access, which the orchestrator sets)."""
    command = "; ".join(probe(name, cmd) for name, cmd in probes.items())
    fake_model.script(tool_call_reply(command), text_reply("probed"))
    async with running_runner(runner_settings(data_root, key_prefix, redis_url, **settings)):
        request = new_request(data_root, "run the probes", **(request_fields or {}))
        await publish_run(redis, keys, request)
        events = await wait_terminal(redis, keys, request)
    assert events[-1].kind == "completed", events[-1].text
    return "\n".join(tool_outputs(fake_model.requests[-1]))
