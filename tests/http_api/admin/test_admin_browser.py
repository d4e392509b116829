"""The admin page in real headless Chromium (Debian's, driven by Playwright) against the real app.

The app runs under uvicorn on 127.0.0.1 in the test's event loop; Redis is real. Screenshots of
the main views go to test-artifacts/admin/ (gitignored) for people to look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest_asyncio
import uvicorn
from redis.asyncio import Redis

from codex_broker.cli import admin_login
from codex_broker.http_api.app import create_app
from codex_broker.libs.heartbeat import Heartbeat
from codex_broker.libs.keys import Keys
from codex_broker.libs.paths import codex_home, safe_name
from tests.browser import CHROMIUM, needs_chromium
from tests.helpers import free_port, wait_for
from tests.http_api.admin.conftest import ADMIN_TOKEN, make_context, seed_session

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHATGPT_AUTH = {
    "OPENAI_API_KEY": None,
    "tokens": {"id_token": "id.jwt.sig", "access_token": "acc-123", "refresh_token": "ref-456"},
}
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "admin"

pytestmark = needs_chromium

async_playwright: Any
try:
    from playwright.async_api import async_playwright
except ImportError:  # pragma: no cover - the dev group pins playwright
    async_playwright = None


class _Server(uvicorn.Server):
    """uvicorn inside the test's loop without taking over the process's signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@pytest_asyncio.fixture
async def served(redis: Redis, keys: Keys, data_root: Path) -> AsyncIterator[str]:
    app = create_app(make_context(redis, keys, data_root, ADMIN_TOKEN))
    port = free_port()
    server = _Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    await wait_for(lambda: server.started, timeout_s=15, what="uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Any]:
    assert async_playwright is not None, "playwright is in the dev dependency group"
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def seed(redis: Redis, keys: Keys, data_root: Path) -> dict[str, str]:
    now = int(time.time() * 1000)
    for service, instance, details in (
        ("ingress-slack", "slack-1", None),
        ("orchestrator", "orch-1", None),
        ("codex-runner", "runner-1", {"active": 1, "capacity": 4}),
        ("http-api", "api-1", None),
    ):
        beat = Heartbeat(
            redis,
            keys,
            service,
            instance,
            ttl_s=120,
            started_at=time.time(),
            details=(lambda d=details: d) if details else None,
        )
        await beat.beat()
    busy = await seed_session(
        redis,
        keys,
        data_root,
        conversation="C0BUSY",
        root="1700000100.000200",
        state="running",
        active_run_id="run-7",
        auth_profile="team",
        last_activity_ms=now - 5_000,
        timeline=[{"at_ms": now - 9_000, "kind": "inbound", "summary": "carol: run the benchmarks"}],
    )
    sk = await seed_session(
        redis,
        keys,
        data_root,
        conversation="C0FLAKY",
        root="1700000000.000100",
        last_activity_ms=now - 60_000,
        participants={"U01ALICE": "Alice", "U02BOB": "Bob"},
        timeline=[
            {
                "at_ms": now - 120_000,
                "kind": "inbound",
                "summary": "alice: @codex fix the flaky test in api/",
            },
            {"at_ms": now - 119_000, "kind": "turn_started", "summary": "turn 1 on thread thread-1"},
            {"at_ms": now - 100_000, "kind": "tool", "summary": "exec_command: pytest tests/api -x"},
            {"at_ms": now - 80_000, "kind": "tool", "summary": "apply_patch: tests/api/test_retry.py"},
            {"at_ms": now - 61_000, "kind": "outbound", "summary": "final answer posted (412 chars)"},
        ],
    )
    await seed_session(
        redis,
        keys,
        data_root,
        platform="feishu",
        conversation="oc_team",
        root="om_1",
        last_activity_ms=now - 3_600_000,
    )
    await redis.hset(
        keys.run("run-7"), mapping={"session_key": busy, "status": "running", "runner_id": "runner-1"}
    )  # type: ignore[misc]
    await redis.zadd(keys.active_runs, {"run-7": now - 8_000})
    await redis.hset(  # type: ignore[misc]
        keys.job("job-1"),
        mapping={
            "session_key": sk,
            "kind": "ci-watch",
            "status": "running",
            "created_at_ms": now - 50_000,
            "updated_at_ms": now - 2_000,
        },
    )
    await redis.zadd(keys.jobs_index, {"job-1": now - 50_000})
    hour = datetime.now(UTC).strftime("%Y-%m-%dT%H")
    for directory, lines in (
        (
            data_root / "logs" / "orchestrator",
            [
                {
                    "ts": "2026-01-01T10:00:00.000+00:00",
                    "level": "INFO",
                    "service": "orchestrator",
                    "msg": "turn started",
                }
            ],
        ),
        (
            data_root / "logs" / "sessions" / safe_name(sk),
            [
                {
                    "ts": "2026-01-01T10:00:01.000+00:00",
                    "level": "INFO",
                    "msg": "run completed",
                    "session_key": sk,
                }
            ],
        ),
    ):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{hour}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return {"session": sk, "busy": busy}


async def test_admin_page_end_to_end(
    served: str, browser: Any, redis: Redis, keys: Keys, data_root: Path
) -> None:
    world = await seed(redis, keys, data_root)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = await browser.new_page(viewport={"width": 1360, "height": 900})
    page.set_default_timeout(15_000)
    problems: list[str] = []
    foreign: list[str] = []
    # expected 401/400 answers show up as "Failed to load resource"; anything else (a script
    # error, a CSP violation) is a problem
    page.on(
        "console",
        lambda msg: (
            problems.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("request", lambda req: None if req.url.startswith(served) else foreign.append(req.url))
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))

    # the page asks for the token
    await page.goto(f"{served}/admin")
    await page.get_by_role("textbox", name="Token").wait_for()
    await page.screenshot(path=str(ARTIFACTS / "login.png"))
    await page.get_by_role("textbox", name="Token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Unlock").click()

    # overview: services, runs, sessions, logs
    overview = page.locator("#view-overview")
    await page.locator("#overview-services").get_by_text("runner-1").wait_for()
    await page.locator("#overview-runs").get_by_text("run-7").wait_for()
    await overview.get_by_role("button", name=f"Open session {world['session']}").wait_for()
    await overview.get_by_text("turn started").first.wait_for()
    # the session is an HttpOnly cookie: nothing the page's script (or an injected one) can read
    assert await page.evaluate("document.cookie") == ""
    assert await page.evaluate("JSON.stringify(sessionStorage) + JSON.stringify(localStorage)") == "{}{}"
    cookies = await page.context.cookies()
    assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [("cb_admin", True, "Strict")]
    assert ADMIN_TOKEN not in cookies[0]["value"]
    await page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)

    # sessions list → detail with the timeline
    await page.get_by_role("link", name="Sessions").click()
    sessions = page.locator("#view-sessions")
    await sessions.get_by_role("button", name=f"Open session {world['session']}").click()
    timeline = page.locator("#session-timeline li")
    await timeline.first.wait_for()
    assert await timeline.count() == 5
    await page.locator("#session-timeline").get_by_text("exec_command: pytest tests/api -x").wait_for()
    await page.locator("#session-participants").get_by_text("not mapped").first.wait_for()
    await page.locator("#session-logs").get_by_text("run completed").wait_for()
    await page.screenshot(path=str(ARTIFACTS / "session-timeline.png"), full_page=True)

    # reset the thread from the detail view (the confirm dialog is accepted)
    await page.get_by_role("button", name="Reset thread").click()
    await page.get_by_role("alert").get_by_text("Thread reset").wait_for()
    await page.locator("#session-timeline").get_by_text("thread reset by admin").wait_for()
    await wait_for(
        lambda: _thread_cleared(redis, keys, world["session"]), timeout_s=10, what="thread_id to be cleared"
    )
    await page.locator("#session-facts").get_by_text("next turn starts a fresh thread").wait_for()
    # a busy session cannot be deleted from the page
    await page.goto(f"{served}/admin#sessions/{world['busy']}")
    await page.locator("#session-title").get_by_text(world["busy"]).wait_for()
    assert await page.get_by_role("button", name="Delete session").is_disabled()

    # jobs
    await page.get_by_role("link", name="Jobs").click()
    await page.locator("#jobs-table").get_by_text("ci-watch").wait_for()
    await page.screenshot(path=str(ARTIFACTS / "jobs.png"), full_page=True)

    # auth profiles: add an API-key profile; the key never comes back to the page
    await page.get_by_role("link", name="Auth profiles").click()
    await page.locator("#apikey-name").fill("ci-key")
    await page.locator("#apikey-key").fill("sk-proj-BROWSERTEST0123456789abcd")
    await page.get_by_role("button", name="Add", exact=True).click()
    await page.locator("#profiles-table").get_by_text("ci-key").wait_for()
    await page.get_by_role("button", name="Activate ci-key").click()
    await page.locator("#profiles-table").get_by_text("Active profile: ci-key").wait_for()
    assert "BROWSERTEST" not in await page.content()
    await page.locator("#upload-name").fill("team")
    await page.locator("#upload-file").set_input_files(
        files=[
            {"name": "auth.json", "mimeType": "application/json", "buffer": json.dumps(CHATGPT_AUTH).encode()}
        ]
    )
    await page.get_by_role("button", name="Upload", exact=True).click()
    await page.get_by_role("alert").get_by_text("Uploaded auth.json as team").wait_for()
    team_row = page.locator("#profiles-table tr", has_text="chatgpt")
    await team_row.get_by_text(world["busy"]).wait_for()  # the session that uses the profile
    assert json.loads((codex_home(data_root, "team") / "auth.json").read_text()) == CHATGPT_AUTH
    await page.screenshot(path=str(ARTIFACTS / "profiles.png"), full_page=True)

    # GitHub authors: a bad email is flagged on its field, then a good mapping is saved
    await page.get_by_role("link", name="GitHub authors").click()
    form = page.locator("#author-form")
    await form.get_by_label("Platform user id").fill("U01ALICE")
    await form.get_by_label("GitHub name").fill("Alice Liddell")
    await form.get_by_label("GitHub email").fill("not-an-email")
    await form.get_by_role("button", name="Save mapping").click()
    await page.get_by_role("alert").get_by_text("valid email").wait_for()
    assert await form.get_by_label("GitHub email").get_attribute("aria-invalid") == "true"
    await form.get_by_label("GitHub email").fill("alice@example.com")
    await form.get_by_role("button", name="Save mapping").click()
    await page.locator("#authors-table").get_by_text("alice@example.com").wait_for()
    stored = await redis.hget(keys.github_authors("slack"), "U01ALICE")  # type: ignore[misc]
    assert json.loads(stored) == {"name": "Alice Liddell", "email": "alice@example.com", "source": "manual"}
    await page.screenshot(path=str(ARTIFACTS / "github-authors.png"), full_page=True)

    # the session view now shows the mapping for that participant
    await page.goto(f"{served}/admin#sessions/{world['session']}")
    await page.locator("#session-participants").get_by_text("Alice Liddell <alice@example.com>").wait_for()
    await page.screenshot(path=str(ARTIFACTS / "sessions.png"), full_page=True)

    assert problems == []
    assert foreign == []
    await page.close()


async def _thread_cleared(redis: Redis, keys: Keys, session_key: str) -> bool:
    return not await redis.hexists(keys.session(session_key), "thread_id")  # type: ignore[misc]


async def test_wrong_token_is_refused_and_asked_again(served: str, browser: Any) -> None:
    page = await browser.new_page()
    page.set_default_timeout(15_000)
    await page.goto(f"{served}/admin#sessions")
    await page.get_by_role("textbox", name="Token").fill("wrong-token")
    await page.get_by_role("button", name="Unlock").click()
    await page.get_by_role("alert").get_by_text("The token was not accepted.").wait_for()
    assert await page.get_by_role("textbox", name="Token").is_visible()
    assert await page.context.cookies() == []
    await page.close()


async def test_the_one_time_link_up_prints_logs_in_once(
    served: str, browser: Any, redis_url: str, redis: Redis, keys: Keys, data_root: Path
) -> None:
    await seed(redis, keys, data_root)
    code = await admin_login.issue_code(redis_url, keys, ttl_s=60)
    first = await browser.new_page()
    first.set_default_timeout(15_000)
    await first.goto(f"{served}/admin#code={code}")
    await first.locator("#overview-services").get_by_text("runner-1").wait_for()
    assert code not in first.url  # taken out of the address bar (and history) at once
    assert await first.get_by_role("button", name="Sign out").is_visible()
    # signing out ends the cookie session: the page asks for the token again
    await first.get_by_role("button", name="Sign out").click()
    await first.get_by_role("textbox", name="Token").wait_for()
    assert await first.context.cookies() == []
    await first.close()

    second = await (await browser.new_context()).new_page()
    second.set_default_timeout(15_000)
    await second.goto(f"{served}/admin#code={code}")
    await second.get_by_role("alert").get_by_text("already used or has expired").wait_for()
    assert await second.get_by_role("textbox", name="Token").is_visible()
    await second.close()
