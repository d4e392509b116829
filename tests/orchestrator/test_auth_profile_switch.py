"""Issue 16 item 4: activating an auth profile in the admin API makes the next new thread use it
at once; existing threads keep theirs until the operator moves them. The real http-api admin app
and the orchestrator share one Redis, as in a deployment."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest_asyncio
from redis.asyncio import Redis

from codex_broker.http_api.app import create_app
from codex_broker.libs.keys import Keys
from codex_broker.orchestrator.config import Settings
from tests.http_api.admin.conftest import ADMIN_HEADERS, ADMIN_TOKEN, BASE_URL, LOOPBACK, make_context
from tests.orchestrator.harness import Driver, FakeRunnerScript, message

API_KEY = "sk-proj-TESTKEY0123456789abcdefghij"


@pytest_asyncio.fixture
async def admin(redis: Redis, keys: Keys, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    data_root = tmp_path / "data"
    data_root.mkdir(exist_ok=True)
    app = create_app(make_context(redis, keys, data_root, ADMIN_TOKEN))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=LOOPBACK),
        base_url=BASE_URL,
        headers={**ADMIN_HEADERS, "content-type": "application/json"},
    ) as client:
        yield client


async def _finish_first_turn(driver: Driver, text: str) -> tuple[str, str]:
    first = message(text)
    await driver.inbound(first)
    [request] = [r for r in await driver.wait_runs(1) if text in (r.input[0].text or "")][-1:]
    runner = FakeRunnerScript(driver, request)
    await runner.claim(thread_id=f"thread-{first.message_id}")
    await runner.emit("completed", text="done")
    await driver.wait_outbound(lambda a: a.action_id == f"final:{request.run_id}", what="finish")
    return first.root_message_id, request.auth_profile


async def test_activation_changes_the_next_new_threads_profile_not_the_existing_ones(
    driver: Driver, settings_for: Callable[..., Settings], admin: httpx.AsyncClient
) -> None:
    await driver.start(settings_for())
    old_root, old_profile = await _finish_first_turn(driver, "before the switch")
    assert old_profile == "default"

    saved = await admin.post("/admin/api/auth-profiles", json={"name": "team-b", "apiKey": API_KEY})
    assert saved.status_code == 201
    activated = await admin.post("/admin/api/auth-profiles/team-b/activate")
    assert activated.status_code == 200

    await driver.inbound(message("after the switch"))
    requests = await driver.wait_runs(2)
    assert requests[-1].auth_profile == "team-b" and requests[-1].thread_id is None
    new_session = await driver.redis.hget(driver.keys.session(requests[-1].session_key), "auth_profile")
    assert new_session == b"team-b"

    await driver.inbound(message("still the old thread", mention=False, root=old_root))
    requests = await driver.wait_runs(3)
    assert requests[-1].session_key == requests[0].session_key
    assert requests[-1].auth_profile == "default" and requests[-1].thread_id  # kept, same Codex thread


async def test_moving_a_session_switches_its_next_turn_to_a_fresh_thread_there(
    driver: Driver, settings_for: Callable[..., Settings], admin: httpx.AsyncClient
) -> None:
    await driver.start(settings_for())
    root, _ = await _finish_first_turn(driver, "to be moved")
    [first] = await driver.run_requests()
    await admin.post("/admin/api/auth-profiles", json={"name": "team-c", "apiKey": API_KEY})

    moved = await admin.post(
        f"/admin/api/sessions/{first.session_key}/auth-profile", json={"profile": "team-c"}
    )
    assert moved.status_code == 200 and moved.json()["previous"] == "default"
    listed = (await admin.get("/admin/api/sessions")).json()["items"]
    assert [s["auth_profile"] for s in listed if s["session_key"] == first.session_key] == ["team-c"]

    await driver.inbound(message("after the move", mention=False, root=root))
    requests = await driver.wait_runs(2)
    assert requests[-1].auth_profile == "team-c"
    assert requests[-1].thread_id is None  # its rollout lived in the old profile's CODEX_HOME


async def test_moving_needs_a_known_profile_and_session(admin: httpx.AsyncClient) -> None:
    unknown = await admin.post("/admin/api/sessions/slack:C1:1.0/auth-profile", json={"profile": "nope"})
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_profile"
    missing = await admin.post("/admin/api/sessions/slack:C1:1.0/auth-profile", json={"profile": "default"})
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_session"
    invalid = await admin.post("/admin/api/sessions/slack:C1:1.0/auth-profile", json={"profile": "../x"})
    assert invalid.status_code == 400 and invalid.json()["error"] == "invalid_profile_name"
