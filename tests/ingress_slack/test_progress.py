"""Live run views: Slack native streaming, the chat.update fallback, and the update rate limit."""

from __future__ import annotations

import itertools
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs.keys import Keys
from tests.fakes.fake_slack import FakeSlack
from tests.helpers import wait_for
from tests.ingress_slack.conftest import StartIngress
from tests.ingress_slack.support import CHANNEL, action, publish


def snapshot(run: str, seq: int, phase: str, **fields: Any) -> dict[str, Any]:
    return {"kind": "progress", "progress_id": run, "run_id": run, "seq": seq, "phase": phase, **fields}


async def mention(slack: FakeSlack, text: str = "fix the flaky test") -> str:
    sent = slack.user_message(CHANNEL, "U1", f"<@{slack.bot_user_id}> {text}")
    for event_id in sent.event_ids:
        await wait_for(lambda e=event_id: slack.acked(e), what="mention acked")
    return sent.ts


def stop_buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        element
        for block in message.get("blocks") or []
        if block.get("type") == "actions"
        for element in block["elements"]
        if element["action_id"] == "cb_stop"
    ]


async def test_native_streaming_with_task_chunks_and_a_stop_button(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    root = await mention(slack)
    tasks_running = [{"id": "c1", "title": "pytest tests/unit", "status": "in_progress"}]
    tasks_done = [
        {"id": "c1", "title": "pytest tests/unit", "status": "complete", "output": "3 passed"},
        {"id": "c2", "title": "git diff", "status": "error", "output": "fatal: bad revision"},
    ]
    plan = [{"step": "reproduce", "status": "completed"}, {"step": "fix", "status": "in_progress"}]
    answer = "The test was flaky because of **time**."
    await publish(redis, keys, action(snapshot("run-n", 0, "start", tasks=tasks_running), root=root))
    await wait_for(lambda: slack.streams(), what="stream started")
    await publish(
        redis,
        keys,
        action(
            snapshot("run-n", 1, "update", answer_text="The test", tasks=tasks_done, plan=plan), root=root
        ),
    )
    await publish(
        redis,
        keys,
        action(
            snapshot(
                "run-n",
                2,
                "finish",
                answer_text=answer,
                tasks=tasks_done,
                outcome="completed",
                final_text=answer,
            ),
            root=root,
        ),
    )
    await wait_for(lambda: all(s["stopped"] for s in slack.streams().values()), what="stream stopped")
    await wait_for(
        lambda: (
            [m["deleted"] for m in slack.messages(CHANNEL, root, from_bot=True) if stop_buttons(m)] == [True]
        ),
        what="stop button removed",
    )

    ((ts, stream),) = slack.streams().items()
    assert (stream["channel"], stream["thread_ts"]) == (CHANNEL, root)
    assert (stream["recipient_user_id"], stream["recipient_team_id"]) == ("U1", slack.team_id)
    assert stream["text"] == answer, "the answer is streamed once, in order, as markdown"
    tasks = [(c["id"], c["status"]) for c in stream["chunks"] if c["type"] == "task_update"]
    assert tasks[0] == ("c1", "in_progress")
    assert dict(tasks) == {"c1": "complete", "c2": "error"}
    assert (
        any(c["type"] == "plan_update" for c in stream["chunks"])
        or len(slack.calls("chat.appendStream")) == 0
    )
    control = [m for m in slack.messages(CHANNEL, root, from_bot=True) if stop_buttons(m)]
    assert len(control) == 1 and stop_buttons(control[0])[0]["value"] == "run-n"
    assert control[0]["deleted"], "the Stop button goes away when the run ends"
    assert not slack.calls("chat.update")
    posted = [m for m in slack.messages(CHANNEL, root, from_bot=True) if m["ts"] != ts and not m["deleted"]]
    assert posted == [], "the answer lives in the streamed message, not in a second post"


async def test_refused_streaming_falls_back_to_one_updated_message_and_is_learned(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress()
    slack.refuse_streaming("unknown_method")
    root = await mention(slack)
    await publish(redis, keys, action(snapshot("run-f", 0, "start", activity="Reading the code"), root=root))
    await wait_for(lambda: slack.messages(CHANNEL, root, from_bot=True), what="progress message")
    (progress,) = slack.messages(CHANNEL, root, from_bot=True)
    assert "Reading the code" in progress["text"] and stop_buttons(progress)[0]["value"] == "run-f"
    assert await redis.get(keys.platform_capability("slack", slack.team_id, "native_stream")) == b"no"

    tasks = [{"id": "c1", "title": "make test", "status": "complete"}]
    await publish(
        redis, keys, action(snapshot("run-f", 1, "update", activity="Testing", tasks=tasks), root=root)
    )
    final = "The answer **is** 42."
    await publish(
        redis,
        keys,
        action(snapshot("run-f", 2, "finish", tasks=tasks, outcome="completed", final_text=final), root=root),
    )

    def finished() -> bool:
        messages = slack.messages(CHANNEL, root, from_bot=True)
        return len(messages) == 2 and messages[0]["text"].startswith(":white_check_mark: Done")

    await wait_for(finished, what="final answer and finished progress message")
    progress, answer = slack.messages(CHANNEL, root, from_bot=True)
    assert "make test" in progress["text"]
    assert not stop_buttons(progress)
    assert answer["text"] == "The answer *is* 42."
    # the answer is a new message: it goes out before the progress message's (rate-limited) last update
    answer_post = next(c for c in slack.calls("chat.postMessage") if c["args"].get("text") == answer["text"])
    assert answer_post["at"] <= slack.calls("chat.update")[-1]["at"]

    # a later run in the same workspace does not ask for streaming again
    await publish(redis, keys, action(snapshot("run-g", 0, "start"), root=root))
    await wait_for(lambda: len(slack.messages(CHANNEL, root, from_bot=True)) == 3, what="second progress")
    assert len(slack.calls("chat.startStream")) == 1


async def test_updates_are_coalesced_to_one_per_second_and_the_last_one_wins(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    await start_ingress(slack_native_streaming=False)
    root = slack.seed_message(CHANNEL, "U1", "go")
    await publish(redis, keys, action(snapshot("run-r", 0, "start", activity="step 0"), root=root))
    await wait_for(lambda: slack.messages(CHANNEL, root, from_bot=True), what="progress message")
    for seq in range(1, 13):
        await publish(
            redis, keys, action(snapshot("run-r", seq, "update", activity=f"step {seq}"), root=root)
        )

    def last_text() -> str:
        return str(slack.messages(CHANNEL, root, from_bot=True)[0]["text"])

    await wait_for(lambda: "step 12" in last_text(), timeout_s=20, what="last snapshot shown")
    updates = slack.calls("chat.update")
    assert 1 <= len(updates) < 12, "snapshots were coalesced"
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(updates)]
    assert all(gap >= 0.9 for gap in gaps), gaps
    assert "step 12" in updates[-1]["args"]["text"]

    # an older snapshot arriving late changes nothing
    await publish(redis, keys, action(snapshot("run-r", 5, "update", activity="step 5"), root=root))
    await publish(redis, keys, action(snapshot("run-r", 13, "finish", outcome="interrupted"), root=root))
    await wait_for(lambda: "Stopped" in last_text(), timeout_s=20, what="finish")
    assert "step 5" not in last_text()
    assert not stop_buttons(slack.messages(CHANNEL, root, from_bot=True)[0])


async def test_the_finish_neither_waits_out_the_interval_nor_holds_up_other_threads(
    slack: FakeSlack, start_ingress: StartIngress, redis: Redis, keys: Keys
) -> None:
    # an interval no test would wait out: the finish and the other thread's post must not wait for it
    await start_ingress(slack_native_streaming=False, slack_progress_interval_s=60)
    root = slack.seed_message(CHANNEL, "U1", "go")
    other = slack.seed_message(CHANNEL, "U2", "another thread")
    await publish(redis, keys, action(snapshot("run-w", 0, "start", activity="step 0"), root=root))
    await wait_for(lambda: slack.messages(CHANNEL, root, from_bot=True), what="progress message")
    await publish(redis, keys, action(snapshot("run-w", 1, "update", activity="step 1"), root=root))  # parked
    finish = snapshot("run-w", 2, "finish", outcome="completed", final_text="All done.")
    await publish(redis, keys, action(finish, root=root, action_id="final:run-w"))
    await publish(redis, keys, action({"kind": "post", "text": "meanwhile"}, root=other))

    def done() -> bool:
        ours = slack.messages(CHANNEL, root, from_bot=True)
        theirs = slack.messages(CHANNEL, other, from_bot=True)
        return len(ours) == 2 and ours[0]["text"].startswith(":white_check_mark: Done") and len(theirs) == 1

    await wait_for(done, timeout_s=20, what="the finish and the other thread's post")
    progress, answer = slack.messages(CHANNEL, root, from_bot=True)
    assert answer["text"] == "All done." and not stop_buttons(progress)
    assert "step 1" not in progress["text"], "the parked snapshot is superseded by the finish"
    # the finished view marks its action done: the orchestrator orders a thread's answers by it
    marker = await wait_for(
        lambda: redis.get(keys.idempotency("outbound", "final:run-w")), what="done marker of the answer"
    )
    assert marker.startswith(b"done:")
