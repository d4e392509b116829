"""Feishu end to end: every service as a process (`codex-broker up`), the real Codex on the fake
model, the real lark-oapi on the fake Feishu. A user @-mentions the bot in a group; the answer
streams into one CardKit card in the thread; the card's Stop button interrupts a slow turn; an
image in the thread reaches Codex as an image input."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codex_broker.libs import paths
from tests.e2e.harness import BrokerProcess
from tests.fakes.codex_home import FAKE_API_KEY, write_codex_home
from tests.fakes.fake_feishu import FakeFeishu
from tests.fakes.fake_model import FakeModel, held_reply, slow_reply, text_reply
from tests.helpers import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.codex]


def tiny_png() -> bytes:
    """A valid 2x2 RGB PNG (Codex decodes images before sending them to the model)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def fake_feishu() -> Iterator[FakeFeishu]:
    server = FakeFeishu().start()
    yield server
    server.stop()


@pytest.fixture
def fake_model() -> Iterator[FakeModel]:
    with FakeModel() as model:
        yield model


def broker(
    tmp_path: Path, redis_url: str, key_prefix: str, feishu: FakeFeishu, model: FakeModel
) -> BrokerProcess:
    data_root = tmp_path / "data"
    write_codex_home(paths.codex_home(data_root), model.base_url)
    env = {
        "FEISHU_APP_ID": feishu.app_id,
        "FEISHU_APP_SECRET": feishu.app_secret,
        "FEISHU_DOMAIN": feishu.url,
        "OPENAI_API_KEY": FAKE_API_KEY,
    }
    return BrokerProcess(data_root=data_root, redis_url=redis_url, key_prefix=key_prefix, env=env)


def finished_card(feishu: FakeFeishu) -> dict[str, Any] | None:
    for card in feishu.cards():
        if card["history"] and card["history"][-1]["op"] == "update" and not card["streaming_mode"]:
            return card
    return None


def stop_button(card: dict[str, Any]) -> dict[str, Any] | None:
    for element in card["card"]["body"]["elements"]:
        if element.get("tag") == "button" and element["behaviors"][0]["value"].get("cb") == "stop":
            return element["behaviors"][0]["value"]
    return None


async def test_group_mention_streams_one_card_with_the_answer(
    tmp_path: Path, redis_url: str, key_prefix: str, fake_feishu: FakeFeishu, fake_model: FakeModel
) -> None:
    fake_model.script(text_reply("The flaky test is fixed.", match="fix the flaky test", chunks=4))
    async with broker(tmp_path, redis_url, key_prefix, fake_feishu, fake_model):
        await wait_for(lambda: fake_feishu.connected() == 1, timeout_s=60, what="the long connection")
        sent = fake_feishu.push_message(chat_id="oc_e2e", text="fix the flaky test", mention_bot=True)

        card = await wait_for(lambda: finished_card(fake_feishu), timeout_s=120, what="the finished card")
        assert "The flaky test is fixed." in card["elements"]["answer"]
        assert stop_button(card) is None
        assert fake_feishu.message(card["message_id"])["root_id"] == sent["message_id"]  # in the thread
        sequences = [step["sequence"] for step in card["history"]]
        assert sequences == sorted(set(sequences))
        assert len(fake_feishu.cards()) == 1  # one card per run
        assert any("fix the flaky test" in json.dumps(r) for r in fake_model.requests)


async def test_stop_button_interrupts_and_image_reaches_codex(
    tmp_path: Path, redis_url: str, key_prefix: str, fake_feishu: FakeFeishu, fake_model: FakeModel
) -> None:
    fake_model.script(slow_reply("counting " * 40, match="count slowly", chunks=60, delay_s=0.5))
    async with broker(tmp_path, redis_url, key_prefix, fake_feishu, fake_model):
        await wait_for(lambda: fake_feishu.connected() == 1, timeout_s=60, what="the long connection")
        sent = fake_feishu.push_message(chat_id="oc_e2e", text="count slowly", mention_bot=True)

        def live_card() -> dict[str, Any] | None:
            cards = [c for c in fake_feishu.cards() if c["message_id"] and stop_button(c)]
            return cards[0] if cards else None

        card = await wait_for(live_card, timeout_s=120, what="a run card with a Stop button")
        value = stop_button(card)
        assert value is not None and value["root"] == sent["message_id"]
        fake_feishu.push_card_action(
            operator_open_id="ou_user1", value=value, chat_id="oc_e2e", message_id=card["message_id"]
        )
        stopped = await wait_for(lambda: finished_card(fake_feishu), timeout_s=60, what="the stopped card")
        assert stopped["elements"]["activity"].startswith("⏹")

        # next turn in the same thread: an image the user posts reaches Codex as an image input
        fake_model.script(text_reply("I see a tiny image.", match="what is in it"))
        fake_feishu.add_resource(
            "om_e2e_image", "img_e2e", tiny_png(), "image/png"
        )  # before Feishu pushes it
        post = {
            "title": "",
            "content": [[{"tag": "text", "text": "what is in it"}], [{"tag": "img", "image_key": "img_e2e"}]],
        }
        fake_feishu.push_message(
            chat_id="oc_e2e",
            msg_type="post",
            content=post,
            root_id=sent["message_id"],
            message_id="om_e2e_image",
        )

        def image_request() -> dict[str, Any] | None:
            for request in fake_model.requests:
                if "what is in it" in json.dumps(request) and "input_image" in json.dumps(request):
                    return request
            return None

        try:
            await wait_for(image_request, timeout_s=120, what="a model request with the image")
        except AssertionError:
            print(
                "LASTUSER",
                json.dumps([m for m in fake_model.requests[-1]["input"] if m.get("role") == "user"][-1:])[
                    :4000
                ],
            )
            raise
        await wait_for(
            lambda: (
                len([c for c in fake_feishu.cards() if c["history"] and c["history"][-1]["op"] == "update"])
                >= 2
            ),
            timeout_s=120,
            what="the second run's card finished",
        )


async def test_an_answer_before_a_steer_and_the_answer_to_the_steer_both_reach_the_thread(
    tmp_path: Path, redis_url: str, key_prefix: str, fake_feishu: FakeFeishu, fake_model: FakeModel
) -> None:
    """Issue 16 item 2: a slow model answers, a follow-up steers the turn, Codex answers it too;
    the thread shows both answers as messages, in order, once each."""
    fake_model.script(
        held_reply("answer-one-f8 is here", hold_s=30, match="question-one"),
        text_reply("answer-two-f8 is here", match="question-two"),
    )
    async with broker(tmp_path, redis_url, key_prefix, fake_feishu, fake_model):
        await wait_for(lambda: fake_feishu.connected() == 1, timeout_s=60, what="the long connection")
        sent = fake_feishu.push_message(chat_id="oc_e2e", text="question-one please", mention_bot=True)

        def first_answer_in_card() -> bool:
            return any("answer-one-f8" in json.dumps(c["elements"]) for c in fake_feishu.cards())

        await wait_for(first_answer_in_card, timeout_s=120, what="the first answer streaming")
        fake_feishu.push_message(chat_id="oc_e2e", text="and question-two", root_id=sent["message_id"])
        await wait_for(lambda: finished_card(fake_feishu), timeout_s=120, what="the finished card")

        def answers() -> list[str] | None:
            texts = [json.dumps(m["content"]) for m in fake_feishu.bot_messages("oc_e2e") if not m["deleted"]]
            found = [t for t in texts if "answer-one-f8" in t or "answer-two-f8" in t]
            return found if len(found) >= 2 else None

        found = await wait_for(answers, timeout_s=60, what="both answers posted")
        assert len(found) == 2
        assert "answer-one-f8" in found[0] and "answer-two-f8" in found[1]
        assert "answer-two-f8" not in found[0] and "answer-one-f8" not in found[1]
