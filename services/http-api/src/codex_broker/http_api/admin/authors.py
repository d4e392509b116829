"""GitHub author mappings: platform user id → {name, email, source} in `keys.github_authors(platform)`.

Manual entries (admin API / page) always win; an inferred entry (platform profile email) may only
fill a gap or refresh another inferred entry. Whoever writes inferred entries applies
`may_replace` so that an operator's correction is never overwritten.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from redis.asyncio import Redis

from codex_broker.libs.keys import Keys

Source = Literal["manual", "inferred"]


@dataclass(frozen=True)
class Author:
    name: str
    email: str
    source: Source = "manual"

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def parse_author(raw: bytes | str | None) -> Author | None:
    """A stored mapping, or None when absent or unreadable (never raises on bad data)."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    name, email = data.get("name"), data.get("email")
    if not isinstance(name, str) or not isinstance(email, str):
        return None
    source: Source = "inferred" if data.get("source") == "inferred" else "manual"
    return Author(name=name, email=email, source=source)


def may_replace(existing: Author | None, incoming: Author) -> bool:
    """Manual wins over inferred: only a manual write may replace a manual entry."""
    return existing is None or existing.source == "inferred" or incoming.source == "manual"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def list_authors(redis: Redis, keys: Keys, platform: str) -> list[dict[str, Any]]:
    raw: dict[Any, Any] = await redis.hgetall(keys.github_authors(platform))  # type: ignore[misc]
    rows = []
    for user, value in raw.items():
        author = parse_author(value)
        if author is not None:
            rows.append({"platform": platform, "userId": _text(user), **asdict(author)})
    return sorted(rows, key=lambda row: (row["name"].lower(), row["userId"]))


async def set_manual(redis: Redis, keys: Keys, platform: str, user: str, author: Author) -> None:
    await redis.hset(keys.github_authors(platform), user, author.to_json())  # type: ignore[misc]


async def delete_author(redis: Redis, keys: Keys, platform: str, user: str) -> bool:
    removed = await redis.hdel(keys.github_authors(platform), user)  # type: ignore[misc]
    return bool(removed)


async def authors_for(redis: Redis, keys: Keys, platform: str, users: list[str]) -> dict[str, Author]:
    if not users:
        return {}
    values = await redis.hmget(keys.github_authors(platform), users)  # type: ignore[misc]
    found = {}
    for user, value in zip(users, values, strict=True):
        author = parse_author(value)
        if author is not None:
            found[user] = author
    return found
