"""Request logs: one line per request with ids and shapes, never content or tokens."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import httpx
import pytest

from codex_broker.http_api.app import create_app
from codex_broker.http_api.config import Settings
from codex_broker.http_api.context import AppContext
from codex_broker.libs.logs import JsonFormatter, Redactor
from tests.http_api.conftest import Session
from tests.http_api.support import Responder

SECRETS = ["MESSAGE-TEXT-42", "CARD-BODY-42", "FILE-BYTES-42", "COMMENT-42", "REASON-42", "ALT-42", "RICH-42"]


def request_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    formatter = JsonFormatter("http-api", Redactor())
    return [
        formatter.format(record)
        for record in caplog.records
        if record.name == "codex_broker.http_api.requests"
    ]


async def test_request_log_redacts_content_and_tokens(
    client: httpx.AsyncClient, session: Session, responder: Responder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="codex_broker.http_api.requests")
    headers = {**session.headers, "x-broker-session-token": session.token}
    await client.post(
        "/chat/post-message",
        json=session.body(
            text="MESSAGE-TEXT-42", card=json.dumps({"t": "CARD-BODY-42"}), kind="wait", reason="REASON-42"
        ),
        headers=headers,
    )
    await client.post(
        "/chat/post-message",
        json=session.body(text="x", rich_text={"RICH-42": 1}, format="rich_text", token=session.token),
        headers=headers,
    )
    await client.post(
        "/chat/post-file",
        json=session.body(
            contentBase64=base64.b64encode(b"FILE-BYTES-42").decode(),
            filename="f.txt",
            initialComment="COMMENT-42",
            altText="ALT-42",
        ),
        headers=headers,
    )
    await client.post("/chat/post-message", json=session.body(card="{bad CARD-BODY-42"), headers=headers)
    lines = request_lines(caplog)
    assert len(lines) == 4
    joined = "\n".join(lines)
    for secret in [*SECRETS, session.token, base64.b64encode(b"FILE-BYTES-42").decode()]:
        assert secret not in joined
    first = json.loads(lines[0])
    assert first["route"] == "/chat/post-message" and first["status"] == 200
    assert first["input"]["text"] == "[redacted 15 chars]"
    assert first["input"]["conversationId"] == "C1"  # ids stay for debugging
    assert json.loads(lines[-1])["error"] == "invalid_json_field"


async def test_raw_request_log_keeps_text_but_not_tokens_or_file_bytes(
    api_settings: Settings, session: Session, responder: Responder, data_root: Path
) -> None:
    settings = api_settings.model_copy(update={"log_raw_http_requests": True})
    context = AppContext.create(settings)
    transport = httpx.ASGITransport(app=create_app(context))
    payload = base64.b64encode(b"FILE-BYTES-42" * 200).decode()
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            headers = {**session.headers, "x-broker-session-token": session.token}
            await http.post("/chat/post-message", json=session.body(text="MESSAGE-TEXT-42"), headers=headers)
            await http.post(
                "/chat/post-file",
                json=session.body(contentBase64=payload, filename="f.txt", token=session.token),
                headers=headers,
            )
    finally:
        await context.aclose()
    files = sorted((data_root / "logs" / "raw" / "http-requests").glob("*.jsonl"))
    joined = "".join(f.read_text() for f in files)
    assert "MESSAGE-TEXT-42" in joined, "raw logs keep what the request said"
    assert session.token not in joined and payload not in joined
    assert "[base64" in joined
