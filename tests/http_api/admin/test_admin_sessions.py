"""Admin sessions: list (paged, sorted, filtered), detail with timeline and log tail, reset, delete."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import httpx
from redis.asyncio import Redis

from codex_broker.http_api.admin.sessions import remove_session_dirs
from codex_broker.libs.keys import Keys
from codex_broker.libs.paths import safe_name, session_dir, session_workspace
from tests.http_api.admin.conftest import seed_session


async def test_list_is_sorted_paged_and_filtered(
    api: httpx.AsyncClient, redis: Redis, keys: Keys, data_root: Path
) -> None:
    base = 1_700_000_000_000
    slack = [
        await seed_session(redis, keys, data_root, conversation=f"C{i}", last_activity_ms=base + i * 1000)
        for i in range(5)
    ]
    feishu = await seed_session(
        redis,
        keys,
        data_root,
        platform="feishu",
        conversation="oc_1",
        root="om_1",
        last_activity_ms=base + 10_000,
    )

    everything = (await api.get("/admin/api/sessions")).json()
    assert everything["total"] == 6
    assert [row["session_key"] for row in everything["items"]] == [feishu, *reversed(slack)]

    page = (
        await api.get("/admin/api/sessions", params={"platform": "slack", "offset": 1, "limit": 2})
    ).json()
    assert page["total"] == 5
    assert [row["session_key"] for row in page["items"]] == [slack[3], slack[2]]
    row = page["items"][0]
    assert row["platform"] == "slack" and row["state"] == "idle" and row["thread_id"] == "thread-1"
    assert row["workspace"] == str(session_workspace(Path("."), slack[3]))  # relative to DATA_ROOT
    assert row["total_tokens"] == 150 and row["last_activity_ms"] == base + 3000

    only_feishu = (await api.get("/admin/api/sessions", params={"platform": "feishu"})).json()
    assert [r["session_key"] for r in only_feishu["items"]] == [feishu]


async def test_list_rejects_bad_paging_and_platform(api: httpx.AsyncClient) -> None:
    cases = [
        ({"limit": "0"}, "invalid_limit", "limit"),
        ({"limit": "-3"}, "invalid_limit", "limit"),
        ({"limit": "ten"}, "invalid_limit", "limit"),
        ({"offset": "x"}, "invalid_offset", "offset"),
        ({"platform": "teams"}, "invalid_platform", "platform"),
    ]
    for params, code, field in cases:
        response = await api.get("/admin/api/sessions", params=params)
        assert response.status_code == 400, params
        assert response.json()["error"] == code and response.json()["field"] == field
    bad_platform = (await api.get("/admin/api/sessions", params={"platform": "teams"})).json()
    assert bad_platform["allowed"] == ["slack", "feishu", "discord"]
    clamped = (await api.get("/admin/api/sessions", params={"limit": "100000"})).json()
    assert clamped["limit"] == 200


async def test_detail_has_timeline_participants_and_redacted_log_tail(
    api: httpx.AsyncClient, redis: Redis, keys: Keys, data_root: Path
) -> None:
    sk = await seed_session(
        redis,
        keys,
        data_root,
        timeline=[
            {"at_ms": 1, "kind": "inbound", "summary": "alice: fix the flaky test"},
            {"at_ms": 2, "kind": "turn_started", "summary": "turn t1 on thread-1"},
            {"at_ms": 3, "kind": "tool", "summary": "exec_command pytest -x (token xoxb-1234567890-abcdef)"},
            {"at_ms": 4, "kind": "outbound", "summary": "posted final answer"},
        ],
        participants={"U1": "Alice", "U2": "Bob"},
    )
    await redis.lpush(keys.session_timeline(sk), "not json at all")  # type: ignore[misc]
    await api.post(
        "/admin/api/github-authors",
        json={"platform": "slack", "userId": "U1", "name": "Alice A", "email": "alice@example.com"},
    )
    log_dir = data_root / "logs" / "sessions" / safe_name(sk)
    log_dir.mkdir(parents=True)
    hour = datetime.now(UTC).strftime("%Y-%m-%dT%H")
    (log_dir / f"{hour}.jsonl").write_text(
        json.dumps({"ts": "t1", "level": "INFO", "msg": "turn started", "session_key": sk})
        + "\n"
        + json.dumps({"ts": "t2", "level": "INFO", "msg": "using key sk-proj-ABCDEFGHIJKLMNOPQRSTUV"})
        + "\n"
    )

    response = await api.get(f"/admin/api/sessions/{sk}")
    assert response.status_code == 200
    body = response.json()
    session = body["session"]
    kinds = [entry["kind"] for entry in session["timeline"]]
    assert kinds == ["unknown", "outbound", "tool", "turn_started", "inbound"]  # newest first
    assert "xoxb-1234567890" not in json.dumps(session["timeline"])
    assert session["participants"] == [
        {
            "userId": "U1",
            "displayName": "Alice",
            "githubAuthor": {"name": "Alice A", "email": "alice@example.com", "source": "manual"},
        },
        {"userId": "U2", "displayName": "Bob", "githubAuthor": None},
    ]
    assert [line["msg"] for line in body["logs"]] == ["turn started", "using key [REDACTED]"]
    assert "ABCDEFGHIJKLMNOP" not in json.dumps(body["logs"])

    # a URL-encoded key reaches the same session
    encoded = await api.get(f"/admin/api/sessions/{sk.replace(':', '%3A')}")
    assert encoded.json()["session"]["session_key"] == sk


async def test_detail_of_unknown_session_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/admin/api/sessions/slack:nope:1")
    assert response.status_code == 404
    assert response.json() == {"ok": False, "error": "unknown_session"}
    assert (await api.post("/admin/api/sessions/slack:nope:1/reset")).status_code == 404
    assert (await api.delete("/admin/api/sessions/slack:nope:1")).status_code == 404


async def test_reset_clears_only_the_thread(
    api: httpx.AsyncClient, redis: Redis, keys: Keys, data_root: Path
) -> None:
    sk = await seed_session(redis, keys, data_root, auth_profile="team")
    await redis.set(keys.session_token_hash(sk), "abc123")
    before = await redis.hgetall(keys.session(sk))  # type: ignore[misc]

    response = await api.post(f"/admin/api/sessions/{sk}/reset")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "session_key": sk, "previous_thread_id": "thread-1"}
    after = await redis.hgetall(keys.session(sk))  # type: ignore[misc]
    assert b"thread_id" not in after
    assert {k: v for k, v in before.items() if k != b"thread_id"} == after
    assert await redis.get(keys.session_token_hash(sk)) == b"abc123"  # token not rotated
    assert session_workspace(data_root, sk).is_dir()
    newest = json.loads(await redis.lindex(keys.session_timeline(sk), 0))  # type: ignore[misc]
    assert newest["kind"] == "admin"

    again = (await api.post(f"/admin/api/sessions/{sk}/reset")).json()
    assert again["previous_thread_id"] is None


async def test_delete_removes_keys_workspace_and_token_mapping(
    api: httpx.AsyncClient, redis: Redis, keys: Keys, data_root: Path
) -> None:
    sk = await seed_session(redis, keys, data_root, participants={"U1": "Alice"})
    other = await seed_session(redis, keys, data_root, conversation="C2")
    await redis.set(keys.session_token_hash(sk), "feedface")
    await redis.set(keys.session_by_token("feedface"), sk)
    await redis.rpush(keys.session_queue(sk), "{}")  # type: ignore[misc]

    response = await api.delete(f"/admin/api/sessions/{sk}")
    assert response.status_code == 200
    assert response.json()["directories"] == [str(session_dir(Path("."), sk))]
    for key in (
        keys.session(sk),
        keys.session_state(sk),
        keys.session_queue(sk),
        keys.session_participants(sk),
        keys.session_token_hash(sk),
        keys.session_by_token("feedface"),
    ):
        assert not await redis.exists(key), key
    assert await redis.zscore(keys.sessions_index, sk) is None
    assert not session_dir(data_root, sk).exists()
    assert session_workspace(data_root, other).is_dir()
    assert await redis.exists(keys.session(other))


async def test_delete_is_refused_while_a_run_is_active(
    api: httpx.AsyncClient, redis: Redis, keys: Keys, data_root: Path
) -> None:
    running = await seed_session(redis, keys, data_root, state="running", active_run_id="r1")
    starting = await seed_session(redis, keys, data_root, conversation="C2", state="debouncing")
    listed = await seed_session(redis, keys, data_root, conversation="C3", active_run_id="r3")
    await redis.zadd(keys.active_runs, {"r3": 1})
    for sk in (running, starting, listed):
        response = await api.delete(f"/admin/api/sessions/{sk}")
        assert response.status_code == 409, sk
        assert response.json() == {"ok": False, "error": "session_active"}
        assert await redis.exists(keys.session(sk))
        assert session_workspace(data_root, sk).is_dir()


async def test_delete_never_leaves_data_root_sessions(
    api: httpx.AsyncClient, redis: Redis, keys: Keys, data_root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    sk = await seed_session(redis, keys, data_root)
    # a workspace field pointing outside, and the session dir replaced by a symlink to outside
    await redis.hset(keys.session(sk), "workspace", str(outside))  # type: ignore[misc]
    target = session_dir(data_root, sk)
    for child in sorted(target.rglob("*"), reverse=True):
        child.unlink() if child.is_file() else child.rmdir()
    target.rmdir()
    os.symlink(outside, target)

    response = await api.delete(f"/admin/api/sessions/{sk}")
    assert response.status_code == 200
    assert (outside / "keep.txt").read_text() == "keep"
    assert not target.is_symlink()


def test_remove_session_dirs_refuses_the_root_and_traversal(data_root: Path, tmp_path: Path) -> None:
    sessions_root = data_root / "sessions"
    sessions_root.mkdir()
    (sessions_root / "a").mkdir()
    escape = sessions_root / ".." / ".." / "data"
    assert remove_session_dirs(data_root, [sessions_root, escape, tmp_path]) == []
    assert (sessions_root / "a").is_dir()
