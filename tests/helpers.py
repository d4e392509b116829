"""Small helpers shared by integration and end-to-end tests (loopback only, bounded waits)."""

from __future__ import annotations

import asyncio
import io
import re
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def wait_for(
    probe: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
    *,
    timeout_s: float = 10.0,
    interval_s: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)


async def wait_for_output(out: io.StringIO, pattern: str, timeout_s: float = 30.0) -> re.Match[str]:
    """Until `pattern` shows in what a process printed into `out`; its whole output on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = re.search(pattern, out.getvalue())
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {pattern!r} in output:\n{out.getvalue()}")
        await asyncio.sleep(0.02)
