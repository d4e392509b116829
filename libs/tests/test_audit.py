"""libs.audit on real Redis: the writer other services call (budgets: `audit.record(..., "budget")`),
redaction of what it records, retention by count and age, search windows and the JSONL shape."""

from __future__ import annotations

import json
import time

from redis.asyncio import Redis

from codex_broker.libs import audit
from codex_broker.libs.contracts import AuditRecord
from codex_broker.libs.keys import Keys
from codex_broker.libs.logs import Redactor


async def test_record_a_budget_decision_once(redis: Redis, keys: Keys) -> None:
    log = audit.AuditLog(keys)
    written = await audit.record(
        redis,
        log,
        "budget",
        "U1",
        platform="slack",
        session_key="slack:C1:1.0",
        action="refuse",
        summary="user day limit 100000 tokens",
        details={"limit": "user:day", "used": 100_512, "resets_at_ms": 1_800_000_000_000},
    )
    [found] = await audit.export(redis, keys, audit.Query(kind="budget"))
    assert found == written and found.details["used"] == 100_512


async def test_secrets_and_token_shapes_are_redacted(redis: Redis, keys: Keys) -> None:
    log = audit.AuditLog(keys, redactor=Redactor(["planted-secret-value-1"]))
    await audit.record(
        redis,
        log,
        "command",
        "codex",
        summary="curl -H 'Authorization: Bearer abcdefgh12345678' x?k=planted-secret-value-1",
        details={"api_key": "shown-nowhere", "note": "xoxb-123456-abcdef"},
    )
    raw = repr(await redis.xrange(keys.audit_stream))
    for secret in ("abcdefgh12345678", "planted-secret-value-1", "shown-nowhere", "xoxb-123456-abcdef"):
        assert secret not in raw


async def test_retention_by_age(redis: Redis, keys: Keys) -> None:
    """Entries older than the retention go with a later write: approximate trimming drops whole
    stream nodes (100 entries by default), so 250 old ones lose at least their first two nodes."""
    old_id = int(time.time() * 1000) - 3 * audit.DAY_MS
    pipe = redis.pipeline(transaction=False)
    for n in range(250):
        pipe.xadd(keys.audit_stream, {"data": "{}"}, id=f"{old_id}-{n + 1}")
    await pipe.execute()
    await audit.record(redis, audit.AuditLog(keys, retention_days=1), "admin", "admin:token@127.0.0.1")
    assert await redis.xlen(keys.audit_stream) <= 51
    await audit.AuditLog(keys, retention_days=0).write(redis, audit.make("admin", "a"))
    assert await redis.xlen(keys.audit_stream) <= 52  # 0: no age trim


async def test_retention_by_count(redis: Redis, keys: Keys) -> None:
    log = audit.AuditLog(keys, maxlen=100, retention_days=0)
    for _ in range(5):
        pipe = redis.pipeline(transaction=False)
        for _ in range(100):
            log.add(pipe, audit.make("turn", "U1"))
        await pipe.execute()
    assert 100 <= await redis.xlen(keys.audit_stream) < 500


async def test_search_window_and_jsonl(redis: Redis, keys: Keys) -> None:
    log = audit.AuditLog(keys)
    now = int(time.time() * 1000)
    for offset, actor in ((-5_000, "early"), (0, "late")):
        await audit.record(redis, log, "turn", actor, at_ms=now + offset)
    late = await audit.search(redis, keys, audit.Query(since_ms=now - 1_000))
    assert [r.actor for r in late] == ["late"]
    early = await audit.search(redis, keys, audit.Query(until_ms=now - 1_000))
    assert [r.actor for r in early] == ["early"]
    text = audit.to_jsonl(await audit.export(redis, keys, audit.Query()))
    rows = [AuditRecord.model_validate(json.loads(line)) for line in text.splitlines()]
    assert [r.actor for r in rows] == ["early", "late"] and text.endswith("\n")
