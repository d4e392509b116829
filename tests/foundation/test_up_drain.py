"""`up` stops a child UP_STOP_GRACE_S after SIGTERM: its runners drain within that (unless the
operator chose RUNNER_DRAIN_GRACE_S), so a Ctrl-C hands turns over instead of cutting them."""

from __future__ import annotations

from pathlib import Path

import pytest

from codex_broker.cli.config import Settings
from codex_broker.cli.main import UP_DRAIN_MARGIN_S, runner_drain_env


def test_up_fits_the_runner_drain_into_its_stop_grace(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no developer .env
    for name in ("RUNNER_DRAIN_GRACE_S", "DRAIN_GRACE_S"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(up_stop_grace_s=45)
    assert runner_drain_env(settings) == {"RUNNER_DRAIN_GRACE_S": str(45 - UP_DRAIN_MARGIN_S)}
    monkeypatch.setenv("RUNNER_DRAIN_GRACE_S", "600")
    assert runner_drain_env(settings) == {}  # the operator's choice stands
