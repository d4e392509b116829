"""Workspace mode end to end on Slack: every service as a process (`codex-broker up`), the fake
Slack and the fake model as processes, the real Codex. The home channel's operator delegates a
task; the task runs in its own thread; its result wakes the operator, whose answer lands in the
home thread; the task session cannot call the delegation tools."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from codex_broker.libs import paths
from tests.e2e.harness import BrokerProcess
from tests.e2e.test_slack_e2e import USERS, World, fake_model_process, until
from tests.fakes.codex_home import FAKE_API_KEY, write_codex_home
from tests.fakes.fake_model import FakeModelClient, function_call_reply, text_reply, tool_outputs, user_texts
from tests.fakes.fake_slack_client import start_fake_slack_process

pytestmark = [pytest.mark.e2e, pytest.mark.codex]

HOME = "CWSHOME"
__all__ = ["fake_model_process"]  # the module-scoped fake model process fixture, shared


@pytest.fixture(scope="module")
def workspace_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("workspaces")
    (root / "proj").mkdir()
    return root


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, fake_model_process: FakeModelClient, workspace_root: Path
) -> Iterator[World]:
    from tests.conftest import REDIS_URL

    data_root = tmp_path_factory.mktemp("workspace-e2e") / "data"
    write_codex_home(paths.codex_home(data_root), fake_model_process.base_url)
    prefix = f"w{uuid.uuid4().hex[:10]}"
    with start_fake_slack_process() as slack:
        for user_id, name in USERS.items():
            slack.client.add_user(user_id, name.lower(), display_name=name)
        env = {
            **slack.env,
            "OPENAI_API_KEY": FAKE_API_KEY,
            "ALLOWED_USERS": "U1,U2",
            "WORKSPACE_HOME_CHANNELS": f"slack:{HOME}",
            "WORKSPACE_ROOT": str(workspace_root),
            # any message of the home channel, not only mentions and thread replies
            "SLACK_FORWARD_UNMENTIONED": "true",
        }
        broker = BrokerProcess(data_root=data_root, redis_url=REDIS_URL, key_prefix=prefix, env=env)
        with broker:
            slack.client.wait_connected(timeout_s=60)
            yield World(broker=broker, slack=slack, model=fake_model_process, bot=slack.info["bot_user_id"])
        client = Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)
        client.close()


def task_threads(world: World) -> list[dict[str, Any]]:
    return [
        m
        for m in world.slack.client.messages(channel=HOME, from_bot=True)
        if not m.get("thread_ts") and "Delegation" in m.get("text", "")
    ]


async def test_operator_delegates_a_task_and_is_woken_by_its_result(
    world: World, workspace_root: Path
) -> None:
    world.model.script(
        function_call_reply(
            "start_delegation",
            {"cwd": "proj", "prompt": "TASK-e2e: write the report", "title": "the report"},
            match="please delegate",
        ),
        text_reply("Delegated it.", match="please delegate"),
        function_call_reply("start_delegation", {"cwd": "proj", "prompt": "again"}, match="TASK-e2e"),
        text_reply("REPORT-E2E DONE", match="TASK-e2e"),
        text_reply("Operator: the report is done.", match="<delegation_results>"),
    )
    sent = world.slack.client.user_message(HOME, "U1", "please delegate the report")  # no mention
    await until(
        lambda: "Operator: the report is done." in world.thread_text(HOME, sent.ts),
        "the operator's woken answer",
    )
    (task,) = task_threads(world)
    assert "the report" in task["text"]
    assert "REPORT-E2E DONE" in world.thread_text(HOME, task["ts"])  # the task answered in its thread
    home = world.thread_text(HOME, sent.ts)
    assert "Delegated it." in home and "completed" in home  # the operator's answer and a status line
    assert "REPORT-E2E DONE" not in home.replace("Operator: the report is done.", "")  # only a status
    task_session = world.session(HOME, task["ts"])
    assert task_session["workspace"] == str((workspace_root / "proj").resolve())

    task_requests = [r for r in world.model.requests if any("TASK-e2e" in t for t in user_texts(r))]
    outputs = [o for r in task_requests for o in tool_outputs(r)]
    assert any("unsupported call: start_delegation" in o for o in outputs), outputs
    assert len(task_threads(world)) == 1  # the refused call opened nothing

    world.slack.client.user_message(HOME, "U1", "-threads", thread_ts=sent.ts)
    await until(lambda: "Delegated sessions" in world.thread_text(HOME, sent.ts), "the threads list")
    assert "the report — completed" in world.thread_text(HOME, sent.ts)
