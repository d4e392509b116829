"""Issue 20 item 3, the admin side: every admin action lands once on the audit trail under the
admin identity; search filters by user, thread, kind and time; the export is valid JSONL; no
credential an admin handled is on the trail."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from codex_broker.libs import audit
from codex_broker.libs.contracts import AuditRecord, decode
from codex_broker.libs.keys import Keys
from tests.http_api.admin.conftest import ADMIN_HEADERS, BASE_URL, ClientFactory, seed_session

API_KEY = "sk-proj-AUDITKEY0123456789abcdefghij"


async def trail(redis: Redis, keys: Keys) -> list[AuditRecord]:
    return [decode(AuditRecord, f[b"data"]) for _, f in await redis.xrange(keys.audit_stream)]


async def test_every_admin_action_lands_once_with_the_admin_identity(
    api: httpx.AsyncClient, redis: Redis, keys: Keys, data_root: Path
) -> None:
    sk = await seed_session(redis, keys, data_root)
    other = await seed_session(redis, keys, data_root, root="1700000000.000200")
    calls = [
        ("post", "/admin/api/auth-profiles", {"name": "team", "apiKey": API_KEY}),
        ("post", "/admin/api/auth-profiles/team/activate", None),
        ("post", f"/admin/api/sessions/{sk}/auth-profile", {"profile": "team"}),
        ("post", f"/admin/api/sessions/{sk}/reset", None),
        ("delete", f"/admin/api/sessions/{other}", None),
        (
            "post",
            "/admin/api/github-authors",
            {"platform": "slack", "userId": "U1", "name": "A", "email": "a@x.io"},
        ),
        ("delete", "/admin/api/github-authors/U1?platform=slack", None),
        ("post", "/admin/api/auth-profiles", {"name": "spare", "apiKey": API_KEY}),
        ("delete", "/admin/api/auth-profiles/spare", None),
    ]
    for method, path, body in calls:
        response = await api.request(method.upper(), path, json=body)
        assert response.status_code in (200, 201), (path, response.text)
    refused = await api.post("/admin/api/auth-profiles/missing/activate")  # fails: not an action done
    assert refused.status_code == 404
    records = await trail(redis, keys)
    assert [r.action for r in records] == [
        "profile.save",
        "profile.activate",
        "session.auth_profile",
        "session.reset",
        "session.delete",
        "github_author.set",
        "github_author.delete",
        "profile.save",
        "profile.delete",
    ]
    assert {r.kind for r in records} == {"admin"}
    assert {r.actor for r in records} == {"admin:token@127.0.0.1"}
    assert [r.session_key for r in records if r.action.startswith("session.")] == [sk, sk, other]
    raw = b"".join(f[b"data"] for _, f in await redis.xrange(keys.audit_stream))
    assert API_KEY.encode() not in raw


async def test_a_cookie_session_is_its_own_admin_identity(
    admin_client: ClientFactory, redis: Redis, keys: Keys, data_root: Path
) -> None:
    http = await admin_client(headers={"content-type": "application/json", "origin": BASE_URL})
    login = await http.post("/admin/api/login", json={"token": ADMIN_HEADERS["x-admin-token"]})
    assert login.status_code == 200, login.text
    sk = await seed_session(redis, keys, data_root)
    assert (await http.post(f"/admin/api/sessions/{sk}/reset")).status_code == 200
    [record] = await trail(redis, keys)
    assert record.actor.startswith("admin:session-") and record.actor.endswith("@127.0.0.1")
    assert http.cookies.get("cb_admin") not in record.actor


async def test_search_filters_and_the_jsonl_export(api: httpx.AsyncClient, redis: Redis, keys: Keys) -> None:
    log = audit.AuditLog(keys)
    base = int(time.time() * 1000) - 10_000
    rows = [
        audit.make("turn", "U1", actor_name="Alice", session_key="slack:C1:1.0", at_ms=base),
        audit.make("command", "codex", session_key="slack:C1:1.0", summary="ls", exit_code=0, at_ms=base + 1),
        audit.make("turn", "U2", actor_name="Bob", session_key="slack:C2:2.0", at_ms=base + 2),
    ]
    for row in rows:
        pipe = redis.pipeline(transaction=False)
        log.add(pipe, row)
        await pipe.execute()
    by_user = (await api.get("/admin/api/audit", params={"user": "alice"})).json()["items"]
    assert [r["actor"] for r in by_user] == ["U1"]
    by_thread = (await api.get("/admin/api/audit", params={"thread": "slack:C1"})).json()["items"]
    assert [r["kind"] for r in by_thread] == ["command", "turn"]  # newest first
    by_kind = (await api.get("/admin/api/audit", params={"kind": "turn"})).json()["items"]
    assert [r["actor"] for r in by_kind] == ["U2", "U1"]
    future = (
        await api.get("/admin/api/audit", params={"since": str(int(time.time() * 1000) + 60_000)})
    ).json()
    assert future["items"] == []
    export = await api.get("/admin/api/audit/export")
    assert export.status_code == 200 and export.headers["content-type"].startswith("application/x-ndjson")
    lines = export.text.splitlines()
    assert len(lines) == 3 and export.text.endswith("\n")
    decoded = [AuditRecord.model_validate(json.loads(line)) for line in lines]
    assert [r.audit_id for r in decoded] == [r.audit_id for r in rows]  # oldest first, whole records
    only_bob = (await api.get("/admin/api/audit/export", params={"user": "bob"})).text.splitlines()
    assert [json.loads(line)["actor"] for line in only_bob] == ["U2"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"kind": "nope"}, "kind"),
        ({"since": "yesterday"}, "since"),
        ({"until": "-1"}, "until"),
        ({"since": "20", "until": "10"}, "until"),
        ({"limit": "0"}, "limit"),
        ({"user": "a\x01b"}, "user"),
    ],
)
async def test_bad_filters_are_400_naming_the_field(api: httpx.AsyncClient, params: dict, field: str) -> None:
    response = await api.get("/admin/api/audit", params=params)
    assert response.status_code == 400 and response.json()["field"] == field


async def test_the_audit_api_needs_the_admin_token(admin_client: ClientFactory) -> None:
    anonymous = await admin_client()
    assert (await anonymous.get("/admin/api/audit")).status_code == 401
    assert (await anonymous.get("/admin/api/audit/export")).status_code == 401
