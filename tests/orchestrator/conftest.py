from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from codex_broker.libs.keys import Keys
from codex_broker.orchestrator.config import Settings
from tests.orchestrator.harness import Driver, make_settings


@pytest_asyncio.fixture
async def driver(redis: Redis, keys: Keys) -> AsyncIterator[Driver]:
    d = Driver(redis, keys)
    try:
        yield d
    finally:
        await d.close()


@pytest.fixture
def settings_for(key_prefix: str, redis_url: str, tmp_path: Path) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        return make_settings(key_prefix, redis_url, tmp_path / "data", **overrides)

    return build
