"""`codex-broker audit export`: the audit trail as JSONL on stdout (the admin API's export,
without the http-api), and the operator identity the CLI's own actions are recorded under."""

from __future__ import annotations

import getpass
import socket
from datetime import UTC, datetime

from redis.asyncio import Redis

from codex_broker.libs import audit
from codex_broker.libs.keys import Keys


class TimeArgError(ValueError):
    pass


def parse_time(raw: str | None) -> int | None:
    """Milliseconds since the epoch, or an ISO date / date-time (UTC unless it names a zone)."""
    if raw is None or raw == "":
        return None
    if raw.isdigit():
        return int(raw)
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise TimeArgError(f"not a time: {raw!r} (ms since the epoch or ISO 8601)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def operator_identity() -> str:
    """Who ran the CLI: the OS user on this host (the CLI holds no admin token of its own)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


async def export(redis: Redis, keys: Keys, query: audit.Query) -> str:
    return audit.to_jsonl(await audit.export(redis, keys, query))
