"""Fixtures every end-to-end module shares (one fake model process per module)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import harness
from tests.fakes.fake_model import FakeModelClient


@pytest.fixture(scope="module")
def fake_model_process() -> Iterator[FakeModelClient]:
    with harness.fake_model_process() as model:
        yield model


@pytest.fixture(scope="module")
def workspace_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return harness.workspace_root(tmp_path_factory)
