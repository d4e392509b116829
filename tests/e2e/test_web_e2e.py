"""The web chat end to end in real Chromium (Playwright): `codex-broker up` runs every service as
a process, the real Codex binary talks to the fake model, and a person signs in with the admin
token, chats, replies in the thread, stops a slow answer, and sends and receives files. One
broker serves the module; each test starts threads of its own."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from redis import Redis

from codex_broker.libs.keys import session_key_of
from tests.browser import CHROMIUM, needs_chromium
from tests.e2e import harness
from tests.e2e.harness import BrokerProcess
from tests.fakes.fake_model import (
    FakeModelClient,
    slow_reply,
    text_reply,
    tool_call_reply,
    tool_outputs,
    user_texts,
)

pytestmark = [pytest.mark.e2e, pytest.mark.codex, needs_chromium]

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-proxy-server", "--disable-background-networking"]
ADMIN_TOKEN = "web-e2e-admin-token-" + uuid.uuid4().hex
ARTIFACTS = REPO_ROOT / "test-artifacts" / "web"
WAIT_MS = 120_000

async_playwright: Any
try:
    from playwright.async_api import async_playwright
except ImportError:  # pragma: no cover - the dev group pins playwright
    async_playwright = None


@dataclass
class World:
    broker: BrokerProcess
    model: FakeModelClient
    printed_link_used: bool = False  # `up`'s sign-in code works once: the first page takes it

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.broker.http_web_port}/"

    def session(self, root: str) -> dict[str, str]:
        client = Redis.from_url(self.broker.redis_url)
        try:
            raw = client.hgetall(self.broker.keys.session(session_key_of("web", "chat", root)))
        finally:
            client.close()
        return {k.decode(): v.decode() for k, v in raw.items()}  # type: ignore[union-attr]

    def model_saw(self, phrase: str) -> list[dict]:
        return [r for r in self.model.requests if any(phrase in t for t in user_texts(r))]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    env = {
        "BROKER_ADMIN_TOKEN": ADMIN_TOKEN,
        "DEBOUNCE_MS": "100",
        "WEB_PROGRESS_INTERVAL_S": "0.2",
        "PROGRESS_INTERVAL_MS": "200",
    }
    with (
        harness.fake_model_process() as model,
        harness.e2e_broker(tmp_path_factory, "web-e2e", model, env) as broker,
    ):
        yield World(broker=broker, model=model)


@pytest_asyncio.fixture
async def page(world: World, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    assert async_playwright is not None, "playwright is in the dev dependency group"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            tab = await browser.new_page()
            tab.set_default_timeout(WAIT_MS)
            if world.printed_link_used:
                await sign_in_with_token(tab, world, "alice")
            else:
                world.printed_link_used = True
                await sign_in(tab, world, "alice")
            yield tab
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        finally:
            await browser.close()


def printed_chat_link(world: World) -> str:
    """The line `up` prints for a newcomer: the chat's address with a one-time sign-in code."""
    match = re.search(r"web chat: open (http://\S+#code=[A-Za-z0-9_-]+)", world.broker.log_path.read_text())
    assert match, "up printed no web chat link"
    return match.group(1)


async def sign_in(page: Any, world: World, name: str) -> None:
    # as a newcomer does: the link `up` printed (the code is in the URL fragment, never sent to the
    # server, taken out of the address bar at once, redeemed once)
    await page.goto(printed_chat_link(world))
    await page.wait_for_selector("#login-form")
    assert "code=" not in page.url
    assert await page.is_hidden("#login-token-row")  # the code stands in for the token
    await page.fill("#login-name", name)
    await page.click("#login-submit")
    await page.wait_for_selector("#chat:not([hidden])")
    cookies = await page.context.cookies()
    [cookie] = [c for c in cookies if c["name"] == "cb_web"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


async def sign_in_with_token(page: Any, world: World, name: str) -> None:
    # an operator's shared link carries the token in the fragment instead
    await page.goto(f"{world.url}#token={ADMIN_TOKEN}")
    await page.wait_for_selector("#login-form")
    assert await page.input_value("#login-token") == ADMIN_TOKEN
    assert "token=" not in page.url
    await page.fill("#login-name", name)
    await page.click("#login-submit")
    await page.wait_for_selector("#chat:not([hidden])")


async def say(page: Any, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")


async def see(page: Any, text: str) -> None:
    await page.locator("#messages").get_by_text(text, exact=False).first.wait_for()


def thread_of(page: Any) -> str:
    found = re.search(r"#t=(w\d{12})", page.url)
    assert found, page.url
    return found.group(1)


async def test_message_live_view_answer_and_reply_in_the_same_codex_thread(world: World, page: Any) -> None:
    world.model.script(
        slow_reply("The flaky test is fixed.", match="fix the flaky test", chunks=6, delay_s=0.3),
        text_reply("You asked me to fix the **flaky test**.", match="what did I ask"),
    )
    await say(page, "fix the flaky test")
    await page.wait_for_selector("#messages [data-kind=view]")  # the live view shows while Codex works
    await see(page, "The flaky test is fixed.")
    await page.wait_for_selector("#messages [data-kind=view].finished")
    root = thread_of(page)
    assert await page.locator("#threads li.active").inner_text() == "fix the flaky test"
    first_thread = world.session(root)["thread_id"]

    await say(page, "what did I ask?")
    await see(page, "You asked me to fix the")
    assert await page.locator("#messages strong", has_text="flaky test").count() >= 1  # Markdown rendered
    assert world.session(root)["thread_id"] == first_thread  # same Codex thread
    follow = world.model_saw("what did I ask")[-1]
    assert any("fix the flaky test" in t for t in user_texts(follow))  # the model got the earlier turn

    # a reload shows the same thread from the server, and /status answers in it
    await page.reload()
    await see(page, "You asked me to fix the")
    await say(page, "-status")
    await see(page, first_thread)


async def test_stop_during_a_slow_answer(world: World, page: Any) -> None:
    world.model.script(slow_reply("working " * 120, match="slow job", chunks=120, delay_s=0.25))
    await say(page, "slow job please")
    await see(page, "working")
    await page.click("#messages [data-kind=view] button.stop")
    await see(page, "Stopped.")
    await page.wait_for_selector("#messages [data-kind=view].finished.interrupted")


async def test_a_file_goes_to_codex_and_a_file_comes_back(world: World, page: Any, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("web-attachment-content-42\n")
    world.model.script(
        tool_call_reply("cat .attachments/*/*notes.txt", match="read my notes"),
        text_reply("I read your notes.", match="read my notes"),
    )
    await page.set_input_files("#file", str(notes))
    await page.locator("#pending-files").get_by_text("notes.txt").wait_for()
    await say(page, "read my notes")
    await see(page, "I read your notes.")
    outputs = [o for r in world.model_saw("read my notes") for o in tool_outputs(r)]
    assert any("web-attachment-content-42" in o for o in outputs), outputs
    root = thread_of(page)

    token_file, base = session_api(world, "read my notes")
    upload = {
        "platform": "web",
        "conversation_id": "chat",
        "root_message_id": root,
        "file_path": "report.txt",
        "initial_comment": "here is the report",
    }
    world.model.script(
        tool_call_reply(
            "printf 'report-from-codex-7\\n' > report.txt && "
            + curl_json(base, token_file, "/chat/post-file", upload),
            match="send me a report",
        ),
        text_reply("Report sent.", match="send me a report"),
    )
    await say(page, "send me a report")
    await see(page, "Report sent.")
    link = page.locator("#messages .files a", has_text="report.txt")
    await link.wait_for()
    await see(page, "here is the report")
    url = world.url.rstrip("/") + str(await link.get_attribute("href"))
    response = await page.request.get(url)  # with the browser's cookie
    assert response.ok and (await response.text()) == "report-from-codex-7\n"
    anonymous = await asyncio.to_thread(httpx.get, url, trust_env=False)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "sign_in_required"


def session_api(world: World, phrase: str) -> tuple[str, str]:
    """The session's token file and API base, as its developer instructions name them."""
    text = json.dumps(world.model_saw(phrase))
    token_file = re.search(r"BROKER_SESSION_TOKEN_FILE=(/[^\s\\\"`]+)", text)
    base = re.search(r"BROKER_API_BASE=(http://[^\s\\\"`]+)", text)
    assert token_file and base, "no session token file / API base in the developer instructions"
    return token_file.group(1), base.group(1).rstrip("/")


def curl_json(base: str, token_file: str, route: str, body: dict[str, Any]) -> str:
    return (
        f"cat > request.json <<'JSON'\n{json.dumps(body)}\nJSON\n"
        f'curl -sS -m 30 -H "Authorization: Bearer $(cat {token_file})" -H "content-type: application/json" '
        f"--data-binary @request.json {base}{route}; echo"
    )
