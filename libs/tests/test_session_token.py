"""The session token's file and Redis records, against a real Redis."""

from __future__ import annotations

import stat
from pathlib import Path

from redis.asyncio import Redis

from codex_broker.libs import session_token
from codex_broker.libs.keys import Keys

SK = "slack:C1:1.0"


async def owner_of(redis: Redis, keys: Keys, token: str) -> bytes | None:
    return await redis.get(keys.session_by_token(session_token.token_sha256(token)))


async def test_minted_into_a_private_file_and_only_its_hash_in_redis(
    redis: Redis, keys: Keys, tmp_path: Path
) -> None:
    path = await session_token.ensure_session_token(redis, keys, tmp_path, SK, ttl_s=600)
    token = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.parent.name != "workspace" and path.name == session_token.TOKEN_FILE
    assert await owner_of(redis, keys, token) == SK.encode()
    assert await redis.get(keys.session_token_hash(SK)) == session_token.token_sha256(token).encode()
    stored = [await redis.get(key) async for key in redis.scan_iter(match=f"{keys.prefix}:*")]
    assert all(token.encode() not in (value or b"") for value in stored)
    assert 0 < await redis.ttl(keys.session_token_hash(SK)) <= 600


async def test_a_valid_token_is_kept_and_its_lifetime_extended(
    redis: Redis, keys: Keys, tmp_path: Path
) -> None:
    path = await session_token.ensure_session_token(redis, keys, tmp_path, SK, ttl_s=100)
    token = path.read_text()
    await session_token.ensure_session_token(redis, keys, tmp_path, SK, ttl_s=5000)
    assert path.read_text() == token
    assert await redis.ttl(keys.session_by_token(session_token.token_sha256(token))) > 100


async def test_rotation_and_revocation_end_the_old_token(redis: Redis, keys: Keys, tmp_path: Path) -> None:
    path = await session_token.ensure_session_token(redis, keys, tmp_path, SK, ttl_s=600)
    first = path.read_text()
    await session_token.ensure_session_token(redis, keys, tmp_path, SK, ttl_s=600, rotate=True)
    second = path.read_text()
    assert second != first and await owner_of(redis, keys, first) is None
    await session_token.revoke_session_token(redis, keys, SK)
    assert await owner_of(redis, keys, second) is None
    assert await redis.get(keys.session_token_hash(SK)) is None
    # the next run finds the file's token unknown and replaces it
    await session_token.ensure_session_token(redis, keys, tmp_path, SK, ttl_s=600)
    third = path.read_text()
    assert third not in (first, second) and await owner_of(redis, keys, third) == SK.encode()


async def test_a_token_planted_in_the_file_is_not_adopted(redis: Redis, keys: Keys, tmp_path: Path) -> None:
    path = session_token.token_file(tmp_path, SK)
    session_token.write_private_file(path, "chosen-by-the-agent")
    await session_token.ensure_session_token(redis, keys, tmp_path, SK, ttl_s=600)
    assert path.read_text() != "chosen-by-the-agent"
    assert await owner_of(redis, keys, "chosen-by-the-agent") is None


async def test_a_file_token_that_is_no_longer_current_is_replaced_and_its_key_dropped(
    redis: Redis, keys: Keys, tmp_path: Path
) -> None:
    """The refresh extends both keys in one round trip before it knows the token is current;
    a stale token of the session (its key left behind while the session's hash moved on) must
    then neither be kept nor outlive the replacement."""
    path = await session_token.ensure_session_token(redis, keys, tmp_path, SK, ttl_s=600)
    stale = path.read_text()
    await redis.set(keys.session_token_hash(SK), session_token.token_sha256("another"), ex=600)
    await session_token.ensure_session_token(redis, keys, tmp_path, SK, ttl_s=600)
    fresh = path.read_text()
    assert fresh != stale and await owner_of(redis, keys, fresh) == SK.encode()
    assert await owner_of(redis, keys, stale) is None
    assert await redis.get(keys.session_token_hash(SK)) == session_token.token_sha256(fresh).encode()


async def test_a_foreign_token_planted_in_the_file_is_neither_adopted_nor_revoked(
    redis: Redis, keys: Keys, tmp_path: Path
) -> None:
    """The file is the session's own commands' to write: a token of another session planted
    there (as if it had leaked) must not become this session's, nor be deleted by its refresh."""
    other = "slack:C2:2.0"
    foreign = (await session_token.ensure_session_token(redis, keys, tmp_path, other, ttl_s=600)).read_text()
    session_token.write_private_file(session_token.token_file(tmp_path, SK), foreign)
    await session_token.ensure_session_token(redis, keys, tmp_path, SK, ttl_s=600)
    assert session_token.token_file(tmp_path, SK).read_text() != foreign
    assert await owner_of(redis, keys, foreign) == other.encode()  # the other session keeps it
