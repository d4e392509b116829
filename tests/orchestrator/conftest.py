from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from codex_broker.libs import paths
from codex_broker.libs.keys import Keys
from codex_broker.orchestrator.config import Settings
from tests.fakes.codex_home import write_codex_home
from tests.fakes.fake_model import FakeModel
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


@pytest.fixture
def fake_model() -> Iterator[FakeModel]:
    with FakeModel() as fake:
        yield fake


@pytest.fixture
def codex_data_root(tmp_path: Path, fake_model: FakeModel) -> Path:
    """DATA_ROOT whose CODEX_HOME points Codex at the fake model (as an operator's config would)."""
    root = tmp_path / "data"
    write_codex_home(paths.codex_home(root), fake_model.base_url)
    return root
