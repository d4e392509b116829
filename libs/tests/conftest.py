"""Fixtures for the libs tests: the real Redis (unique key prefix per test) and private servers.

The `redis_url` / `key_prefix` / `keys` / `redis` fixtures are tests/conftest.py's (pytest does
not share conftest files across sibling trees, so they are imported), plus `private_redis`: a
redis-server of our own on a free port that a test may stop and restart (outage tests must never
touch the shared one).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis import Redis as SyncRedis

from tests.conftest import key_prefix, keys, redis, redis_url

__all__ = ["key_prefix", "keys", "redis", "redis_url"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PrivateRedis:
    """A redis-server child on a fixed loopback port; `stop()` / `start()` simulate an outage."""

    binary: str
    directory: Path
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            client = SyncRedis(port=self.port, socket_connect_timeout=0.5)
            try:
                if client.ping():
                    return
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"private redis-server on {self.port} did not start") from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not on PATH")
    server = PrivateRedis(binary=binary, directory=tmp_path)
    server.start()
    yield server
    server.stop()
