"""Outbound: OutboundActions from Redis executed with the real lark-oapi REST client on the fake."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from pathlib import Path
from typing import Any

from codex_broker.libs.contracts import (
    Attachment,
    Button,
    DownloadPayload,
    Form,
    FormField,
    FormOption,
    HistoryPayload,
    OpenViewPayload,
    OutboundAction,
    PostPayload,
    ProgressPayload,
    StatusPayload,
    TaskItem,
    UploadPayload,
)
from tests.helpers import wait_for
from tests.ingress_feishu.conftest import RunningIngress


def action(payload: Any, *, chat: str = "oc_g", root: str, action_id: str | None = None) -> OutboundAction:
    extra = {"action_id": action_id} if action_id else {}
    return OutboundAction(
        platform="feishu", conversation_id=chat, root_message_id=root, payload=payload, **extra
    )


def snapshot(seq: int, phase: str, answer: str = "", **kw: Any) -> ProgressPayload:
    return ProgressPayload(
        progress_id="run-1", run_id="run-1", seq=seq, phase=phase, answer_text=answer, **kw
    )  # type: ignore[arg-type]


def post_text(message: dict[str, Any]) -> str:
    content = message["content"]
    if message["msg_type"] == "text":
        return content["text"]
    return "".join(el.get("text", "") for para in content["zh_cn"]["content"] for el in para)


async def test_post_replies_in_the_thread_and_splits_long_markdown(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress(connect=False)
    root = ingress.fake.push_message(chat_id="oc_g", text="hi", mention_bot=True)["message_id"]
    text = "\n\n".join(f"paragraph {i} " + "word " * 150 for i in range(12))  # ~9,000 chars

    result = await ingress.request(action(PostPayload(text=text), root=root))

    assert result.ok and len(result.message_ids) == 3
    sent = ingress.fake.bot_messages("oc_g")
    assert [m["message_id"] for m in sent] == result.message_ids
    assert all(m["msg_type"] == "post" and m["root_id"] == root and m.get("thread_id") for m in sent)
    assert all(len(post_text(m)) <= 4000 for m in sent)
    assert "".join(post_text(m) for m in sent).replace("\n", "") == text.replace("\n", "")


async def test_private_chat_posts_to_the_chat(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress(connect=False)
    result = await ingress.request(action(PostPayload(text="hello"), chat="oc_dm", root="oc_dm"))
    assert result.ok
    [message] = ingress.fake.bot_messages("oc_dm")
    assert "root_id" not in message
    assert ingress.fake.calls("message.create") and not ingress.fake.calls("message.reply")


async def test_same_action_twice_posts_once(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress(connect=False)
    root = ingress.fake.push_message(chat_id="oc_g", text="hi")["message_id"]
    first = await ingress.request(action(PostPayload(text="only once"), root=root, action_id="a-1"))
    second = await ingress.request(action(PostPayload(text="only once"), root=root, action_id="a-1"))
    assert first.message_ids == second.message_ids
    assert len(ingress.fake.bot_messages("oc_g")) == 1


async def test_streaming_card_updates_in_order_then_final_answer(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress(connect=False)
    fake = ingress.fake
    root = fake.push_message(chat_id="oc_g", text="go", mention_bot=True)["message_id"]
    await ingress.publish(action(snapshot(0, "start", activity="Thinking"), root=root))
    answer = ""
    for seq in range(1, 9):
        answer += f"part {seq}. "
        tasks = [TaskItem(id="t1", title="pytest -q", status="complete" if seq > 4 else "in_progress")]
        await ingress.publish(
            action(snapshot(seq, "update", answer, activity="Running", tasks=tasks), root=root)
        )
        await asyncio.sleep(0.15)  # a model streaming: some snapshots coalesce, some go out
    final = "The fix is in.\n\n" + "detail " * 1200  # > 4,000 chars: continues in messages
    await ingress.publish(
        action(
            snapshot(9, "finish", answer, outcome="completed", final_text=final, show_stop=False),
            root=root,
            action_id="final:run-card",
        )
    )

    def finished() -> dict[str, Any] | None:
        cards = fake.cards()
        done = cards and cards[0]["history"] and cards[0]["history"][-1]["op"] == "update"
        return cards[0] if done else None

    card = await wait_for(finished, timeout_s=20, what="the finished card")
    sequences = [step["sequence"] for step in card["history"]]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    contents = [s["content"] for s in card["history"] if s["op"] == "content" and s["element_id"] == "answer"]
    assert contents and all(len(a) <= len(b) for a, b in itertools.pairwise(contents))  # typewriter
    assert card["elements"]["answer"].startswith("The fix is in.")
    assert "stop" not in card["elements"]  # the Stop button is gone
    assert card["message_id"] is not None and fake.message(card["message_id"])["root_id"] == root
    overflow = await wait_for(
        lambda: [m for m in fake.bot_messages("oc_g") if m["msg_type"] == "post"][1:] or None, what="overflow"
    )
    assert len(overflow) == 1  # 8,400 chars: one chunk in the card, two as messages
    # the finished card marks its action done: the orchestrator orders a thread's answers by it
    marker = await wait_for(
        lambda: ingress.redis.get(ingress.keys.idempotency("outbound", "final:run-card")),
        what="done marker of the answer",
    )
    assert marker.startswith(b"done:")
    # stale snapshots after the finish change nothing
    await ingress.publish(action(snapshot(5, "update", "stale"), root=root))
    stop_values = [
        b["behaviors"][0]["value"]
        for step in [fake.cards()[0]["card"]]
        for b in step["body"]["elements"]
        if b.get("tag") == "button"
    ]
    assert stop_values == []


async def test_stop_button_value_carries_the_thread(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress(connect=False)
    root = ingress.fake.push_message(chat_id="oc_g", text="go")["message_id"]
    await ingress.publish(action(snapshot(0, "start", activity="Thinking"), root=root))
    card = await wait_for(lambda: (ingress.fake.cards() or [None])[0], what="a card")
    [button] = [e for e in card["card"]["body"]["elements"] if e.get("tag") == "button"]
    assert button["behaviors"][0]["value"] == {"cb": "stop", "v": "run-1", "root": root, "conv": "oc_g"}


async def test_cardkit_refused_falls_back_to_a_patched_card(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress(connect=False)
    fake = ingress.fake
    fake.fail("cardkit.create", 99991672, times=-1, msg="app has no cardkit scope")
    root = fake.push_message(chat_id="oc_g", text="go")["message_id"]
    await ingress.publish(action(snapshot(0, "start", activity="Thinking"), root=root))
    await ingress.publish(action(snapshot(1, "update", "partial", activity="Running"), root=root))
    await ingress.publish(
        action(snapshot(2, "finish", "partial", outcome="completed", final_text="All done."), root=root)
    )

    def final_post() -> list[dict[str, Any]] | None:
        posts = [m for m in fake.bot_messages("oc_g") if m["msg_type"] == "post"]
        return posts or None

    [answer] = await wait_for(final_post, timeout_s=20, what="the answer")
    assert post_text(answer) == "All done."
    [card_message] = [m for m in fake.bot_messages("oc_g") if m["msg_type"] == "interactive"]
    elements = card_message["content"]["body"]["elements"]
    assert not any(e.get("tag") == "button" for e in elements)  # finalized without Stop
    assert card_message.get("patches")
    assert (
        await ingress.redis.get(ingress.keys.platform_capability("feishu", fake.app_id, "cardkit")) == b"no"
    )


async def test_cards_refused_fall_back_to_plain_answer(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress(connect=False)
    fake = ingress.fake
    fake.fail("cardkit.create", 99991672, times=-1)
    root = fake.push_message(chat_id="oc_g", text="go")["message_id"]
    # interactive replies refused; the final answer still arrives
    fake.fail("message.reply", 230099, times=1, msg="card content invalid")
    await ingress.publish(action(snapshot(0, "start", activity="Thinking"), root=root))
    await ingress.publish(
        action(snapshot(1, "finish", "x", outcome="completed", final_text="Plain answer"), root=root)
    )
    [answer] = await wait_for(lambda: fake.bot_messages("oc_g") or None, timeout_s=20, what="the answer")
    assert post_text(answer) == "Plain answer"


async def test_rate_limit_is_retried(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress(connect=False)
    root = ingress.fake.push_message(chat_id="oc_g", text="go")["message_id"]
    ingress.fake.fail("message.reply", 99991400, status=429, times=2, msg="request trigger frequency limit")
    result = await ingress.request(action(PostPayload(text="eventually"), root=root))
    assert result.ok
    assert len(ingress.fake.calls("message.reply")) == 3
    assert len(ingress.fake.bot_messages("oc_g")) == 1


async def test_permanent_error_is_dead_lettered_and_reported_in_the_thread(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress(connect=False)
    root = ingress.fake.push_message(chat_id="oc_g", text="go")["message_id"]
    ingress.fake.fail("message.reply", 230002, times=1, msg="bot is not in the chat")
    result = await ingress.request(action(PostPayload(text="lost", format="text"), root=root))
    assert not result.ok and result.error and "230002" in result.error
    [dead] = await wait_for(ingress.dead_letters, what="a dead letter")
    assert b"230002" in dead[b"reason"]
    [notice] = ingress.fake.bot_messages("oc_g")
    assert "Could not deliver" in notice["content"]["text"]
    # the loop lives on
    assert (await ingress.request(action(PostPayload(text="next"), root=root))).ok


async def test_buttons_post_is_a_card(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress(connect=False)
    root = ingress.fake.push_message(chat_id="oc_g", text="go")["message_id"]
    buttons = [
        Button(action="approve", label="Approve", value="run-1:req-1", style="primary"),
        Button(action="deny", label="Deny", value="run-1:req-1", style="danger"),
    ]
    result = await ingress.request(
        action(PostPayload(text="Run `rm -rf build`?", buttons=buttons), root=root)
    )
    [card] = ingress.fake.bot_messages("oc_g")
    assert result.ok and card["msg_type"] == "interactive"
    values = [
        e["behaviors"][0]["value"] for e in card["content"]["body"]["elements"] if e.get("tag") == "button"
    ]
    assert [v["cb"] for v in values] == ["approve", "deny"] and values[0]["v"] == "run-1:req-1"


async def test_status_reactions(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress(connect=False)
    fake = ingress.fake
    message = fake.push_message(chat_id="oc_g", text="go")["message_id"]
    root = message
    assert (await ingress.request(action(StatusPayload(state="running", message_id=message), root=root))).ok
    assert (await ingress.request(action(StatusPayload(state="completed", message_id=message), root=root))).ok
    reactions = list(fake.state.reactions.values())
    assert [(r["emoji_type"], r["deleted"]) for r in reactions] == [("OnIt", True), ("DONE", False)]


async def test_upload_limits(start_ingress, tmp_path: Path) -> None:
    ingress: RunningIngress = await start_ingress(connect=False)
    fake = ingress.fake
    root = fake.push_message(chat_id="oc_g", text="go")["message_id"]
    workspace = ingress.settings.data_root / "sessions" / "s1" / "workspace"
    workspace.mkdir(parents=True)
    small, big_image, huge = workspace / "plot.png", workspace / "big.png", workspace / "dump.bin"
    small.write_bytes(b"\x89PNG" + b"0" * 1000)
    big_image.write_bytes(b"\x89PNG" + b"0" * (11 * 1024 * 1024))
    huge.write_bytes(b"0" * (31 * 1024 * 1024))

    as_image = await ingress.request(action(UploadPayload(path=str(small)), root=root))
    as_file = await ingress.request(action(UploadPayload(path=str(big_image)), root=root), timeout_s=60)
    refused = await ingress.request(action(UploadPayload(path=str(huge)), root=root))

    assert as_image.ok and as_file.ok
    assert [m["msg_type"] for m in fake.bot_messages("oc_g")] == ["image", "file"]
    assert not refused.ok and refused.error and refused.error.startswith("file_too_large")
    outside = await ingress.request(action(UploadPayload(path="/etc/passwd"), root=root))
    assert not outside.ok
    inline = await ingress.request(
        action(UploadPayload(content_base64=base64.b64encode(b"hello").decode(), filename="a.txt"), root=root)
    )
    assert inline.ok and fake.bot_messages("oc_g")[-1]["msg_type"] == "file"


async def test_image_in_is_downloaded_as_an_image(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress()
    fake = ingress.fake
    sent = fake.push_message(
        chat_id="oc_g", msg_type="image", content={"image_key": "img_in"}, mention_bot=True
    )
    fake.add_resource(sent["message_id"], "img_in", b"\x89PNG-data", "image/png")
    [event] = await ingress.wait_inbound(1)
    dest = ingress.settings.data_root / "sessions" / "s1" / "workspace" / "inbox"

    result = await ingress.request(
        action(DownloadPayload(attachments=event.attachments, dest_dir=str(dest)), root=event.root_message_id)
    )

    assert result.ok
    [file] = result.files
    assert file.is_image and file.local_path
    assert await asyncio.to_thread(Path(file.local_path).read_bytes) == b"\x89PNG-data"
    assert Path(file.local_path).parent == dest
    bad = await ingress.request(
        action(
            DownloadPayload(attachments=[Attachment(id="x", url="https://evil")], dest_dir=str(dest)),
            root="om_x",
        )
    )
    assert not bad.ok
    escape = await ingress.request(
        action(DownloadPayload(attachments=event.attachments, dest_dir="/tmp/elsewhere"), root="om_x")
    )
    assert not escape.ok


async def test_download_never_writes_through_a_symlink_planted_in_the_workspace(
    start_ingress, tmp_path: Path
) -> None:
    """Codex's shell can write its workspace: a symlink it plants at the file's name or on the
    way to the directory (to outside DATA_ROOT or to another session) must not be written through."""
    ingress: RunningIngress = await start_ingress()
    fake = ingress.fake
    sent = fake.push_message(
        chat_id="oc_g", msg_type="image", content={"image_key": "img_in"}, mention_bot=True
    )
    fake.add_resource(sent["message_id"], "img_in", b"\x89PNG-new", "image/png")
    [event] = await ingress.wait_inbound(1)
    sessions = ingress.settings.data_root.resolve() / "sessions"
    outside, other = tmp_path / "outside", sessions / "s2" / "workspace"
    for directory in (outside, other):
        directory.mkdir(parents=True)
    victim = outside / "victim.png"
    victim.write_bytes(b"precious")
    inbox = sessions / "s1" / "workspace" / "inbox"

    async def deliver(dest: Path) -> Any:
        payload = DownloadPayload(attachments=event.attachments, dest_dir=str(dest))
        return await ingress.request(action(payload, root=event.root_message_id))

    first = await deliver(inbox)
    landed_at = Path(first.files[0].local_path or "")
    await asyncio.to_thread(_plant, landed_at, victim, {"to-outside": outside, "to-other": other})

    again = await deliver(inbox)
    refused = [await deliver(inbox.parent / "to-outside"), await deliver(inbox.parent / "to-other" / "x")]

    assert victim.read_bytes() == b"precious" and [p.name for p in outside.iterdir()] == ["victim.png"]
    assert list(other.iterdir()) == []
    assert again.ok and again.files[0].local_path == str(landed_at)
    assert await asyncio.to_thread(_regular_bytes, landed_at) == b"\x89PNG-new"
    assert [p.name for p in inbox.iterdir()] == [landed_at.name]  # no temporary left
    for result in refused:
        assert not result.ok and "unsafe_path" in (result.error or "")


def _plant(landed_at: Path, victim: Path, directory_links: dict[str, Path]) -> None:
    """What a hostile shell would do: the next download of the file lands on a symlink, and
    directories next to it lead out."""
    landed_at.unlink()
    landed_at.symlink_to(victim)
    for name, target in directory_links.items():
        (landed_at.parent.parent / name).symlink_to(target, target_is_directory=True)


def _regular_bytes(path: Path) -> bytes | None:
    return None if path.is_symlink() else path.read_bytes()


async def test_history_of_a_thread_oldest_first(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress(connect=False)
    fake = ingress.fake
    root = fake.push_message(chat_id="oc_g", text="root question", mention_bot=True)["message_id"]
    await ingress.request(action(PostPayload(text="bot answer"), root=root))  # opens the thread
    replies = [
        fake.push_message(chat_id="oc_g", text=f"reply {i}", root_id=root)["message_id"] for i in range(4)
    ]
    fake.push_message(chat_id="oc_g", text="other top-level")

    full = await ingress.request(action(HistoryPayload(limit=50), root=root))
    assert [m.text for m in full.messages] == [
        "root question",
        "bot answer",
        "reply 0",
        "reply 1",
        "reply 2",
        "reply 3",
    ]
    assert full.messages[1].actor.is_bot

    page = await ingress.request(action(HistoryPayload(limit=2, before_message_id=replies[2]), root=root))
    assert [m.text for m in page.messages] == ["reply 0", "reply 1"]


async def test_history_of_a_private_chat(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress(connect=False)
    for i in range(3):
        ingress.fake.push_message(chat_id="oc_dm", chat_type="p2p", text=f"dm {i}")
    result = await ingress.request(action(HistoryPayload(limit=2), chat="oc_dm", root="oc_dm"))
    assert [m.text for m in result.messages] == ["dm 1", "dm 2"]
    assert json.loads(result.model_dump_json())["ok"] is True


async def test_a_neutral_form_is_a_form_card_in_the_thread(start_ingress) -> None:
    ingress: RunningIngress = await start_ingress(connect=False)
    root = ingress.fake.push_message(chat_id="oc_g", text="go")["message_id"]
    form = Form(
        form_id="coauthor",
        title="Configure co-authors",
        fields=[
            FormField(
                name="coauthors",
                kind="multi_select",
                label="Credit",
                options=[FormOption(value="ou_1", label="Lin", description="no GitHub author yet")],
                selected=["ou_1"],
            ),
            FormField(name="allow_missing", kind="checkbox", label="Unmapped", text="Allow", checked=True),
        ],
    )
    result = await ingress.request(action(OpenViewPayload(form=form), root=root))
    [card] = ingress.fake.bot_messages("oc_g")
    assert result.ok and result.data["message_id"] == card["message_id"] and card["root_id"] == root
    [body] = [e for e in card["content"]["body"]["elements"] if e["tag"] == "form"]
    select, checker, submit = body["elements"]
    assert select["options"][0]["text"]["content"] == "Lin — no GitHub author yet"
    assert select["selected_values"] == ["ou_1"] and checker["checked"] is True
    assert submit["behaviors"][0]["value"] == {"cb": "coauthor_submit", "v": "", "root": root, "conv": "oc_g"}
    # a platform-native view (another platform's) cannot be shown here
    native = await ingress.request(action(OpenViewPayload(trigger_id="t", view={"type": "modal"}), root=root))
    assert not native.ok and "unsupported_on_feishu" in (native.error or "")
