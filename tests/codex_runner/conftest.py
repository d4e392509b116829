"""Fixtures for codex-runner tests: the fake Responses endpoint and a DATA_ROOT pointing Codex at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from codex_broker.libs import paths
from tests.fakes.codex_home import write_codex_home
from tests.fakes.fake_model import FakeModel


@pytest.fixture
def fake_model() -> Iterator[FakeModel]:
    with FakeModel() as fake:
        yield fake


@pytest.fixture
def data_root(tmp_path: Path, fake_model: FakeModel) -> Path:
    """DATA_ROOT whose default CODEX_HOME has the operator-style config.toml for the fake."""
    root = tmp_path / "data"
    write_codex_home(paths.codex_home(root), fake_model.base_url)
    return root
