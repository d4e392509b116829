"""The Audit and Channels tabs in real headless Chromium against the real app and Redis: an
admin signs in, filters the trail by user, by thread and by time, and the export link yields the
JSONL; an admin sets a channel's defaults in the page (a bad field is marked), deletes them, and
both edits are on the trail."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs import audit, channel_defaults
from codex_broker.libs.keys import Keys
from tests.browser import needs_chromium
from tests.http_api.admin.conftest import ADMIN_TOKEN
from tests.http_api.admin.test_admin_browser import ARTIFACTS, browser, served

__all__ = ["browser", "served"]  # the fixtures, shared with the admin page's browser tests

pytestmark = needs_chromium


async def seed_trail(redis: Redis, keys: Keys) -> int:
    log = audit.AuditLog(keys)
    old = int(time.time() * 1000) - 3 * 24 * 3600 * 1000
    rows = [
        audit.make("turn", "U01ALICE", actor_name="Alice", session_key="slack:C0FLAKY:1.0", at_ms=old),
        audit.make("command", "codex", session_key="slack:C0FLAKY:1.0", summary="pytest -x", exit_code=1),
        audit.make("turn", "U02BOB", actor_name="Bob", session_key="slack:C0DOCS:2.0"),
        audit.make("admin", "admin:token@127.0.0.1", action="session.delete", session_key="slack:C0OLD:3.0"),
    ]
    pipe = redis.pipeline(transaction=False)
    for row in rows:
        log.add(pipe, row)
    await pipe.execute()
    return old


async def rows(page: Any) -> list[str]:
    return [await r.inner_text() for r in await page.locator("#audit-rows tr").all()]


async def test_search_the_audit_trail_by_user_thread_and_time(
    served: str, browser: Any, redis: Redis, keys: Keys, data_root: Path
) -> None:
    old = await seed_trail(redis, keys)
    page = await browser.new_page()
    page.set_default_timeout(15_000)
    await page.goto(f"{served}/admin#audit")
    await page.get_by_role("textbox", name="Token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Unlock").click()
    await page.get_by_text("4 record(s), newest first").wait_for()
    assert "session.delete" in (await rows(page))[0]  # newest first

    await page.get_by_label("User", exact=True).fill("alice")
    await page.get_by_role("button", name="Search").click()
    await page.get_by_text("1 record(s), newest first").wait_for()
    [only] = await rows(page)
    assert "Alice (U01ALICE)" in only and "slack:C0FLAKY:1.0" in only

    await page.get_by_label("User", exact=True).fill("")
    await page.get_by_label("Thread", exact=True).fill("C0FLAKY")
    await page.get_by_role("button", name="Search").click()
    await page.get_by_text("2 record(s), newest first").wait_for()
    assert "pytest -x → exit 1" in (await rows(page))[0]

    # from a day after the old turn on: only the command of that thread remains
    since = time.strftime("%Y-%m-%dT%H:%M", time.localtime((old + 24 * 3600 * 1000) / 1000))
    await page.get_by_label("From", exact=True).fill(since)
    await page.get_by_role("button", name="Search").click()
    await page.get_by_text("1 record(s), newest first").wait_for()
    assert "pytest -x" in (await rows(page))[0]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "audit.png"), full_page=True)

    href = await page.locator("#audit-export").get_attribute("href")
    assert href is not None and "thread=C0FLAKY" in href
    export = await page.request.get(f"{served}{href}")
    assert export.ok
    lines = (await export.text()).splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["command"]
    await page.close()


async def test_channel_defaults_are_edited_in_the_page_and_audited(
    served: str, browser: Any, redis: Redis, keys: Keys, data_root: Path
) -> None:
    page = await browser.new_page()
    page.set_default_timeout(15_000)
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.goto(f"{served}/admin#channels")
    await page.get_by_role("textbox", name="Token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Unlock").click()
    await page.get_by_text("No channel has defaults.").wait_for()

    form = page.locator("#channel-form")
    await form.get_by_label("Channel or chat id").fill("C0TEAM")
    await form.get_by_label("Repos (one per line").fill("acme/api https://git.example/acme/api.git\nacme/web")
    await form.get_by_label("Default repo").fill("acme/other")  # not among the repos
    await form.get_by_role("button", name="Save defaults").click()
    await page.get_by_role("alert").get_by_text("unknown_repo", exact=False).wait_for()
    assert await form.get_by_label("Default repo").get_attribute("aria-invalid") == "true"

    await form.get_by_label("Default repo").fill("acme/api")
    await form.get_by_label("Default model", exact=True).fill("gpt-team")
    await form.get_by_label("Models a thread may pick").fill("gpt-big, gpt-small")
    await form.get_by_role("button", name="Save defaults").click()
    await page.get_by_text("1 channel(s) with defaults").wait_for()
    [row] = await rows_of(page, "#channel-rows")
    assert "slack:C0TEAM" in row and "acme/api ← https://git.example/acme/api.git" in row and "gpt-big" in row
    stored = await channel_defaults.load(redis, keys, "slack", "C0TEAM")
    assert stored is not None and stored.models == ["gpt-big", "gpt-small"] and stored.repos["acme/web"] == ""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "channels.png"), full_page=True)

    await page.get_by_role("button", name="Delete defaults of slack:C0TEAM").click()
    await page.get_by_text("No channel has defaults.").wait_for()
    await page.goto(f"{served}/admin#audit")
    await page.get_by_text("2 record(s), newest first").wait_for()
    actions = await rows_of(page, "#audit-rows")
    assert "channel_defaults.delete" in actions[0] and "channel_defaults.set" in actions[1]
    await page.close()


async def rows_of(page: Any, selector: str) -> list[str]:
    return [await r.inner_text() for r in await page.locator(f"{selector} tr").all()]
