"""Codex's SQLite databases live in one directory of the profile's CODEX_HOME
(environment.SQLITE_DIR, `sqlite_home`): one entry for the seal to hide instead of a bubblewrap
mount per database file in every sandboxed command and helper. Hidden all the same: a sealed
session's command can neither list the directory nor read a database in it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from redis.asyncio import Redis

from codex_broker.libs import paths
from codex_broker.libs.keys import Keys
from tests.fakes.fake_model import FakeModel
from tests.security.support import run_session_probes

pytestmark = pytest.mark.codex


async def test_codex_databases_are_in_one_hidden_directory(
    data_root: Path, fake_model: FakeModel, redis: Redis, keys: Keys, key_prefix: str, redis_url: str
) -> None:
    folder = paths.codex_home(data_root) / "sqlite"
    probes = {
        "list": f"ls {folder}",
        "state": f"head -c 16 {folder}/state_5.sqlite",
    }
    output = await run_session_probes(data_root, fake_model, redis, keys, key_prefix, redis_url, probes)
    databases = sorted(p.name for p in folder.iterdir())
    assert "state_5.sqlite" in databases, databases
    assert not list(paths.codex_home(data_root).glob("*.sqlite*"))  # none left at the top level
    assert "SQLite format 3" not in output, output
    for name in probes:
        answer = re.search(rf"<<{name}:(.*?)>>", output, re.S)
        assert answer and "Permission denied" in answer.group(1), output
