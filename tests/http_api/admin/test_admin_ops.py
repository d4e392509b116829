"""The admin page's rollout section over the API: the release mix, the Drain button's route
(same control as `codex-broker drain`, logged with who pressed it), a session's transcript and
its web-chat link, and each auth profile's Codex account."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from codex_broker.http_api.admin import ops, transcript
from codex_broker.libs.contracts import AuditRecord, RunControl, decode
from codex_broker.libs.keys import Keys
from tests.http_api.admin.conftest import ClientFactory, seed_session


async def beat(
    redis: Redis, keys: Keys, service: str, instance: str, version: str | None, **extra: object
) -> None:
    body = {"service": service, "instance": instance, "at": time.time(), **extra}
    if version is not None:
        body["version"] = version
    await redis.set(keys.heartbeat(service, instance), json.dumps(body), ex=60)


def test_release_view_flags_a_mix_and_lists_runners() -> None:
    beats = [
        {"service": "codex-runner", "instance": "r1", "version": "0.2.0", "active": 1, "capacity": 4},
        {"service": "orchestrator", "instance": "o1", "version": "0.2.0"},
    ]
    assert ops.release_view(beats)["mixed"] is False
    older = [*beats, {"service": "codex-runner", "instance": "r0", "draining": True}]
    view = ops.release_view(older)
    assert view["mixed"] is True
    assert view["versions"] == {
        "0.2.0": ["codex-runner/r1", "orchestrator/o1"],
        "unknown": ["codex-runner/r0"],
    }
    assert [(r["instance"], r["version"], r["draining"]) for r in view["runners"]] == [
        ("r1", "0.2.0", False),
        ("r0", "unknown", True),
    ]


def test_transcript_from_timeline_is_oldest_first_with_speakers() -> None:
    newest_first = [
        {"at_ms": 4, "kind": "run", "summary": "run r1 completed"},
        {"at_ms": 3, "kind": "answer", "summary": "Fixed: the retry had no backoff."},
        {"at_ms": 2, "kind": "steer", "summary": "bob: also check api/"},
        {"at_ms": 1, "kind": "message", "summary": "alice: fix the flaky test"},
    ]
    assert transcript.from_timeline(newest_first) == [
        {"at_ms": 1, "role": "user", "author": "alice", "text": "fix the flaky test"},
        {"at_ms": 2, "role": "user", "author": "bob", "text": "also check api/"},
        {"at_ms": 3, "role": "codex", "author": "Codex", "text": "Fixed: the retry had no backoff."},
    ]


def test_transcript_from_web_messages_skips_private_notes_and_empty_views() -> None:
    records = [
        {
            "id": "m0002",
            "author": {"id": "codex", "name": "Codex", "bot": True},
            "text": "Done.",
            "files": [],
        },
        {"id": "m0001", "author": {"id": "ann", "name": "ann", "bot": False}, "text": "hi", "created_ms": 5},
        {"id": "m0003", "author": {"id": "codex", "bot": True}, "text": "only you", "only_for": "ann"},
        {"id": "m0004", "author": {"id": "codex", "bot": True}, "text": "", "kind": "view"},
    ]
    turns = transcript.from_web_messages(records)
    assert [(t["role"], t["author"], t["text"]) for t in turns] == [
        ("user", "ann", "hi"),
        ("codex", "Codex", "Done."),
    ]


def test_web_chat_link_only_for_web_sessions() -> None:
    assert (
        transcript.web_chat_link("http://127.0.0.1:3100/", "web:chat:m0001")
        == "http://127.0.0.1:3100/#t=m0001"
    )
    assert transcript.web_chat_link("https://chat.example/", "slack:C1:1.2") is None
    assert transcript.web_chat_link(None, "web:chat:m0001") is None


async def test_drain_sends_the_control_and_logs_who(
    api: httpx.AsyncClient, redis: Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    await beat(redis, keys, "codex-runner", "runner-a", "0.2.0", active=2, capacity=4)
    caplog.set_level(logging.INFO, logger="codex_broker.http_api.admin.ops")
    response = await api.post("/admin/api/ops/runners/runner-a/drain", json={})
    assert response.status_code == 200, response.text
    assert response.json()["active"] == 2
    entries = await redis.xrange(keys.runner_control_stream("runner-a"))
    assert len(entries) == 1
    control = decode(RunControl, entries[0][1][b"data"])
    assert control.kind == "drain" and control.control_id == response.json()["control_id"]
    audit = [r for r in caplog.records if r.getMessage() == "admin drained runner"]
    assert [(r.runner, r.admin) for r in audit] == [("runner-a", "admin:token@127.0.0.1")]  # type: ignore[attr-defined]
    trail = [decode(AuditRecord, fields[b"data"]) for _, fields in await redis.xrange(keys.audit_stream)]
    assert [(r.kind, r.action, r.summary, r.actor) for r in trail] == [
        ("admin", "runner.drain", "runner-a", "admin:token@127.0.0.1")
    ]


async def test_drain_of_an_unknown_runner_is_404_and_needs_the_admin(
    api: httpx.AsyncClient, admin_client: ClientFactory, redis: Redis, keys: Keys
) -> None:
    response = await api.post("/admin/api/ops/runners/ghost/drain", json={})
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_runner"
    assert await redis.exists(keys.runner_control_stream("ghost")) == 0
    anonymous = await admin_client(headers={"content-type": "application/json"})
    assert (await anonymous.post("/admin/api/ops/runners/ghost/drain", json={})).status_code == 401


async def test_release_route_reports_the_mix(api: httpx.AsyncClient, redis: Redis, keys: Keys) -> None:
    await beat(redis, keys, "codex-runner", "runner-a", "0.2.0")
    await beat(redis, keys, "orchestrator", "orch-1", None)
    body = (await api.get("/admin/api/ops/release")).json()
    assert body["mixed"] is True
    assert body["versions"] == {"0.2.0": ["codex-runner/runner-a"], "unknown": ["orchestrator/orch-1"]}


async def test_transcript_of_a_web_session_reads_the_web_thread(
    admin_client: ClientFactory, redis: Redis, keys: Keys, data_root: Path
) -> None:
    client = await admin_client(
        headers={"x-admin-token": "admin-test-token-0123456789"}, web_public_url="https://chat.example/"
    )
    sk = await seed_session(redis, keys, data_root, platform="web", conversation="chat", root="m0001")
    await redis.hset(  # type: ignore[misc]
        keys.web_messages("m0001"),
        mapping={
            "m0001": json.dumps(
                {"id": "m0001", "author": {"id": "ann", "name": "ann", "bot": False}, "text": "hi"}
            ),
            "m0002": json.dumps(
                {"id": "m0002", "author": {"id": "codex", "name": "Codex", "bot": True}, "text": "hello"}
            ),
        },
    )
    body = (await client.get(f"/admin/api/ops/transcript/{sk}")).json()
    assert body["web_chat_url"] == "https://chat.example/#t=m0001"
    assert body["source"] == "web-thread"
    assert [m["text"] for m in body["messages"]] == ["hi", "hello"]
    missing = await client.get("/admin/api/ops/transcript/web:chat:nope")
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_session"


async def test_accounts_without_auth_json_fail_with_a_reason(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    body = (await api.get("/admin/api/ops/accounts")).json()
    assert [(a["profile"], a["ok"]) for a in body["accounts"]] == [("default", False)]
    assert "no auth.json" in body["accounts"][0]["error"]
