"""Issue 20 item 3: every file Codex posts through the http-api lands once on the audit trail —
its name and type, never its content — and a refused post lands nowhere."""

from __future__ import annotations

import base64

import httpx
from redis.asyncio import Redis

from codex_broker.libs.contracts import AuditRecord, decode
from codex_broker.libs.keys import Keys
from tests.http_api.conftest import Session
from tests.http_api.support import Responder


async def test_each_posted_file_is_one_record_without_its_content(
    client: httpx.AsyncClient, session: Session, responder: Responder, redis: Redis, keys: Keys
) -> None:
    (session.workspace / "report.txt").write_bytes(b"REPORT-CONTENT-7")
    inline = {"contentBase64": base64.b64encode(b"INLINE-CONTENT-9").decode(), "filename": "notes.txt"}
    for body in (inline, {"filePath": "report.txt"}):
        response = await client.post("/chat/post-file", json=session.body(**body), headers=session.headers)
        assert response.status_code == 200, response.text
    refused = await client.post(
        "/chat/post-file", json=session.body(filePath="/etc/passwd"), headers=session.headers
    )
    assert refused.status_code == 400
    entries = await redis.xrange(keys.audit_stream)
    records = [decode(AuditRecord, f[b"data"]) for _, f in entries]
    assert [(r.kind, r.actor, r.summary, r.action) for r in records] == [
        ("file", "codex", "notes.txt", "posted"),
        ("file", "codex", "report.txt", "posted"),
    ]
    assert {r.session_key for r in records} == {session.coords.session_key}
    assert [r.details["action_id"] for r in records] == [a.action_id for a in responder.actions]
    raw = b"".join(f[b"data"] for _, f in entries)
    assert b"CONTENT" not in raw and session.token.encode() not in raw
