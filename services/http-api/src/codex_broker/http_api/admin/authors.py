"""GitHub author mappings as the admin manages them, over `libs.authors` (format, parsing, rules).

`keys.github_authors(platform)`: platform user id → JSON {name, email, source: manual|inferred}.
The admin always writes manual entries, which win over inferred ones (`libs.authors.may_replace`
is the rule the inferring side applies atomically).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs.authors import Author, authors_for, may_replace, parse_author
from codex_broker.libs.keys import Keys

__all__ = [
    "Author",
    "authors_for",
    "delete_author",
    "list_authors",
    "may_replace",
    "parse_author",
    "set_manual",
]


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
