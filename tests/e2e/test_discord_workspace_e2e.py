"""Workspace mode end to end on Discord: every service as a process (`codex-broker up`), the fake
Discord driving the real discord.py, the fake model as a process, the real Codex. The home
channel's operator (reached without a mention) delegates a task; the task runs in a Discord
thread of its own, which a person can continue; its result wakes the operator, whose answer
lands in the home channel; the task session cannot call the delegation tools; `/codex threads`
lists the delegation with a button that links its thread. The model's turns are the Slack
workspace test's (tests/e2e/harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import harness
from tests.e2e.test_discord_e2e import World, until
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_model import FakeModelClient, text_reply, user_texts

pytestmark = [pytest.mark.e2e, pytest.mark.codex]

EPHEMERAL = 64


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, fake_model_process: FakeModelClient, workspace_root: Path
) -> Iterator[tuple[World, str]]:
    with FakeDiscord() as discord:
        home = discord.add_channel("workspace")
        env = {**discord.env, **harness.workspace_env("discord", home, workspace_root)}
        with harness.e2e_broker(tmp_path_factory, "discord-ws-e2e", fake_model_process, env) as broker:
            discord.wait_connected(timeout_s=60)
            yield World(broker=broker, discord=discord, model=fake_model_process), home


def task_threads(world: World, home: str) -> list[dict[str, Any]]:
    """The bot's top-level posts in the home channel that a thread was opened on."""
    return [
        m
        for m in world.discord.bot_messages(home)
        if "Delegation" in m["content"] and world.discord.thread(m["id"]) is not None
    ]


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for row in message.get("components") or [] for b in row.get("components") or []]


async def test_operator_delegates_a_task_into_a_discord_thread_and_is_woken_by_its_result(
    world: tuple[World, str], workspace_root: Path
) -> None:
    w, home = world
    w.model.script(*harness.delegation_turns())
    w.discord.user_message(home, "alice", "please delegate the report")  # no mention
    woken = harness.WORKSPACE_OPERATOR_ANSWER
    await until(lambda: woken in w.thread_text(home), "the operator's woken answer")

    (task,) = task_threads(w, home)
    thread = w.discord.thread(task["id"])
    assert thread is not None and thread["parent_id"] == home and "the report" in thread["name"]
    assert harness.WORKSPACE_TASK_ANSWER in w.thread_text(task["id"])  # the task answered in its thread
    home_text = w.thread_text(home)  # the operator talks top-level in the home channel
    assert "Delegated it." in home_text and "completed" in home_text  # its answer and a status line
    assert harness.WORKSPACE_TASK_ANSWER not in home_text  # only a status line, not the task's answer
    task_session = w.session(task["id"], conversation=home)  # the orchestrator's (home, thread)
    assert task_session["workspace"] == str((workspace_root / "proj").resolve())

    outputs = harness.task_tool_outputs(w.model)
    assert any("unsupported call: start_delegation" in o for o in outputs), outputs
    assert len(task_threads(w, home)) == 1  # the refused call opened nothing

    # a person continues the task in its Discord thread (no mention): the same task session
    w.model.script(
        text_reply("CHART ADDED", match="TASK-followup"),
        text_reply("Operator: the chart is in.", match="<delegation_results>"),
    )
    w.discord.user_message(task["id"], "bob", "TASK-followup: add a chart")
    await until(lambda: "CHART ADDED" in w.thread_text(task["id"]), "the task's follow-up answer")
    follow = w.model_saw("TASK-followup")[-1]
    assert any(harness.WORKSPACE_TASK in t for t in user_texts(follow))  # the same Codex thread
    assert w.session(task["id"], conversation=home)["thread_id"] == task_session["thread_id"]
    await until(lambda: "Operator: the chart is in." in w.thread_text(home), "the second wake's answer")


async def test_codex_threads_lists_delegations_with_a_button_that_links_the_thread(
    world: tuple[World, str],
) -> None:
    w, home = world
    (task,) = task_threads(w, home)  # the delegation of the test before this one
    listed = w.discord.slash(home, "alice", "threads")
    [answer] = await until(lambda: w.discord.interaction(listed)["followups"] or None, "/codex threads")
    assert answer["flags"] == EPHEMERAL and "Delegated sessions" in answer["content"]
    assert "the report — completed" in answer["content"]
    assert "Delegated sessions" not in w.thread_text(home)  # only the asker saw it
    [open_button] = buttons(answer)
    assert open_button["custom_id"].startswith("cb:open_thread:") and "the report" in open_button["label"]

    clicked = w.discord.click(home, answer["id"], open_button["custom_id"], "alice")
    [link] = await until(lambda: w.discord.interaction(clicked)["followups"] or None, "the Open answer")
    assert link["flags"] == EPHEMERAL and f"<#{task['id']}>" in link["content"]
