"""`workspace.route` on real Redis: which home-channel events join the operator's home thread,
which may open it, and which keep their own scope (Discord's shapes: a top-level message is its
own root; `/codex` and clicks in the home channel come at the channel scope)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs.contracts import CHANNEL_SCOPE, ActionPayload, Actor, InboundEvent
from codex_broker.libs.keys import session_key_of
from codex_broker.orchestrator import workspace
from codex_broker.orchestrator.config import Settings
from codex_broker.orchestrator.core import Core

HOME = "4242"


def event(
    root: str, *, kind: str = "message", message_id: str = "", bot: bool = False, **extra: Any
) -> InboundEvent:
    return InboundEvent(
        event_id=f"e-{root}-{kind}-{message_id}",
        platform="discord",
        conversation_id=extra.pop("conversation", HOME),
        root_message_id=root,
        message_id=message_id,
        kind=kind,  # type: ignore[arg-type]
        actor=Actor(id="7", display_name="Alice", is_bot=bot),
        text="/threads" if kind == "message" else "",
        action=ActionPayload(action="open_thread", value="d1") if kind == "action" else None,
        **extra,
    )


async def test_only_a_message_opens_the_home_thread_and_channel_scope_events_join_it(
    redis: Redis, settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    (tmp_path / "ws").mkdir()
    settings = settings_for(workspace_home_channels=f"discord:{HOME}", workspace_root=str(tmp_path / "ws"))
    core = Core.create(settings, redis)
    home_key = core.keys.workspace_home("discord", HOME)

    command = event(CHANNEL_SCOPE, reply_ephemeral=True)  # `/codex threads` before anyone spoke
    click = event(CHANNEL_SCOPE, kind="action", message_id="61")
    assert await workspace.route(core, command) == command
    assert await workspace.route(core, click) == click
    assert await redis.get(home_key) is None  # neither opened the home thread

    first = await workspace.route(core, event("100", message_id="100"))  # a top-level message
    assert first.root_message_id == "100" and first.is_mention
    later = await workspace.route(core, event("101", message_id="101", is_mention=False))
    assert later.root_message_id == "100" and later.is_mention
    joined = await workspace.route(core, command)
    assert joined.root_message_id == "100" and joined.reply_ephemeral
    clicked = await workspace.route(core, click)
    assert clicked.root_message_id == "100" and not clicked.is_mention

    task_root = "555"
    await redis.set(
        core.keys.workspace_task(session_key_of("discord", HOME, task_root)),
        json.dumps({"operator": session_key_of("discord", HOME, "100"), "id": "d1"}),
    )
    in_task = event(task_root, message_id="556")
    assert await workspace.route(core, in_task) == in_task  # a task thread continues its task
    in_thread_click = event(task_root, kind="action", message_id="557")
    assert await workspace.route(core, in_thread_click) == in_thread_click  # buttons keep their thread
    echo = event(CHANNEL_SCOPE, message_id="558", bot=True)
    assert await workspace.route(core, echo) == echo  # our own posts never claim anything
    elsewhere = event("9", message_id="9", conversation="not-a-home")
    assert await workspace.route(core, elsewhere) == elsewhere
    assert (await redis.get(home_key)) == b"100"
