"""`codex-broker audit export` prints the trail as JSONL with the same filters as the admin API,
and `codex-broker drain` is an admin action on the trail under the operator's identity."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from codex_broker.cli import audit_export
from codex_broker.cli.drain import drain
from codex_broker.cli.main import main
from codex_broker.libs import audit
from codex_broker.libs.contracts import AuditRecord
from codex_broker.libs.keys import Keys


async def test_export_prints_jsonl_with_filters(
    redis: Redis,
    keys: Keys,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = audit.AuditLog(keys)
    pipe = redis.pipeline(transaction=False)
    log.add(pipe, audit.make("turn", "U1", actor_name="Alice", session_key="slack:C1:1.0", at_ms=1_000))
    log.add(pipe, audit.make("turn", "U2", actor_name="Bob", session_key="slack:C2:2.0"))
    await pipe.execute()
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("KEY_PREFIX", keys.prefix)
    monkeypatch.setenv("SHARD_COUNT", str(keys.shard_count))
    monkeypatch.chdir(tmp_path)  # no developer .env

    def run(*args: str) -> list[AuditRecord]:
        assert main(["audit", "export", *args]) == 0
        out = capsys.readouterr().out
        return [AuditRecord.model_validate(json.loads(line)) for line in out.splitlines()]

    # main() runs its own event loop: call it outside this test's loop
    everything = await asyncio.to_thread(run)
    assert [r.actor for r in everything] == ["U1", "U2"]
    assert [r.actor for r in await asyncio.to_thread(run, "--user", "bob")] == ["U2"]
    assert [r.actor for r in await asyncio.to_thread(run, "--since", "1970-01-02")] == ["U2"]
    assert await asyncio.to_thread(main, ["audit", "export", "--since", "yesterday"]) == 2


def test_time_arguments() -> None:
    assert audit_export.parse_time("1700000000000") == 1_700_000_000_000
    assert audit_export.parse_time("1970-01-01T00:00:01") == 1000
    assert audit_export.parse_time("1970-01-01T01:00:01+01:00") == 1000
    assert audit_export.parse_time(None) is None
    with pytest.raises(audit_export.TimeArgError):
        audit_export.parse_time("soon")


async def test_drain_is_recorded_with_the_operators_identity(redis: Redis, keys: Keys) -> None:
    await redis.set(keys.heartbeat("codex-runner", "runner-9"), json.dumps({"active": 2}), ex=30)
    await drain(redis, keys, "runner-9")
    [record] = await audit.export(redis, keys, audit.Query())
    assert (record.kind, record.action, record.summary) == ("admin", "runner.drain", "runner-9")
    assert record.actor == audit_export.operator_identity() and record.actor.startswith("cli:")
    assert record.at_ms <= int(time.time() * 1000)
