"""The orchestrator's side of Codex's git identity: GitHub authors inferred from profile emails
and the co-author modal's submission (the commit hook's token is the runner's, tested there)."""

from __future__ import annotations

import json
from collections.abc import Callable

from codex_broker.libs.contracts import ActionPayload, Actor, EphemeralPayload, InboundEvent
from codex_broker.orchestrator.config import Settings
from tests.helpers import wait_for
from tests.orchestrator.harness import Driver, message


async def test_a_profile_email_becomes_an_inferred_author(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for()
    await driver.start(settings)
    event = message("commit the fix").model_copy(
        update={"actor": Actor(id="U7", display_name="Grace", email="grace@example.com")}
    )
    await driver.inbound(event)
    await driver.wait_runs(1)

    assert not (settings.data_root / "sessions").exists(), "routing does no file-system work"

    async def inferred() -> dict | None:
        raw = await driver.redis.hget(driver.keys.github_authors("slack"), "U7")
        return json.loads(raw) if raw else None

    mapping = await wait_for(inferred, what="inferred author")
    assert mapping["email"] == "grace@example.com" and mapping["source"] == "inferred"


async def test_coauthor_submission_is_stored_and_confirmed(
    driver: Driver, settings_for: Callable[..., Settings]
) -> None:
    await driver.start(settings_for())
    first = message("start a session", user="U1", name="Alice")
    await driver.inbound(first)
    await driver.wait_runs(1)
    submit = InboundEvent(
        event_id="slack-action:coauthor-1",
        platform="slack",
        conversation_id=first.conversation_id,
        root_message_id=first.root_message_id,
        kind="action",
        actor=Actor(id="U1", display_name="Alice"),
        action=ActionPayload(
            action="coauthor_submit",
            values={"github_name": "Alice Doe", "github_email": "alice@example.com"},
        ),
    )
    await driver.inbound(submit)
    confirmation = await driver.wait_outbound(
        lambda a: isinstance(a.payload, EphemeralPayload) and a.payload.user_id == "U1",
        what="co-author confirmation",
    )
    assert "Nothing saved" not in confirmation.payload.text
    raw = await driver.redis.hget(driver.keys.github_authors("slack"), "U1")
    assert raw is not None and json.loads(raw)["email"] == "alice@example.com"
