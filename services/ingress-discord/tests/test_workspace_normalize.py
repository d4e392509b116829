"""Workspace mode's pure parts in ingress-discord: home channels (every message forwarded as
the channel's own, no task thread), a task thread's (home, thread) coordinates, commands and
clicks at a home channel's scope, the `threads` subcommand and its Open button, and the setting
shared with the orchestrator."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from codex_broker.ingress_discord.config import Settings
from codex_broker.ingress_discord.normalize import (
    Access,
    access_denial,
    action_from_custom_id,
    command_definition,
    command_event,
    component_event,
    interaction_coords,
    message_event,
    place_of,
    session_coords,
    subcommand_of,
)
from codex_broker.ingress_discord.render import components, plain_title
from codex_broker.libs.contracts import CHANNEL_SCOPE, Button
from codex_broker.libs.workspace_homes import homes_of

BOT = "900"
HOME = "30"
HOMES = frozenset({HOME})


def message(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "70",
        "channel_id": HOME,
        "guild_id": "1",
        "type": 0,
        "author": {"id": "7", "username": "alice"},
        "content": "please delegate the report",
        "mentions": [],
    }
    return {**base, **fields}


def interaction(kind: int, channel: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "5",
        "type": kind,
        "channel_id": channel,
        "guild_id": "1",
        "token": "t",
        "member": {"user": {"id": "7", "username": "alice"}, "roles": []},
        "data": data,
        "message": {"id": "61"},
    }


@pytest.mark.parametrize("mentioned", [False, True])
def test_every_home_message_is_the_channels_own_and_opens_no_thread(mentioned: bool) -> None:
    content = f"<@{BOT}> please delegate" if mentioned else "please delegate"
    sent = message(content=content, mentions=[{"id": BOT}] if mentioned else [])
    place = place_of(sent, bot_id=BOT, our_thread=None, thread_parent=None, homes=HOMES)
    assert place is not None and not place.opens_thread
    event = message_event(sent, place, BOT)
    assert (event.conversation_id, event.root_message_id, event.message_id) == (HOME, "70", "70")
    assert event.text == "please delegate"


def test_an_unmentioned_message_elsewhere_is_still_not_ours() -> None:
    elsewhere = message(channel_id="31")
    assert place_of(elsewhere, bot_id=BOT, our_thread=None, thread_parent=None, homes=HOMES) is None
    assert place_of(message(), bot_id=BOT, our_thread=None, thread_parent=None) is None  # no homes set


def test_a_home_channels_task_thread_keeps_the_orchestrators_coordinates() -> None:
    record = {"parent": HOME, "home": HOME, "opens_thread": True, "created": True}
    assert session_coords("88", record) == (HOME, "88")
    assert session_coords("88", {"parent": "10"}) == ("88", "88")  # a mention's thread: its own
    typed = message(id="89", channel_id="88", content="add a chart")
    place = place_of(typed, bot_id=BOT, our_thread=record, thread_parent=None, homes=HOMES)
    assert place is not None and place.parent_channel == HOME and place.session_channel == "88"
    event = message_event(typed, place, BOT)
    assert (event.conversation_id, event.root_message_id) == (HOME, "88") and not event.is_mention


def test_a_channel_that_is_a_home_no_more_takes_mentions_only() -> None:
    former = {"parent": HOME, "home_channel": True}
    assert place_of(message(), bot_id=BOT, our_thread=former, thread_parent=None) is None
    mention = message(content=f"<@{BOT}> hi", mentions=[{"id": BOT}])
    place = place_of(mention, bot_id=BOT, our_thread=former, thread_parent=None)
    assert place is not None and place.opens_thread
    assert interaction_coords(HOME, former, frozenset()) is None


def test_a_home_channel_passes_the_channel_allow_list() -> None:
    access = Access(channels=frozenset({"10"}), homes=HOMES)
    assert access_denial(message(), access, HOME) is None
    assert access_denial(message(), access, "31") == "channel"


def test_commands_and_clicks_in_a_home_channel_are_at_its_scope() -> None:
    assert interaction_coords(HOME, None, HOMES) == (HOME, CHANNEL_SCOPE)
    assert interaction_coords("88", {"parent": HOME, "home": HOME}, HOMES) == (HOME, "88")
    assert interaction_coords("31", None, HOMES) is None
    slash = interaction(2, HOME, {"name": "codex", "options": [{"name": "threads", "type": 1}]})
    assert subcommand_of(slash) == "threads"
    event = command_event(slash, coords=interaction_coords(HOME, None, HOMES))
    assert event is not None and event.text == "/threads" and event.reply_ephemeral
    assert (event.conversation_id, event.root_message_id) == (HOME, CHANNEL_SCOPE)
    click = interaction(3, HOME, {"custom_id": "cb:open_thread:d1a2"})
    pressed = component_event(click, interaction_coords(HOME, None, HOMES))
    assert pressed is not None and pressed.action is not None and pressed.reply_ephemeral
    assert (pressed.action.action, pressed.action.value) == ("open_thread", "d1a2")
    assert pressed.root_message_id == CHANNEL_SCOPE
    stop = component_event(interaction(3, "88", {"custom_id": "cb:stop:run1"}), (HOME, "88"))
    assert stop is not None and not stop.reply_ephemeral and stop.root_message_id == "88"


def test_the_threads_subcommand_and_its_open_button() -> None:
    names = [option["name"] for option in command_definition()["options"]]
    assert names == ["status", "new", "stop", "usage", "help", "threads"]
    [row] = components([Button(action="open_thread", label="d1 · the report", value="d1")])
    [button] = row["components"]
    assert button["custom_id"] == "cb:open_thread:d1"
    parsed = action_from_custom_id(button["custom_id"])
    assert parsed is not None and (parsed.action, parsed.value) == ("open_thread", "d1")


def test_a_thread_name_drops_markdown_marks() -> None:
    assert plain_title("🧵 *Delegation `d1`*: the _big_ report\nmore") == "🧵 Delegation d1: the big report"


def test_the_home_channels_setting_is_the_orchestrators() -> None:
    settings = Settings(workspace_home_channels="slack:C1, discord:30,discord:31")  # type: ignore[arg-type]
    assert settings.home_channels == frozenset({"30", "31"})
    assert homes_of("slack", ["slack:C1", "discord:30"]) == frozenset({"C1"})
    with pytest.raises(ValidationError, match="platform"):
        Settings(workspace_home_channels="discord")  # type: ignore[arg-type]
