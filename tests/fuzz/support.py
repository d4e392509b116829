"""Shared pieces of the fuzz tests: the hypothesis settings, and stream-outcome probes.

Example counts: `FUZZ_EXAMPLES` (default 30 per test, what CI runs); the bench runner
(`bench/fuzz_inputs.py`) raises it. Runs are derandomized (the same examples every time, so a CI
failure reproduces locally) and keep no example database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from pydantic import BaseModel
from redis.asyncio import Redis

from codex_broker.libs.contracts import ContractError, decode

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))


def fuzz_settings(max_examples: int | None = None) -> settings:
    return settings(
        max_examples=max_examples or FUZZ_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        # the services under test are started once per test function and serve every example
        suppress_health_check=list(HealthCheck),
    )


def decodes(model: type[BaseModel], raw: str | bytes) -> bool:
    """The contract is the oracle: does this entry's data decode as the stream's model?"""
    try:
        decode(model, raw)
    except (ContractError, UnicodeDecodeError):
        return False
    return True


@dataclass(frozen=True)
class DeadLetterRow:
    source_stream: str
    source_id: str
    group: str
    reason: str


def _s(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


async def dead_letters(redis: Redis, stream: str) -> dict[tuple[str, str], DeadLetterRow]:
    """Dead-letter rows keyed by (source stream, source entry id)."""
    rows = {}
    for _, fields in await redis.xrange(stream):
        row = DeadLetterRow(
            source_stream=_s(fields.get(b"source_stream", b"")),
            source_id=_s(fields.get(b"source_id", b"")),
            group=_s(fields.get(b"group", b"")),
            reason=_s(fields.get(b"reason", b"")),
        )
        rows[(row.source_stream, row.source_id)] = row
    return rows


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def acked(redis: Redis, stream: str, group: str, entry_ids: list[str]) -> bool:
    """Every id was delivered to `group` and none of them is pending any more."""
    if not entry_ids:
        return True
    groups = await redis.xinfo_groups(stream)
    info = next((g for g in groups if _s(g["name"]) == group), None)
    if info is None:
        return False
    last = _s(info["last-delivered-id"])
    if _id_key(last) < max(_id_key(e) for e in entry_ids):
        return False
    lo = min(entry_ids, key=_id_key)
    hi = max(entry_ids, key=_id_key)
    pending = await redis.xpending_range(stream, group, min=lo, max=hi, count=len(entry_ids) + 1000)
    waiting = {_s(p["message_id"]) for p in pending}
    return not waiting.intersection(entry_ids)
