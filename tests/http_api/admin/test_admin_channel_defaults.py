"""Per-channel defaults in the admin API: set, list, delete — each change audited under the
admin identity — and 400s naming the field for values the orchestrator must never get."""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis

from codex_broker.libs import channel_defaults
from codex_broker.libs.contracts import AuditRecord, decode
from codex_broker.libs.keys import Keys

BODY = {
    "platform": "slack",
    "conversationId": "C0TEAM",
    "repo": "acme/api",
    "model": "gpt-team",
    "sandbox": "workspace-write",
    "repos": {"acme/api": "https://git.example/acme/api.git", "acme/web": ""},
    "models": ["gpt-big"],
}


async def test_set_list_delete_and_the_audit_trail(api: httpx.AsyncClient, redis: Redis, keys: Keys) -> None:
    saved = await api.put("/admin/api/channel-defaults", json=BODY)
    assert saved.status_code == 200, saved.text
    stored = await channel_defaults.load(redis, keys, "slack", "C0TEAM")
    assert stored is not None and stored.repo == "acme/api" and stored.models == ["gpt-big"]
    [item] = (await api.get("/admin/api/channel-defaults")).json()["items"]
    assert (item["platform"], item["conversationId"], item["model"]) == ("slack", "C0TEAM", "gpt-team")
    gone = await api.delete("/admin/api/channel-defaults/C0TEAM", params={"platform": "slack"})
    assert gone.status_code == 200
    assert await channel_defaults.load(redis, keys, "slack", "C0TEAM") is None
    again = await api.delete("/admin/api/channel-defaults/C0TEAM", params={"platform": "slack"})
    assert again.status_code == 404 and again.json()["error"] == "unknown_channel"
    records = [decode(AuditRecord, f[b"data"]) for _, f in await redis.xrange(keys.audit_stream)]
    assert [(r.kind, r.action, r.summary, r.actor) for r in records] == [
        ("admin", "channel_defaults.set", "slack:C0TEAM", "admin:token@127.0.0.1"),
        ("admin", "channel_defaults.delete", "slack:C0TEAM", "admin:token@127.0.0.1"),
    ]


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"platform": "irc"}, "invalid_platform", "platform"),
        ({"conversationId": "../x"}, "invalid_conversation_id", "conversationId"),
        ({"repos": {"../../etc": ""}}, "invalid_repos", "repos"),
        ({"repos": {"a": "--upload-pack=touch /tmp/x"}, "repo": "a"}, "invalid_repos", "repos"),
        ({"repo": "acme/other"}, "unknown_repo", "repo"),
        ({"sandbox": "none"}, "invalid_sandbox", "sandbox"),
        ({"models": ["bad model"]}, "invalid_models", "models"),
        ({"colour": "red"}, "unknown_field", "colour"),
    ],
)
async def test_bad_values_are_400_naming_the_field(
    api: httpx.AsyncClient, redis: Redis, keys: Keys, change: dict, code: str, field: str
) -> None:
    response = await api.put("/admin/api/channel-defaults", json={**BODY, **change})
    assert response.status_code == 400, response.text
    assert (response.json()["error"], response.json()["field"]) == (code, field)
    assert await redis.hlen(keys.channel_defaults) == 0
    assert await redis.xlen(keys.audit_stream) == 0
