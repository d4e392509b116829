"""Workspace mode end to end on Slack: every service as a process (`codex-broker up`), the fake
Slack and the fake model as processes, the real Codex. The home channel's operator delegates a
task; the task runs in its own thread; its result wakes the operator, whose answer lands in the
home thread; the task session cannot call the delegation tools."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import harness
from tests.e2e.test_slack_e2e import USERS, World, until
from tests.fakes.fake_model import FakeModelClient
from tests.fakes.fake_slack_client import start_fake_slack_process

pytestmark = [pytest.mark.e2e, pytest.mark.codex]

HOME = "CWSHOME"


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, fake_model_process: FakeModelClient, workspace_root: Path
) -> Iterator[World]:
    with start_fake_slack_process() as slack:
        for user_id, name in USERS.items():
            slack.client.add_user(user_id, name.lower(), display_name=name)
        env = {
            **slack.env,
            **harness.workspace_env("slack", HOME, workspace_root),
            "ALLOWED_USERS": "U1,U2",
            # any message of the home channel, not only mentions and thread replies
            "SLACK_FORWARD_UNMENTIONED": "true",
        }
        with harness.e2e_broker(tmp_path_factory, "workspace-e2e", fake_model_process, env) as broker:
            slack.client.wait_connected(timeout_s=60)
            yield World(broker=broker, slack=slack, model=fake_model_process, bot=slack.info["bot_user_id"])


def task_threads(world: World) -> list[dict[str, Any]]:
    return [
        m
        for m in world.slack.client.messages(channel=HOME, from_bot=True)
        if not m.get("thread_ts") and "Delegation" in m.get("text", "")
    ]


async def test_operator_delegates_a_task_and_is_woken_by_its_result(
    world: World, workspace_root: Path
) -> None:
    world.model.script(*harness.delegation_turns())
    sent = world.slack.client.user_message(HOME, "U1", "please delegate the report")  # no mention
    await until(
        lambda: harness.WORKSPACE_OPERATOR_ANSWER in world.thread_text(HOME, sent.ts),
        "the operator's woken answer",
    )
    (task,) = task_threads(world)
    assert "the report" in task["text"]
    assert harness.WORKSPACE_TASK_ANSWER in world.thread_text(HOME, task["ts"])  # answered in its thread
    home = world.thread_text(HOME, sent.ts)
    assert "Delegated it." in home and "completed" in home  # the operator's answer and a status line
    assert harness.WORKSPACE_TASK_ANSWER not in home  # only a status line, not the task's answer
    task_session = world.session(HOME, task["ts"])
    assert task_session["workspace"] == str((workspace_root / "proj").resolve())

    outputs = harness.task_tool_outputs(world.model)
    assert any("unsupported call: start_delegation" in o for o in outputs), outputs
    assert len(task_threads(world)) == 1  # the refused call opened nothing

    world.slack.client.user_message(HOME, "U1", "-threads", thread_ts=sent.ts)
    await until(lambda: "Delegated sessions" in world.thread_text(HOME, sent.ts), "the threads list")
    assert "the report — completed" in world.thread_text(HOME, sent.ts)
    assert "cb_open_thread" in world.thread_text(HOME, sent.ts)  # an Open button per delegation

    # the Open button answers the presser alone with Slack's own permalink to the task thread
    [listing] = [
        m
        for m in world.slack.client.messages(channel=HOME, thread_ts=sent.ts, from_bot=True)
        if "cb_open_thread" in str(m.get("blocks"))
    ]
    [button] = [
        element
        for block in listing["blocks"]
        if block.get("type") == "actions"
        for element in block["elements"]
        if element["action_id"] == "cb_open_thread"
    ]
    world.slack.client.click_button(
        HOME, "U2", listing["ts"], "cb_open_thread", button["value"], thread_ts=sent.ts
    )
    permalink = f"https://fake.slack.com/archives/{HOME}/p{task['ts'].replace('.', '')}"

    def open_answer() -> dict[str, Any] | None:
        return next((e for e in world.slack.client.ephemerals() if permalink in str(e)), None)

    answer = await until(open_answer, "the Open answer with the thread's permalink")
    assert answer["user"] == "U2" and "Open the thread" in answer["text"]
    assert "Delegation `" in answer["text"]  # the thread is named too
