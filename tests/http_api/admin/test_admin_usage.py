"""The admin usage API on real Redis: usage over time from the orchestrator's counters, the run
samples, budget overrides and exemptions (and their stable error codes)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
from redis.asyncio import Redis

from codex_broker.libs.keys import Keys
from codex_broker.libs.records import RunRecord
from codex_broker.libs.usage_counters import Subjects, TurnUsage, add_turn, read_facts
from codex_broker.orchestrator import samples
from tests.http_api.admin.conftest import ClientFactory


async def seed_usage(redis: Redis, keys: Keys) -> None:
    """Two users of one channel over three days, and two finished runs sampled."""
    now = datetime.now(UTC)
    pipe = redis.pipeline(transaction=False)
    for back, user, tokens in ((2, "U1", 1000), (1, "U1", 3000), (0, "U2", 500), (0, "U1", 2000)):
        turn = TurnUsage(input=tokens - 100, cached=0, output=100, tokens=tokens, micro_usd=tokens * 10)
        add_turn(pipe, keys, Subjects(f"slack:{user}", "slack:C1", "team"), turn, now - timedelta(days=back))
    await pipe.execute()
    core: Any = SimpleNamespace(redis=redis, keys=keys)
    await redis.zadd(keys.runs_waiting, {"slack:C9:1": 1, "slack:C9:2": 2})
    for latency_ms in (1200, 3400):
        await samples.sample(core, RunRecord(created_at_ms=int(time.time() * 1000) - latency_ms))


async def test_usage_over_time_and_samples(api: httpx.AsyncClient, redis: Redis, keys: Keys) -> None:
    await seed_usage(redis, keys)
    response = await api.get("/admin/api/usage", params={"days": "3"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["tokens"] for p in body["deployment"]] == [1000, 3000, 2500]
    assert body["deployment"][-1]["usd"] == 0.025
    users = {row["subject"]: row["tokens"] for row in body["users"]["top"]}
    month_start = datetime.now(UTC).day
    if month_start >= 3:  # all three days in this month (else the top list is this month's only)
        assert users == {"slack:U1": 6000, "slack:U2": 500}
    u1 = next(s for s in body["users"]["series"] if s["subject"] == "slack:U1")
    assert [p["tokens"] for p in u1["points"]] == [1000, 3000, 2000]
    assert body["profiles"]["series"][0]["subject"] == "team"
    [slot] = [p for p in body["metrics"]["points"] if p["turns"]]
    assert slot["turns"] == 2 and slot["latency_ms_max"] >= 3400 and slot["waiting_max"] == 2
    assert body["metrics"]["points"][-1] == slot  # the newest slot is last


async def test_budget_overrides_and_exemptions(api: httpx.AsyncClient, redis: Redis, keys: Keys) -> None:
    response = await api.put(
        "/admin/api/budgets", json={"limit": "user.day.usd", "subject": "slack:U1", "value": 2.5}
    )
    assert response.status_code == 200, response.text
    await api.put("/admin/api/budgets", json={"limit": "deployment.month.tokens", "value": 10_000_000})
    response = await api.post("/admin/api/budgets/exempt", json={"scope": "channel", "subject": "slack:C1"})
    assert response.json()["exempt"] is True
    facts = await read_facts(redis, keys, Subjects("slack:U1", "slack:C1"), datetime.now(UTC))
    assert facts.overrides == {"user.day.usd|slack:U1": 2_500_000, "deployment.month.tokens|all": 10_000_000}
    assert facts.exempt == frozenset({"channel"})

    budgets = (await api.get("/admin/api/usage")).json()["budgets"]
    assert {"limit": "user.day.usd", "subject": "slack:U1", "value": 2.5} in budgets["overrides"]
    assert budgets["exempt"] == [{"scope": "channel", "subject": "slack:C1"}]

    cleared = await api.delete("/admin/api/budgets", params={"limit": "user.day.usd", "subject": "slack:U1"})
    assert cleared.status_code == 200
    again = await api.delete("/admin/api/budgets", params={"limit": "user.day.usd", "subject": "slack:U1"})
    assert (again.status_code, again.json()["error"]) == (404, "unknown_budget_override")
    await api.post(
        "/admin/api/budgets/exempt", json={"scope": "channel", "subject": "slack:C1", "exempt": False}
    )
    facts = await read_facts(redis, keys, Subjects("slack:U1", "slack:C1"), datetime.now(UTC))
    assert facts.exempt == frozenset() and "user.day.usd|slack:U1" not in facts.overrides


async def test_bad_input_is_400_naming_the_field(api: httpx.AsyncClient) -> None:
    cases = [
        (api.get("/admin/api/usage", params={"days": "0"}), "invalid_days", "days"),
        (api.get("/admin/api/usage", params={"days": "9999"}), "invalid_days", "days"),
        (
            api.put("/admin/api/budgets", json={"limit": "team.day.tokens", "value": 1}),
            "invalid_budget_limit",
            "limit",
        ),
        (
            api.put("/admin/api/budgets", json={"limit": "user.day.tokens", "subject": "U1", "value": 1}),
            "invalid_budget_subject",
            "subject",
        ),
        (
            api.put("/admin/api/budgets", json={"limit": "user.day.tokens", "subject": "*", "value": -1}),
            "invalid_budget_value",
            "value",
        ),
        (
            api.put("/admin/api/budgets", json={"limit": "user.day.tokens", "subject": "*", "value": True}),
            "invalid_budget_value",
            "value",
        ),
        (
            api.post("/admin/api/budgets/exempt", json={"scope": "deployment", "subject": "all"}),
            "invalid_budget_scope",
            "scope",
        ),
        (
            api.post("/admin/api/budgets/exempt", json={"scope": "user", "subject": "*"}),
            "invalid_budget_subject",
            "subject",
        ),
        (
            api.post(
                "/admin/api/budgets/exempt", json={"scope": "user", "subject": "slack:U1", "exempt": "yes"}
            ),
            "invalid_budget_exempt",
            "exempt",
        ),
    ]
    for request, code, field in cases:
        response = await request
        assert response.status_code == 400, (code, response.text)
        assert (response.json()["error"], response.json()["field"]) == (code, field)


async def test_usage_needs_the_admin_token(admin_client: ClientFactory) -> None:
    anonymous = await admin_client()
    response = await anonymous.get("/admin/api/usage")
    assert response.status_code == 401
    response = await anonymous.put("/admin/api/budgets", json={"limit": "user.day.tokens", "value": 1})
    assert response.status_code in (401, 415)
