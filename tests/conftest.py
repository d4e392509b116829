"""Fixtures shared by every test under tests/: a real Redis, isolated by a unique key prefix."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from codex_broker.libs.keys import Keys


def _dump_asyncio_tasks(signum: int, frame: object) -> None:
    """`kill -USR1 <pytest pid>`: every task of the running loop with its stack, for a test that
    waits on something that never comes (the loop idles, so a thread dump shows only select)."""
    try:
        tasks = asyncio.all_tasks(asyncio.get_running_loop())
    except RuntimeError:
        return
    for task in tasks:
        print(f"--- {task.get_name()}", file=sys.stderr)
        task.print_stack(limit=12, file=sys.stderr)


signal.signal(signal.SIGUSR1, _dump_asyncio_tasks)

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def key_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    return Keys(prefix=key_prefix, shard_count=4)


@pytest_asyncio.fixture
async def redis(redis_url: str, key_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.ping()
    yield client
    async for key in client.scan_iter(match=f"{key_prefix}:*", count=1000):
        await client.delete(key)
    await client.aclose()
