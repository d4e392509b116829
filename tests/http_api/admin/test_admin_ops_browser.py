"""The admin page's rollout section in real Chromium: a mix of versions is flagged, the Drain
button drains a runner (the control reaches its stream), a web session links to the web chat
and shows its transcript, a Slack session shows its transcript from its events, and the
profiles view shows each profile's Codex account."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs.contracts import RunControl, decode
from codex_broker.libs.keys import Keys
from tests.browser import needs_chromium
from tests.helpers import wait_for
from tests.http_api.admin.conftest import ADMIN_TOKEN, seed_session
from tests.http_api.admin.test_admin_browser import ARTIFACTS, browser, served

pytestmark = needs_chromium
__all__ = ["browser", "served"]  # the fixtures, shared with the main admin browser test


async def _beat(redis: Redis, keys: Keys, instance: str, version: str) -> None:
    body = {"service": "codex-runner", "instance": instance, "at": time.time(), "version": version}
    await redis.set(
        keys.heartbeat("codex-runner", instance), json.dumps({**body, "active": 1, "capacity": 4}), ex=120
    )


async def _controls(redis: Redis, keys: Keys, instance: str) -> list[RunControl]:
    entries = await redis.xrange(keys.runner_control_stream(instance))
    return [decode(RunControl, fields[b"data"]) for _, fields in entries]


async def test_release_drain_transcript_and_accounts(
    served: str, browser: Any, redis: Redis, keys: Keys, data_root: Path
) -> None:
    await _beat(redis, keys, "runner-new", "0.2.0")
    await _beat(redis, keys, "runner-old", "0.1.0")
    now = int(time.time() * 1000)
    web = await seed_session(redis, keys, data_root, platform="web", conversation="chat", root="m0007")
    await redis.hset(  # type: ignore[misc]
        keys.web_messages("m0007"),
        mapping={
            "m0007": json.dumps(
                {
                    "id": "m0007",
                    "author": {"id": "ann", "name": "ann", "bot": False},
                    "text": "what is in README?",
                }
            ),
            "m0008": json.dumps(
                {
                    "id": "m0008",
                    "author": {"id": "codex", "name": "Codex", "bot": True},
                    "text": "A quickstart.",
                }
            ),
        },
    )
    slack = await seed_session(
        redis,
        keys,
        data_root,
        timeline=[
            {"at_ms": now - 9_000, "kind": "message", "summary": "carol: run the benchmarks"},
            {"at_ms": now - 5_000, "kind": "answer", "summary": "All green: 42 passed."},
        ],
    )
    page = await browser.new_page(viewport={"width": 1360, "height": 900})
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.goto(f"{served}/admin")
    await page.get_by_role("textbox", name="Token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Unlock").click()

    # the overview flags the mix and drains the old runner on a click
    mixed = page.locator("#ops-mixed")
    await mixed.get_by_text("Mixed versions").wait_for()
    assert "0.1.0: codex-runner/runner-old" in await mixed.inner_text()
    await page.get_by_role("button", name="Drain runner-old").click()
    await page.locator("#ops-release-note").get_by_text("Draining runner-old").wait_for()
    await wait_for(lambda: _has_drain(redis, keys, "runner-old"), timeout_s=10, what="the drain control")
    assert await _controls(redis, keys, "runner-new") == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "ops-release.png"), full_page=True)

    # a web session: the link into the web chat and the transcript from its thread
    await page.goto(f"{served}/admin#sessions/{web}")
    link = page.locator("#ops-web-link")
    await link.wait_for()
    assert await link.get_attribute("href") == "http://127.0.0.1:3100/#t=m0007"
    said = page.locator("#ops-transcript li")
    await said.nth(1).get_by_text("A quickstart.").wait_for()
    assert await said.count() == 2
    await page.screenshot(path=str(ARTIFACTS / "ops-transcript-web.png"), full_page=True)

    # a Slack session: no web link, the transcript from its events
    await page.goto(f"{served}/admin#sessions/{slack}")
    await page.locator("#ops-transcript").get_by_text("run the benchmarks").wait_for()
    await page.locator("#ops-transcript").get_by_text("All green: 42 passed.").wait_for()
    assert await page.locator("#ops-web-link").count() == 0

    # the profiles view: on request, the default profile has no login, said so on its row
    await page.get_by_role("link", name="Auth profiles").click()
    await page.get_by_role("button", name="Check Codex accounts").click()
    row = page.locator("#ops-profiles tr", has_text="default")
    await row.get_by_text("no auth.json").wait_for()
    assert problems == []
    await page.close()


async def _has_drain(redis: Redis, keys: Keys, instance: str) -> bool:
    return [c.kind for c in await _controls(redis, keys, instance)] == ["drain"]
