"""Pure parts of the admin API: validation, log record shaping, session summaries."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from codex_broker.http_api.admin import logtail, validation
from codex_broker.http_api.admin.openapi_paths import EMAIL_PATTERN
from codex_broker.http_api.admin.sessions import display_path, is_busy, summarize
from codex_broker.http_api.app import create_app
from codex_broker.http_api.errors import ApiError
from codex_broker.libs.authors import valid_email
from codex_broker.libs.keys import Keys
from codex_broker.libs.logs import REDACTED, Redactor
from tests.helpers import free_port
from tests.http_api.admin.conftest import ADMIN_HEADERS, ADMIN_TOKEN, make_context


def test_page_parsing() -> None:
    assert validation.page({}) == (0, 50)
    assert validation.page({"offset": "10", "limit": "5"}) == (10, 5)
    assert validation.page({"limit": "999"}) == (0, 200)
    for bad in ({"limit": "0"}, {"limit": "1.5"}, {"offset": "-1"}, {"limit": "9" * 20}):
        with pytest.raises(ApiError):
            validation.page(bad)


def test_auth_json_kinds() -> None:
    tokens = {"id_token": "i", "access_token": "a", "refresh_token": "r"}
    assert validation.auth_json({"tokens": tokens})[1] == "chatgpt"
    assert validation.auth_json('{"OPENAI_API_KEY": "sk-x"}')[1] == "apikey"
    with pytest.raises(ApiError) as info:
        validation.auth_json({"tokens": {**tokens, "account_id": 5}})
    assert info.value.code == "invalid_auth_json"
    with pytest.raises(ApiError):
        validation.auth_json({"auth_mode": 1, "OPENAI_API_KEY": "sk-x"})


def test_log_records_are_redacted_and_cut() -> None:
    redactor = Redactor(["super-secret-value"])
    records = logtail.parse_records(
        [
            '{"msg": "has super-secret-value", "token": "abc", "body": "' + "z" * 5000 + '"}',
            "plain text line ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
            "[1, 2]",
        ],
        redactor,
        service="svc",
    )
    assert records[0]["msg"] == f"has {REDACTED}" and records[0]["token"] == REDACTED
    assert len(records[0]["body"]) < 2100 and records[0]["service"] == "svc"
    assert "ghp_" not in records[1]["msg"]
    assert records[2] == {"msg": "[1, 2]", "service": "svc"}


def test_service_dirs_skip_fan_out_and_missing_root(tmp_path: Path) -> None:
    assert logtail.service_dirs(tmp_path / "missing") == []
    for name in ("orchestrator", "sessions", "jobs", "raw", "http-api"):
        (tmp_path / name).mkdir()
    assert [p.name for p in logtail.service_dirs(tmp_path)] == ["http-api", "orchestrator"]


def test_summary_and_paths() -> None:
    row = summarize("slack:C1:1.2", {"thread_id": "", "total_tokens": "x"}, {}, 0, Path("/d"))
    assert row["platform"] == "slack" and row["thread_id"] is None and row["total_tokens"] is None
    assert row["state"] == "idle"
    assert display_path("/d/sessions/a/workspace", Path("/d")) == "sessions/a/workspace"
    assert display_path("/elsewhere/ws", Path("/d")) == "ws"
    assert is_busy({"state": "running"}, False) and is_busy({"state": "idle"}, True)
    assert not is_busy({"state": "idle"}, False)


async def test_redis_down_is_503_not_a_crash(keys: Keys, tmp_path: Path) -> None:
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    app = create_app(make_context(dead, keys, tmp_path, ADMIN_TOKEN))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=ADMIN_HEADERS
    ) as http:
        response = await http.get("/admin/api/sessions")
    await dead.aclose()
    assert response.status_code == 503
    assert response.json() == {"ok": False, "error": "redis_unavailable"}


@pytest.mark.parametrize(
    "email",
    [
        "a@example.com",
        "a.b+c@sub.example.co",
        "a@b",
        "a b@example.com",
        "a@ex_ample.com",
        "<a>@x.io",
        "a@-x.io",
    ],
)
def test_openapi_email_pattern_agrees_with_the_hook_rule(email: str) -> None:
    assert (re.match(EMAIL_PATTERN, email) is not None) == valid_email(email)
