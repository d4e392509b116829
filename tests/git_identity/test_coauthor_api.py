"""The co-author endpoints' error conventions and access rules (the app in-process, real Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr
from redis.asyncio import Redis

from codex_broker.http_api.context import AppContext
from codex_broker.libs.authors import Author
from codex_broker.libs.hook_token import ensure_hook_token, read_hook_file
from codex_broker.libs.keys import Keys
from tests.git_identity.support import api_settings, make_session, mounted_app

ANN = Author("Ann Lee", "ann@example.com", "manual")


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    return tmp_path / "data"


ADMIN_TOKEN = "coauthor-admin-token-0123456789"
ADMIN_HEADERS = {"x-admin-token": ADMIN_TOKEN}


async def _client(ctx: AppContext, client_host: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=mounted_app(ctx), client=(client_host, 5555))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


@pytest_asyncio.fixture
async def ctx(redis_url: str, key_prefix: str, data_root: Path) -> AsyncIterator[AppContext]:
    context = AppContext.create(
        api_settings(redis_url, key_prefix, data_root, broker_admin_token=SecretStr(ADMIN_TOKEN))
    )
    yield context
    await context.aclose()


async def test_error_codes(ctx: AppContext, redis: Redis, keys: Keys, data_root: Path) -> None:
    session = await make_session(redis, keys, data_root, {"U1": "Ann"})
    other = await make_session(redis, keys, data_root, {"U9": "Zed"})
    hook = read_hook_file(session.hook_file)
    assert hook is not None
    hook_headers = {"authorization": f"Bearer {hook[1]}"}
    async with await _client(ctx) as http:
        cases = [
            (http.post("/git/coauthors/resolve"), 401, "session_token_required"),
            (
                http.post("/git/coauthors/resolve", headers={"authorization": "Bearer nope"}),
                401,
                "invalid_session_token",
            ),
            (
                http.post("/git/coauthors/resolve", json={"sessionKey": other.key}, headers=session.headers),
                403,
                "session_mismatch",
            ),
            (
                http.post("/git/coauthors/resolve", json={"sessionKey": 5}, headers=session.headers),
                400,
                "invalid_session_key",
            ),
            (
                http.post("/git/coauthors/resolve", json={"prompt": "maybe"}, headers=session.headers),
                400,
                "invalid_prompt",
            ),
            (
                http.post("/git/coauthors/resolve", json={"message": 1}, headers=session.headers),
                400,
                "invalid_message",
            ),
            (
                http.post("/git/coauthors/resolve", content=b"[1]", headers=session.headers),
                400,
                "invalid_json_body",
            ),
            (
                http.post("/git/coauthors/configure", json={"excluded": "U1"}, headers=hook_headers),
                401,
                "invalid_session_token",
            ),
            (
                http.post("/git/coauthors/configure", json={"excluded": [1]}, headers=session.headers),
                400,
                "invalid_excluded",
            ),
            (
                http.post(
                    "/git/coauthors/configure", json={"excluded": [], "credit": []}, headers=session.headers
                ),
                400,
                "provide_at_most_one",
            ),
            (
                http.post("/git/coauthors/configure", json={"allowMissing": 3}, headers=session.headers),
                400,
                "invalid_allow_missing",
            ),
            (
                http.get(
                    "/git/coauthors/status", params={"sessionKey": "slack:nope:1"}, headers=ADMIN_HEADERS
                ),
                404,
                "unknown_session",
            ),
            (http.delete("/git/coauthors/status"), 405, None),
        ]
        for request, status, code in cases:
            response = await request
            assert response.status_code == status, (code, response.text)
            assert response.json()["ok"] is False
            if code:
                assert response.json()["error"] == code


async def test_tokens_and_admin(ctx: AppContext, redis: Redis, keys: Keys, data_root: Path) -> None:
    await redis.hset(keys.github_authors("slack"), "U1", ANN.to_json())  # type: ignore[misc]
    session = await make_session(redis, keys, data_root, {"U1": "Ann", "U2": "Bob"})
    hook = read_hook_file(session.hook_file)
    assert hook is not None and hook[0] == session.key
    assert (session.hook_file.stat().st_mode & 0o777) == 0o600
    assert not session.hook_file.is_relative_to(session.workspace)
    async with await _client(ctx) as http:
        by_hook = await http.post(
            "/git/coauthors/resolve",
            json={"prompt": False, "message": "Fix"},
            headers={"authorization": f"Bearer {hook[1]}"},
        )
        assert by_hook.status_code == 200, by_hook.text
        body = by_hook.json()
        assert body["trailers"] == [ANN.trailer] and body["prompted"] == []
        assert body["message"] == f"Fix\n\n{ANN.trailer}\n"
        assert [p["userId"] for p in body["unresolved"]] == ["U2"]

        # the admin rule with an explicit session: the admin token, never the caller's address
        from_loopback = await http.post(
            "/git/coauthors/configure", json={"sessionKey": session.key, "credit": ["U2"]}
        )
        assert from_loopback.status_code == 401, from_loopback.text
        assert from_loopback.json()["error"] == "admin_auth_required"
        configured = await http.post(
            "/git/coauthors/configure",
            json={"sessionKey": session.key, "credit": ["U2"]},
            headers=ADMIN_HEADERS,
        )
        assert configured.status_code == 200, configured.text
        assert configured.json()["config"]["excluded"] == ["U1"]
        status = await http.get(
            "/git/coauthors/status", params={"sessionKey": session.key}, headers=ADMIN_HEADERS
        )
        participants = {p["userId"]: p for p in status.json()["participants"]}
        assert participants["U1"]["excluded"] and participants["U1"]["author"]["email"] == "ann@example.com"
        assert status.json()["trailers"] == []

    # a wrong admin token is refused, from anywhere
    async with await _client(ctx, client_host="10.1.2.3") as remote:
        refused = await remote.get(
            "/git/coauthors/status", params={"sessionKey": session.key}, headers={"x-admin-token": "nope"}
        )
        assert refused.status_code == 401 and refused.json()["error"] == "admin_auth_required"

    # a replaced hook token stops working
    session.hook_file.unlink()
    await ensure_hook_token(redis, keys, data_root, session.key)
    async with await _client(ctx) as http:
        stale = await http.post("/git/coauthors/resolve", headers={"authorization": f"Bearer {hook[1]}"})
        assert stale.status_code == 401


async def test_openapi_document_names_the_routes(ctx: AppContext) -> None:
    from codex_broker.http_api import openapi
    from codex_broker.http_api.coauthors.routes import OPENAPI_PATHS

    spec = openapi.build_spec(OPENAPI_PATHS)
    assert {"/git/coauthors/resolve", "/git/coauthors/status", "/git/coauthors/configure"} <= set(
        spec["paths"]
    )
