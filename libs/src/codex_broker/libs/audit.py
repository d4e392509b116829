"""The audit trail: one writer for the append-only audit stream, its search and JSONL export.

Records are written in the round trip of the effect they describe where there is one (a turn's
RunRequest, a run event's `last_seq`), so a redelivered input that is skipped writes no second
record. Retention is by count (MAXLEN ~) and by age (XTRIM MINID ~ on every write: approximate
trims drop whole stream nodes only, so it costs next to nothing). Entry ids are Redis's own
millisecond ids, so a time window is an XRANGE and needs no index of its own.

Nothing secret goes in: the writer passes every text through the log redactor (token shapes and
the service's configured secrets), and callers give command lines and file names, never output,
message text or credentials.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs.contracts import AuditKind, AuditRecord, ContractError, decode, encode
from codex_broker.libs.keys import Keys
from codex_broker.libs.logs import Redactor

DAY_MS = 24 * 3600 * 1000
SUMMARY_MAX = 2000
SCAN_PAGE = 500
SEARCH_SCAN_LIMIT = 20_000  # entries one search reads at most (newest first)
WRITE_SLACK_MS = 60_000  # a record is appended at most this long after its at_ms


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class AuditLog:
    """The writer, bound to a deployment's stream and retention (from CommonSettings)."""

    keys: Keys
    maxlen: int = 1_000_000
    retention_days: int = 90
    redactor: Redactor = field(default_factory=Redactor)

    @classmethod
    def from_settings(cls, settings: Any) -> AuditLog:
        return cls(
            keys=settings.keys,
            maxlen=settings.audit_maxlen,
            retention_days=settings.audit_retention_days,
            redactor=Redactor(settings.secret_values()),
        )

    def clean(self, record: AuditRecord) -> AuditRecord:
        summary = self.redactor.text(record.summary)[:SUMMARY_MAX]
        details = {k: self.redactor.value(v, k) for k, v in record.details.items()}
        return record.model_copy(update={"summary": summary, "details": details})

    def add(self, pipe: Any, record: AuditRecord) -> None:
        """Append `record` as part of the caller's pipeline (its round trip, its fate)."""
        stream = self.keys.audit_stream
        pipe.xadd(stream, {"data": encode(self.clean(record))}, maxlen=self.maxlen, approximate=True)
        if self.retention_days > 0:
            oldest = max(0, now_ms() - self.retention_days * DAY_MS)
            pipe.xtrim(stream, minid=str(oldest), approximate=True)

    async def write(self, redis: Redis, record: AuditRecord) -> None:
        pipe = redis.pipeline(transaction=False)
        self.add(pipe, record)
        await pipe.execute()


def make(kind: AuditKind, actor: str, **fields: Any) -> AuditRecord:
    """A record stamped now; `fields` are AuditRecord's (session_key, run_id, action, ...)."""
    return AuditRecord(kind=kind, actor=actor, at_ms=fields.pop("at_ms", None) or now_ms(), **fields)


async def record(redis: Redis, log: AuditLog, kind: AuditKind, actor: str, **fields: Any) -> AuditRecord:
    """Write one record now (for callers without a round trip of their own, e.g. budgets:
    `await audit.record(redis, log, "budget", user_id, action="refuse", details={...})`)."""
    entry = make(kind, actor, **fields)
    await log.write(redis, entry)
    return entry


# ---- search and export (pure filters over the stream's pages) --------------------------------


@dataclass(frozen=True)
class Query:
    user: str = ""  # matches actor or actor_name (case-insensitive substring)
    thread: str = ""  # matches the session key (substring)
    kind: str = ""
    since_ms: int | None = None
    until_ms: int | None = None
    limit: int = 200


def matches(entry: AuditRecord, query: Query) -> bool:
    user, thread = query.user.lower(), query.thread
    if user and user not in entry.actor.lower() and user not in entry.actor_name.lower():
        return False
    if thread and thread not in entry.session_key:
        return False
    if query.since_ms is not None and entry.at_ms < query.since_ms:
        return False
    if query.until_ms is not None and entry.at_ms > query.until_ms:
        return False
    return not query.kind or entry.kind == query.kind


def _id_bounds(query: Query) -> tuple[str, str]:
    """The stream-id window holding every record of the query's time window: an entry's id is
    the time Redis appended it, a moment after its `at_ms` (records are then filtered on it)."""
    low = str(query.since_ms) if query.since_ms is not None else "-"
    high = str(query.until_ms + WRITE_SLACK_MS) if query.until_ms is not None else "+"
    return low, high


def _decoded(entries: Iterable[tuple[Any, Any]]) -> list[AuditRecord]:
    found = []
    for _, fields in entries:
        raw = (fields or {}).get(b"data") or (fields or {}).get("data")
        if raw is None:
            continue
        try:
            found.append(decode(AuditRecord, raw))
        except ContractError:
            continue  # a record of a newer contract: skipped, never a failed search
    return found


async def search(redis: Redis, keys: Keys, query: Query) -> list[AuditRecord]:
    """Newest first, at most `query.limit` matches within the time window."""
    low, high = _id_bounds(query)
    found: list[AuditRecord] = []
    scanned = 0
    while scanned < SEARCH_SCAN_LIMIT and len(found) < query.limit:
        page = await redis.xrevrange(keys.audit_stream, max=high, min=low, count=SCAN_PAGE)
        if not page:
            break
        scanned += len(page)
        found.extend(e for e in _decoded(page) if matches(e, query))
        last = page[-1][0]
        last_id = last.decode() if isinstance(last, bytes) else str(last)
        high = "(" + last_id
    return found[: query.limit]


async def export(redis: Redis, keys: Keys, query: Query) -> list[AuditRecord]:
    """Oldest first, every match in the window (the export pages the whole stream)."""
    low, high = _id_bounds(query)
    found: list[AuditRecord] = []
    while True:
        page = await redis.xrange(keys.audit_stream, min=low, max=high, count=SCAN_PAGE)
        if not page:
            return found
        found.extend(e for e in _decoded(page) if matches(e, query))
        last = page[-1][0]
        low = "(" + (last.decode() if isinstance(last, bytes) else str(last))


def to_jsonl(records: Iterable[AuditRecord]) -> str:
    """One JSON object per line, each a whole AuditRecord (`v` included)."""
    return "".join(json.dumps(r.model_dump(mode="json"), sort_keys=True) + "\n" for r in records)
