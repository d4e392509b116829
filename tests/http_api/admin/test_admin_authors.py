"""GitHub author mappings per platform user: list, set, delete, validation, manual over inferred."""

from __future__ import annotations

import json

import httpx
import pytest
from redis.asyncio import Redis

from codex_broker.http_api.admin.authors import Author, may_replace, parse_author
from codex_broker.libs.keys import Keys


def test_manual_wins_over_inferred() -> None:
    manual = Author("Alice", "alice@example.com", "manual")
    inferred = Author("alice", "alice@corp.example", "inferred")
    assert may_replace(None, inferred)
    assert may_replace(inferred, inferred)
    assert may_replace(inferred, manual)
    assert may_replace(manual, manual)
    assert not may_replace(manual, inferred)


def test_parse_author_tolerates_bad_data() -> None:
    assert parse_author(None) is None
    assert parse_author(b"nope") is None
    assert parse_author("[1]") is None
    assert parse_author('{"name": 1, "email": "a@b.c"}') is None
    assert parse_author('{"name": "A", "email": "a@b.c"}') == Author("A", "a@b.c", "manual")


async def test_set_list_delete_per_platform(api: httpx.AsyncClient, redis: Redis, keys: Keys) -> None:
    saved = await api.post(
        "/admin/api/github-authors",
        json={"platform": "slack", "userId": "U1", "name": " Alice A ", "email": "alice@example.com"},
    )
    assert saved.status_code == 200
    assert saved.json()["author"] == {
        "platform": "slack",
        "userId": "U1",
        "name": "Alice A",
        "email": "alice@example.com",
        "source": "manual",
    }
    await api.post(
        "/admin/api/github-authors",
        json={"platform": "feishu", "user_id": "ou_42", "name": "Bo", "email": "bo@example.cn"},
    )
    stored = json.loads(await redis.hget(keys.github_authors("slack"), "U1"))  # type: ignore[misc]
    assert stored == {"name": "Alice A", "email": "alice@example.com", "source": "manual"}

    both = (await api.get("/admin/api/github-authors")).json()["items"]
    assert [(row["platform"], row["userId"]) for row in both] == [("slack", "U1"), ("feishu", "ou_42")]
    only_feishu = (await api.get("/admin/api/github-authors", params={"platform": "feishu"})).json()["items"]
    assert [row["userId"] for row in only_feishu] == ["ou_42"]

    wrong_platform = await api.delete("/admin/api/github-authors/U1", params={"platform": "feishu"})
    assert wrong_platform.status_code == 404 and wrong_platform.json()["error"] == "unknown_author"
    deleted = await api.delete("/admin/api/github-authors/U1", params={"platform": "slack"})
    assert deleted.json() == {"ok": True, "platform": "slack", "userId": "U1"}
    assert not await redis.hexists(keys.github_authors("slack"), "U1")  # type: ignore[misc]


async def test_manual_entry_replaces_an_inferred_one(
    api: httpx.AsyncClient, redis: Redis, keys: Keys
) -> None:
    inferred = Author("alice", "alice@corp.example", "inferred")
    await redis.hset(keys.github_authors("slack"), "U1", inferred.to_json())  # type: ignore[misc]
    listed = (await api.get("/admin/api/github-authors", params={"platform": "slack"})).json()["items"]
    assert listed[0]["source"] == "inferred"
    await api.post(
        "/admin/api/github-authors",
        json={"platform": "slack", "userId": "U1", "name": "Alice", "email": "alice@example.com"},
    )
    listed = (await api.get("/admin/api/github-authors", params={"platform": "slack"})).json()["items"]
    assert listed[0] == {
        "platform": "slack",
        "userId": "U1",
        "name": "Alice",
        "email": "alice@example.com",
        "source": "manual",
    }


GOOD = {"platform": "slack", "userId": "U1", "name": "Alice", "email": "alice@example.com"}


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"platform": "teams"}, "invalid_platform", "platform"),
        ({"platform": None}, "invalid_platform", "platform"),
        ({"userId": None}, "missing_required_body", "userId"),
        ({"userId": "U 1"}, "invalid_user_id", "userId"),
        ({"userId": "../x"}, "invalid_user_id", "userId"),
        ({"name": ""}, "missing_required_body", "name"),
        ({"name": "Eve <eve@x.io>"}, "invalid_name", "name"),
        ({"name": "Eve\nCo-authored-by: Mallory"}, "invalid_name", "name"),
        ({"name": "x" * 101}, "invalid_name", "name"),
        ({"name": 5}, "invalid_name", "name"),
        ({"email": ""}, "missing_required_body", "email"),
        ({"email": "not-an-email"}, "invalid_email", "email"),
        ({"email": "a@b"}, "invalid_email", "email"),
        ({"email": "a b@example.com"}, "invalid_email", "email"),
        ({"email": "a@example.com>\nx"}, "invalid_email", "email"),
        ({"email": ["a@example.com"]}, "invalid_email", "email"),
    ],
)
async def test_validation_names_the_field(
    api: httpx.AsyncClient, redis: Redis, keys: Keys, change: dict[str, object], code: str, field: str
) -> None:
    response = await api.post("/admin/api/github-authors", json={**GOOD, **change})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == code and body["field"] == field
    assert await redis.hlen(keys.github_authors("slack")) == 0  # type: ignore[misc]


async def test_delete_needs_a_platform(api: httpx.AsyncClient) -> None:
    response = await api.delete("/admin/api/github-authors/U1")
    assert response.status_code == 400
    assert response.json() == {
        "ok": False,
        "error": "invalid_platform",
        "field": "platform",
        "allowed": ["slack", "feishu", "discord"],
    }
    for bad in ("teams", ""):
        list_bad = await api.get("/admin/api/github-authors", params={"platform": bad})
        assert list_bad.status_code == 400 and list_bad.json()["error"] == "invalid_platform"
    body_not_object = await api.post("/admin/api/github-authors", json=[1, 2])
    assert body_not_object.status_code == 400 and body_not_object.json()["error"] == "invalid_json"
