"""Outbound: OutboundActions from Redis executed with the real slack-sdk against the fake Slack."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from prometheus_client import REGISTRY
from redis.asyncio import Redis

from codex_broker.libs.contracts import Attachment, OutboundResult
from codex_broker.libs.keys import Keys
from codex_broker.libs.rpc import wait_reply
from tests.fakes.fake_slack import FakeSlack
from tests.helpers import wait_for
from tests.ingress_slack.conftest import StartIngress
from tests.ingress_slack.support import CHANNEL, action, dead_letters, publish

ROOT = "1700000000.000100"


def _absolute(path: Path) -> Path:
    return Path(path).resolve()


def _read(path: str | None) -> bytes:
    return Path(path or "").read_bytes()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def rpc(redis: Redis, keys: Keys, payload: dict[str, object], **fields: object) -> OutboundResult:
    reply_to = keys.rpc_reply(os.urandom(8).hex())
    await publish(redis, keys, action(payload, reply_to=reply_to, **fields))  # type: ignore[arg-type]
    return await wait_reply(redis, reply_to, OutboundResult, timeout_s=30)


async def test_long_markdown_is_posted_as_ordered_mrkdwn_chunks(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    sections = [f"## Part {i}\n\n" + f"Line with **bold {i}** and `code`.\n" * 40 for i in range(6)]
    code = "```python\n" + "\n".join(f"print({i})  # <x> & y" for i in range(120)) + "\n```"
    markdown = "\n".join(sections) + "\n" + code + "\n\nThe end."

    result = await rpc(redis, keys, {"kind": "post", "text": markdown})
    assert result.ok and len(result.message_ids) >= 3
    posted = slack.messages(CHANNEL, ROOT, from_bot=True)
    assert [m["ts"] for m in posted] == result.message_ids
    texts = [m["text"] for m in posted]
    assert all(len(t) <= 3500 for t in texts)
    joined = "\n".join(texts)
    assert (
        joined.index("*Part 0*")
        < joined.index("*Part 5*")
        < joined.index("print(119)")
        < joined.index("The end.")
    )
    assert "*bold 3*" in joined and "**" not in joined
    assert "# &lt;x&gt; &amp; y" in joined
    for text in texts:
        assert text.count("```") % 2 == 0, "every chunk renders on its own"


async def test_an_action_is_done_once_however_often_it_is_delivered(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    reply_to = keys.rpc_reply("dup")
    twice = action({"kind": "post", "text": "only once"}, action_id="act-1", reply_to=reply_to)
    await publish(redis, keys, twice)
    await publish(redis, keys, twice)
    first = await wait_reply(redis, reply_to, OutboundResult, timeout_s=30)
    second = await wait_reply(redis, reply_to, OutboundResult, timeout_s=30)
    assert first.message_ids == second.message_ids
    assert len(slack.messages(CHANNEL, ROOT, from_bot=True)) == 1


async def test_429_is_retried_after_retry_after(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    before = metric("cb_slack_ratelimited_total", method="chat.postMessage")
    slack.fail("chat.postMessage", "ratelimited", retry_after=1, times=1)
    result = await rpc(redis, keys, {"kind": "post", "text": "after the wait"})
    assert result.ok
    calls = slack.calls("chat.postMessage")
    assert [c["error"] for c in calls] == ["ratelimited", None]
    assert calls[1]["at"] - calls[0]["at"] >= 0.9
    assert metric("cb_slack_ratelimited_total", method="chat.postMessage") == before + 1


async def test_transient_errors_are_retried(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    slack.fail("chat.postMessage", "internal_error", times=2)
    result = await rpc(redis, keys, {"kind": "post", "text": "eventually"})
    assert result.ok and len(slack.calls("chat.postMessage")) == 3


async def test_permanent_error_is_dead_lettered_with_reason_and_metric(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    before = metric("cb_slack_api_errors_total", method="chat.postMessage", error="channel_not_found")
    slack.fail("chat.postMessage", "channel_not_found", times=1)
    result = await rpc(redis, keys, {"kind": "post", "text": "nowhere"})
    assert not result.ok and result.error == "channel_not_found"
    await wait_for(lambda: dead_letters(redis, keys), what="dead letter")
    (letter,) = await dead_letters(redis, keys)
    assert "channel_not_found" in letter["reason"] and letter["source_stream"] == keys.outbound_stream(
        "slack"
    )
    assert (
        metric("cb_slack_api_errors_total", method="chat.postMessage", error="channel_not_found")
        == before + 1
    )
    # the loop lives on
    assert (await rpc(redis, keys, {"kind": "post", "text": "still here"})).ok


async def test_status_uses_assistant_status_when_allowed(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    running = await rpc(redis, keys, {"kind": "status", "state": "running", "message_id": ROOT})
    done = await rpc(redis, keys, {"kind": "status", "state": "completed", "message_id": ROOT})
    assert running.data == {"surface": "assistant_status"} and done.data == running.data
    assert [s["status"] for s in slack.statuses()] == ["is working…", ""]


async def test_missing_scope_falls_back_to_reactions_and_is_learned_once(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    root = slack.seed_message(CHANNEL, "U1", "please help")
    slack.fail("assistant.threads.setStatus", "missing_scope", needed="assistant:write", times=None)
    running = await rpc(redis, keys, {"kind": "status", "state": "running", "message_id": root}, root=root)
    assert running.data == {"surface": "reaction"}
    assert slack.reactions(CHANNEL, root) == ["eyes"]
    assert await redis.get(keys.platform_capability("slack", slack.team_id, "assistant_status")) == b"no"

    done = await rpc(redis, keys, {"kind": "status", "state": "completed", "message_id": root}, root=root)
    assert done.data == {"surface": "reaction"}
    assert slack.reactions(CHANNEL, root) == ["white_check_mark"]
    assert len(slack.calls("assistant.threads.setStatus")) == 1, "learned once, not asked again"


async def test_upload_from_workspace_path_and_from_base64_arrive_byte_for_byte(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    ingress = await start_ingress()
    workspace = Path(ingress.settings.data_root) / "sessions" / "s1" / "workspace"
    workspace.mkdir(parents=True)
    blob = os.urandom(300_000)
    (workspace / "report.bin").write_bytes(blob)

    from_path = await rpc(
        redis,
        keys,
        {
            "kind": "upload",
            "path": str(workspace / "report.bin"),
            "title": "Report",
            "initial_comment": "**see** attached",
            "alt_text": "a report",
        },
    )
    small = b"\x00\x01 snippet \xff"
    from_b64 = await rpc(
        redis,
        keys,
        {"kind": "upload", "content_base64": base64.b64encode(small).decode(), "filename": "s.bin"},
    )
    assert from_path.ok and from_b64.ok
    uploads = slack.uploads()
    assert [u["content"] for u in uploads] == [blob, small]
    assert uploads[0]["title"] == "Report" and uploads[0]["initial_comment"] == "*see* attached"
    assert uploads[0]["alt_txt"] == "a report" and uploads[0]["thread_ts"] == ROOT
    assert from_path.data["file_id"] == uploads[0]["file_id"]

    outside = await rpc(redis, keys, {"kind": "upload", "path": "/etc/passwd"})
    assert not outside.ok and "outside the allowed roots" in (outside.error or "")
    assert len(slack.uploads()) == 2


async def test_history_paginates_and_returns_oldest_first_before_exclusive(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    root = slack.seed_message(CHANNEL, "U1", f"<@{slack.bot_user_id}> root")
    replies = [
        slack.seed_message(CHANNEL, "U2" if i % 2 else "U1", f"reply {i} for <@U1>", thread_ts=root)
        for i in range(260)
    ]
    slack.seed_message(CHANNEL, slack.bot_user_id, "bot says hi", thread_ts=root)

    result = await rpc(
        redis, keys, {"kind": "history", "before_message_id": replies[250], "limit": 220}, root=root
    )
    assert result.ok
    assert [m.message_id for m in result.messages] == replies[30:250]
    assert result.messages[0].text == "reply 30 for @Alice"
    assert {m.actor.display_name for m in result.messages} == {"Alice", "Bob"}
    assert len(slack.calls("conversations.replies")) >= 2, "more than one page"

    everything = await rpc(redis, keys, {"kind": "history", "limit": 1000}, root=root)
    assert len(everything.messages) == 262
    assert everything.messages[0].text == "root" and everything.messages[-1].actor.is_bot


async def test_attachment_download_into_the_session_workspace(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    ingress = await start_ingress(slack_download_max_bytes=100_000)
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(5000)
    image = slack.add_file("screen shot.png", png, "image/png")
    text = slack.add_file("log.txt", b"line 1\nline 2\n", "text/plain")
    huge = slack.add_file("huge.bin", os.urandom(150_000), "application/octet-stream")
    dest = _absolute(ingress.settings.data_root) / "sessions" / "s1" / "workspace" / ".attachments" / "17"
    attachments = [
        Attachment(id=f["id"], name=f["name"], mimetype=f["mimetype"], size=f["size"], url=f["url_private"])
        for f in (image, text, huge)
    ]
    attachments.append(Attachment(id="FEVIL", name="x", url="https://evil.example/steal"))
    result = await rpc(
        redis,
        keys,
        {"kind": "download", "attachments": [a.model_dump() for a in attachments], "dest_dir": str(dest)},
    )
    saved = {f.id: f for f in result.files}
    assert set(saved) == {image["id"], text["id"]}
    assert _read(saved[image["id"]].local_path) == png and saved[image["id"]].is_image
    assert _read(saved[text["id"]].local_path) == b"line 1\nline 2\n"
    assert not saved[text["id"]].is_image
    assert all(Path(f.local_path or "").parent == dest for f in result.files)
    assert result.data["errors"] == {huge["id"]: "too_large", "FEVIL": "url_not_allowed"}
    assert not list(dest.glob("*.part"))


async def test_download_never_writes_through_a_symlink_planted_in_the_workspace(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys, tmp_path: Path
) -> None:
    """Codex's shell can write its workspace: a symlink it plants where the download will land
    (the file name, a temporary name, or a directory on the way, to outside DATA_ROOT or to another
    session) must not let the ingress write anywhere but the workspace."""
    ingress = await start_ingress()
    sessions = _absolute(ingress.settings.data_root) / "sessions"
    outside, other = tmp_path / "outside", sessions / "s2" / "workspace"
    for directory in (outside, other):
        directory.mkdir(parents=True)
    victim = outside / "victim.txt"
    victim.write_bytes(b"precious")
    attachments = sessions / "s1" / "workspace" / ".attachments"
    file_dir = attachments / "18"
    file_dir.mkdir(parents=True)
    (file_dir / "00-log.txt").symlink_to(victim)
    (file_dir / "00-log.txt.part").symlink_to(victim)
    (attachments / "19").symlink_to(outside, target_is_directory=True)
    (attachments / "20").symlink_to(other, target_is_directory=True)
    log = slack.add_file("log.txt", b"from slack", "text/plain")
    files = [Attachment(id=log["id"], name="log.txt", size=log["size"], url=log["url_private"])]

    async def deliver(dest: Path) -> OutboundResult:
        payload = {"kind": "download", "attachments": [a.model_dump() for a in files], "dest_dir": str(dest)}
        return await rpc(redis, keys, payload)

    landed = await deliver(file_dir)
    refused = [await deliver(attachments / "19"), await deliver(attachments / "20" / "inner")]

    assert victim.read_bytes() == b"precious" and [p.name for p in outside.iterdir()] == ["victim.txt"]
    assert list(other.iterdir()) == []
    [saved] = landed.files
    assert saved.local_path == str(file_dir / "00-log.txt")
    assert not (file_dir / "00-log.txt").is_symlink() and _read(saved.local_path) == b"from slack"
    assert sorted(p.name for p in file_dir.iterdir()) == ["00-log.txt", "00-log.txt.part"]
    for result in refused:
        assert not result.ok and result.files == []
        assert result.data["errors"] == {log["id"]: "unsafe_path"}


async def test_update_by_ref_ephemeral_and_reactions(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    posted = await rpc(
        redis,
        keys,
        {
            "kind": "post",
            "text": "Allow `rm -rf build`?",
            "ref": "approval:r1:q1",
            "buttons": [{"action": "approve", "label": "Approve", "value": "r1:q1", "style": "primary"}],
        },
    )
    (ts,) = posted.message_ids
    message = slack.messages(CHANNEL, ROOT, from_bot=True)[0]
    assert message["blocks"][-1]["elements"][0]["action_id"] == "cb_approve"

    updated = await rpc(redis, keys, {"kind": "update", "ref": "approval:r1:q1", "text": "Approved by *Bob*"})
    assert updated.message_ids == [ts]
    message = slack.messages(CHANNEL, ROOT, from_bot=True)[0]
    assert message["text"] == "Approved by _Bob_" and all(b["type"] != "actions" for b in message["blocks"])

    ephemeral = await rpc(redis, keys, {"kind": "ephemeral", "user_id": "U2", "text": "only **you**"})
    assert ephemeral.ok and slack.ephemerals()[0]["text"] == "only *you*"

    assert (await rpc(redis, keys, {"kind": "react", "message_id": ts, "emoji": ":tada:"})).ok
    assert (
        await rpc(redis, keys, {"kind": "react", "message_id": ts, "emoji": "tada"})
    ).ok  # already_reacted
    assert slack.reactions(CHANNEL, ts) == ["tada"]
    assert (await rpc(redis, keys, {"kind": "react", "message_id": ts, "emoji": "tada", "remove": True})).ok
    assert slack.reactions(CHANNEL, ts) == []


async def test_a_neutral_form_opens_as_a_modal_for_the_thread(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    form = {
        "form_id": "coauthor",
        "title": "Configure co-authors",
        "intro": "Pick **who**",
        "fields": [
            {
                "name": "coauthors",
                "kind": "multi_select",
                "label": "Credit",
                "options": [{"value": "U1", "label": "Ann", "description": "Ann <ann@example.com>"}],
                "selected": ["U1"],
            },
            {"name": "allow_missing", "kind": "checkbox", "label": "Unmapped", "text": "Allow"},
            {"name": "github_email", "kind": "text", "label": "Your email", "value": "me@example.com"},
        ],
    }
    opened = await rpc(redis, keys, {"kind": "open_view", "trigger_id": "trig-1", "form": form})
    assert opened.ok and opened.data["view_id"]
    [shown] = slack.views()
    view = shown["view"]
    assert shown["trigger_id"] == "trig-1" and view["callback_id"] == "cb_coauthor"
    assert [b.get("block_id") for b in view["blocks"]] == [
        None,
        "coauthors_0",
        "allow_missing",
        "github_email",
    ]
    assert view["blocks"][0]["text"]["text"] == "Pick *who*"
    assert view["blocks"][1]["element"]["initial_options"][0]["value"] == "U1"
    assert "initial_options" not in view["blocks"][2]["element"]
    assert view["blocks"][3]["element"]["initial_value"] == "me@example.com"
    assert json.loads(view["private_metadata"])["cb"] == {"conversation_id": CHANNEL, "root_message_id": ROOT}
