"""Pure cores of ingress-discord: who may talk where, payload → InboundEvent, the 2,000-character
split with code fences kept whole, buttons as components, the live view's text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from codex_broker.ingress_discord.adapter import piece_nonce
from codex_broker.ingress_discord.files import CDN_HOSTS, upload_file
from codex_broker.ingress_discord.normalize import (
    Access,
    access_denial,
    action_from_custom_id,
    admin_only_refused,
    clean_text,
    command_event,
    component_event,
    ignore_reason,
    message_event,
    place_of,
    with_role_admin,
)
from codex_broker.ingress_discord.render import components, split_message, view_text
from codex_broker.libs.bus import DeadLetter
from codex_broker.libs.contracts import CHANNEL_SCOPE, Button, ProgressPayload, TaskItem, UploadPayload
from codex_broker.libs.ingress_kit.files import url_allowed
from codex_broker.libs.ingress_kit.platform import PlatformError

BOT = "900"


def message(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "50",
        "channel_id": "10",
        "guild_id": "1",
        "type": 0,
        "author": {"id": "7", "username": "alice", "global_name": "Alice"},
        "member": {"roles": ["r1"]},
        "content": "hello",
        "mentions": [],
    }
    return {**base, **fields}


def test_ignored_messages() -> None:
    assert ignore_reason(message(), BOT) is None
    assert ignore_reason(message(author={"id": BOT}), BOT) == "self"
    assert ignore_reason(message(author={"id": "8", "bot": True}), BOT) == "bot"
    assert ignore_reason(message(type=18), BOT) == "system"  # a thread-created notice
    assert ignore_reason(message(author={}), BOT) == "malformed"


def test_a_mention_in_a_channel_opens_a_thread_on_that_message() -> None:
    mention = message(content=f"<@{BOT}> fix it", mentions=[{"id": BOT}])
    place = place_of(mention, bot_id=BOT, our_thread=None, thread_parent=None)
    assert place is not None and place.opens_thread
    assert (place.session_channel, place.parent_channel) == ("50", "10")
    event = message_event(mention, place, BOT)
    assert (event.conversation_id, event.root_message_id, event.message_id) == ("50", "50", "50")
    assert event.text == "fix it" and event.is_mention and not event.is_direct
    assert event.event_id == "discord:msg:50" and event.platform == "discord"


def test_thread_replies_dms_and_foreign_threads() -> None:
    reply = message(id="51", channel_id="50")
    place = place_of(reply, bot_id=BOT, our_thread={"parent": "10"}, thread_parent=None)
    assert place is not None and not place.opens_thread and place.session_channel == "50"
    assert message_event(reply, place, BOT).root_message_id == "50"
    assert place_of(message(), bot_id=BOT, our_thread=None, thread_parent=None) is None  # no mention
    dm = message(guild_id=None, member=None, channel_id="77")
    place = place_of(dm, bot_id=BOT, our_thread=None, thread_parent=None)
    assert place is not None and message_event(dm, place, BOT).is_direct
    inside = message(channel_id="60", content=f"<@!{BOT}> look")
    place = place_of(inside, bot_id=BOT, our_thread=None, thread_parent="10")
    assert place is not None and place.session_channel == "60" and place.parent_channel == "10"


def test_allow_lists_and_admin_roles() -> None:
    access = Access(guilds=frozenset({"1"}), channels=frozenset({"10"}), roles=frozenset({"r1"}))
    assert access_denial(message(), access, "10") is None
    assert access_denial(message(guild_id="2"), access, "10") == "guild"
    assert access_denial(message(), access, "11") == "channel"
    assert access_denial(message(member={"roles": ["r2"]}), access, "10") == "role"
    assert access_denial(message(guild_id=None), Access(dms_allowed=False), "10") == "dm"
    admins = Access(roles=frozenset({"r1"}), admin_roles=frozenset({"boss"}))
    assert access_denial(message(member={"roles": ["boss"]}), admins, "10") is None  # admins pass
    assert admin_only_refused("-cd /tmp", message(), admins)
    assert not admin_only_refused("-cd /tmp", message(member={"roles": ["boss"]}), admins)
    assert not admin_only_refused("-cd /tmp", message(), Access())  # no admin roles: the orchestrator decides


def test_an_admin_role_makes_the_actor_an_admin_to_the_orchestrator() -> None:
    admins = Access(admin_roles=frozenset({"boss"}))
    place = place_of(message(channel_id="10"), bot_id=BOT, our_thread={"parent": "1"}, thread_parent=None)
    assert place is not None
    boss = message(member={"roles": ["boss"]})
    assert with_role_admin(message_event(boss, place, BOT), boss, admins).actor.platform_admin
    plain = message_event(message(), place, BOT)
    assert not with_role_admin(plain, message(), admins).actor.platform_admin
    assert "platform_admin" not in plain.model_dump_json()  # older consumers still decode it


def test_clean_text_keeps_other_mentions() -> None:
    assert clean_text(f"<@{BOT}> ask <@123> please", BOT) == "ask <@123> please"


def test_buttons_and_commands() -> None:
    assert action_from_custom_id("cb:approve:run1:req9") is not None
    approve = action_from_custom_id("cb:approve:run1:req9")
    assert approve is not None and (approve.run_id, approve.request_id) == ("run1", "req9")
    assert action_from_custom_id("someone-else") is None
    retry = action_from_custom_id("cb:retry:run7")  # a lost turn's Retry button
    assert retry is not None and (retry.action, retry.run_id) == ("retry", "run7")
    click = {
        "id": "5",
        "type": 3,
        "channel_id": "50",
        "guild_id": "1",
        "token": "t",
        "member": {"user": {"id": "7", "username": "alice"}, "roles": []},
        "data": {"custom_id": "cb:stop:run1"},
        "message": {"id": "61"},
    }
    event = component_event(click)
    assert event is not None and event.kind == "action" and event.action is not None
    assert (event.action.action, event.action.run_id, event.action.message_id) == ("stop", "run1", "61")
    slash = {**click, "type": 2, "data": {"name": "codex", "options": [{"name": "usage", "type": 1}]}}
    event = command_event(slash, coords=None)
    assert event is not None and event.text == "/usage" and event.reply_ephemeral
    assert event.root_message_id == CHANNEL_SCOPE
    inside = command_event(slash, coords=("50", "50"))
    assert inside is not None and inside.root_message_id == "50"


@pytest.mark.parametrize("size", [10, 1999, 2000, 2001, 4500, 12_000])
def test_split_keeps_every_character_and_every_fence_balanced(size: int) -> None:
    code = "```python\n" + "\n".join(f"print({i})" for i in range(size // 20)) + "\n```"
    text = ("word " * (size // 10)).strip() + "\n\n" + code + "\ntail"
    pieces = split_message(text)
    assert all(len(p) <= 2000 for p in pieces)
    assert all(p.count("```") % 2 == 0 for p in pieces)
    body = [line for p in pieces for line in p.split("\n") if not line.startswith("```")]
    assert [w for line in body for w in line.split()] == [
        w for line in text.split("\n") if not line.startswith("```") for w in line.split()
    ]


def test_a_fence_that_fits_moves_whole_to_the_next_piece() -> None:
    code = "```\n" + "x\n" * 300 + "```"
    pieces = split_message("a" * 1500 + "\n" + code)
    assert pieces[0] == "a" * 1500 and pieces[1] == code


def test_piece_nonces_differ_per_post_and_piece_and_fit_discord() -> None:
    nonces = {piece_nonce(parts, i) for parts in ("view:p1", "answer:p1") for i in range(3)}
    assert len(nonces) == 6 and all(len(n) <= 25 for n in nonces)
    assert piece_nonce("answer:p1", 0) == piece_nonce("answer:p1", 0)


def test_components_and_view() -> None:
    rows = components([Button(action="stop", label="Stop", value="r1", style="danger")])
    assert rows == [
        {"type": 1, "components": [{"type": 2, "style": 4, "label": "Stop", "custom_id": "cb:stop:r1"}]}
    ]
    live = ProgressPayload(
        progress_id="p",
        seq=1,
        phase="update",
        activity="Running tests",
        tasks=[TaskItem(id="1", title="pytest", status="complete")],
        answer_text="x" * 5000,
    )
    text = view_text(live)
    assert len(text) <= 2000 and text.startswith("**Running tests**") and "✅ pytest" in text
    done = ProgressPayload(progress_id="p", seq=2, phase="finish", outcome="interrupted", final_text="a")
    assert view_text(done) == "**Stopped**"


def test_uploads_over_discords_limit_are_refused_for_good(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "big.bin").write_bytes(b"x" * 2048)
    with pytest.raises(PlatformError) as refused:
        upload_file(UploadPayload(path=str(outbox / "big.bin")), [outbox], 1024)
    assert refused.value.permanent and refused.value.error == "file_too_large"
    with pytest.raises(DeadLetter):
        upload_file(UploadPayload(path="/etc/passwd"), [outbox], 1024)
    sent = upload_file(UploadPayload(path=str(outbox / "big.bin"), filename="b.bin"), [outbox], 4096)
    assert sent.filename == "b.bin"
    assert url_allowed("https://cdn.discordapp.com/attachments/1/2/a.png", CDN_HOSTS)
    assert not url_allowed("https://evil.example/a.png", CDN_HOSTS)
