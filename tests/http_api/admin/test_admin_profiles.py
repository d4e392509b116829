"""Auth profiles: upload auth.json, API-key profiles, activate, delete, sessions per profile."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
from redis.asyncio import Redis

from codex_broker.libs.keys import Keys
from codex_broker.libs.paths import codex_home
from tests.http_api.admin.conftest import seed_session

CHATGPT_AUTH = {
    "OPENAI_API_KEY": None,
    "tokens": {
        "id_token": "eyJ.header.sig",
        "access_token": "access-abc",
        "refresh_token": "refresh-def",
        "account_id": "acct-1",
    },
    "last_refresh": "2026-01-01T00:00:00Z",
}
API_KEY = "sk-proj-TESTKEY0123456789abcdefghij"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_upload_auth_json_stores_0600_in_the_profiles_codex_home(
    api: httpx.AsyncClient, redis: Redis, keys: Keys, data_root: Path
) -> None:
    response = await api.post("/admin/api/auth-profiles", json={"name": "team", "authJson": CHATGPT_AUTH})
    assert response.status_code == 201
    profile = response.json()["profile"]
    assert profile["name"] == "team" and profile["kind"] == "chatgpt"
    assert "refresh-def" not in response.text

    stored = codex_home(data_root, "team") / "auth.json"
    assert json.loads(stored.read_text()) == CHATGPT_AUTH
    assert mode_of(stored) == 0o600
    assert not list(stored.parent.glob(".*.tmp"))
    meta = json.loads(await redis.hget(keys.auth_profiles, "team"))  # type: ignore[misc]
    assert set(meta) == {"kind", "created_at_ms", "updated_at_ms"}

    # a JSON string is accepted too (what the page sends), and replaces the file
    as_text = json.dumps({**CHATGPT_AUTH, "tokens": {**CHATGPT_AUTH["tokens"], "access_token": "new"}})
    replaced = await api.post("/admin/api/auth-profiles", json={"name": "team", "authJson": as_text})
    assert replaced.status_code == 201
    assert json.loads(stored.read_text())["tokens"]["access_token"] == "new"
    assert replaced.json()["profile"]["created_at_ms"] == profile["created_at_ms"]


async def test_api_key_profile_is_on_disk_only_and_never_echoed(
    api: httpx.AsyncClient, redis: Redis, keys: Keys, data_root: Path
) -> None:
    response = await api.post("/admin/api/auth-profiles", json={"name": "key-1", "apiKey": API_KEY})
    assert response.status_code == 201
    assert API_KEY not in response.text
    stored = codex_home(data_root, "key-1") / "auth.json"
    assert json.loads(stored.read_text()) == {"auth_mode": "apikey", "OPENAI_API_KEY": API_KEY}
    assert mode_of(stored) == 0o600
    async for key in redis.scan_iter(match=f"{keys.prefix}:*"):
        kind = await redis.type(key)
        if kind == b"hash":
            dump = repr(await redis.hgetall(key))  # type: ignore[misc]
        elif kind == b"stream":  # the audit trail records the save
            dump = repr(await redis.xrange(key))
        else:
            dump = repr(await redis.get(key))
        assert API_KEY not in dump, key
    listing = await api.get("/admin/api/auth-profiles")
    assert API_KEY not in listing.text
    assert listing.json()["profiles"][0]["kind"] == "apikey"


async def test_invalid_profiles_are_rejected_with_field(api: httpx.AsyncClient, data_root: Path) -> None:
    cases = [
        ({"authJson": CHATGPT_AUTH}, 400, "missing_required_body", "name"),
        ({"name": "../etc", "authJson": CHATGPT_AUTH}, 400, "invalid_profile_name", "name"),
        ({"name": "a/b", "apiKey": API_KEY}, 400, "invalid_profile_name", "name"),
        ({"name": "p"}, 400, "provide_exactly_one_credential", "authJson"),
        (
            {"name": "p", "authJson": CHATGPT_AUTH, "apiKey": API_KEY},
            400,
            "provide_exactly_one_credential",
            "authJson",
        ),
        ({"name": "p", "authJson": "{not json"}, 400, "invalid_json_field", "authJson"),
        ({"name": "p", "authJson": [1, 2]}, 400, "invalid_auth_json", "authJson"),
        ({"name": "p", "authJson": {"tokens": {"access_token": "x"}}}, 400, "invalid_auth_json", "authJson"),
        ({"name": "p", "authJson": {"OPENAI_API_KEY": ""}}, 400, "invalid_auth_json", "authJson"),
        ({"name": "p", "authJson": {"hello": "world"}}, 400, "invalid_auth_json", "authJson"),
        ({"name": "p", "apiKey": "short"}, 400, "invalid_api_key", "apiKey"),
        ({"name": "p", "apiKey": "has spaces in it but is long enough"}, 400, "invalid_api_key", "apiKey"),
        ({"name": "p", "authJson": "x" * 70_000}, 413, "body_too_large", "authJson"),
    ]
    for body, status, code, field in cases:
        response = await api.post("/admin/api/auth-profiles", json=body)
        assert response.status_code == status, body
        assert response.json() == {"ok": False, "error": code, "field": field}, body
        assert "refresh-def" not in response.text and API_KEY not in response.text
    not_json = await api.post(
        "/admin/api/auth-profiles", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400 and not_json.json()["error"] == "invalid_json"
    assert not (data_root / "codex-homes").exists()


async def test_activate_delete_and_sessions_using_each_profile(
    api: httpx.AsyncClient, redis: Redis, keys: Keys, data_root: Path
) -> None:
    await api.post("/admin/api/auth-profiles", json={"name": "a", "authJson": CHATGPT_AUTH})
    await api.post("/admin/api/auth-profiles", json={"name": "b", "apiKey": API_KEY})
    s1 = await seed_session(redis, keys, data_root, conversation="C1", auth_profile="a")
    s2 = await seed_session(redis, keys, data_root, conversation="C2", auth_profile="a")
    await seed_session(redis, keys, data_root, conversation="C3")

    assert (await api.post("/admin/api/auth-profiles/missing/activate")).json()["error"] == "unknown_profile"
    assert (await api.post("/admin/api/auth-profiles/bad%20name/activate")).status_code == 400
    activated = await api.post("/admin/api/auth-profiles/a/activate")
    assert activated.json() == {"ok": True, "active": "a"}
    assert await redis.get(keys.active_auth_profile) == b"a"

    listing = (await api.get("/admin/api/auth-profiles")).json()
    assert listing["active"] == "a"
    rows = {row["name"]: row for row in listing["profiles"]}
    assert rows["a"]["active"] is True and rows["b"]["active"] is False
    assert rows["a"]["session_count"] == 2 and set(rows["a"]["sessions"]) == {s1, s2}
    assert rows["b"]["session_count"] == 0
    assert rows["a"]["has_credentials"] is True

    refused = await api.delete("/admin/api/auth-profiles/a")
    assert refused.status_code == 409 and refused.json()["error"] == "profile_active"
    deleted = await api.delete("/admin/api/auth-profiles/b")
    assert deleted.json() == {"ok": True, "deleted": "b"}
    assert not (codex_home(data_root, "b") / "auth.json").exists()
    assert not await redis.hexists(keys.auth_profiles, "b")  # type: ignore[misc]
    again = await api.delete("/admin/api/auth-profiles/b")
    assert again.status_code == 404 and again.json()["error"] == "unknown_profile"
