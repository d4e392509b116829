"""One long connection per app across replicas: whoever holds the Redis lease connects.

Feishu spreads events over all connections of an app, so two replicas connected at once would
each get a share — fine for delivery but it doubles the places that must be healthy. One
holder keeps it simple; the other replicas wait as hot standby and take over within about one
lease time after the holder dies (its lease lapses) or shuts down (it releases the lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from codex_broker.ingress_feishu import metrics
from codex_broker.libs.lease import Lease

log = logging.getLogger(__name__)

SupervisorState = Literal["standby", "connecting", "connected", "failed", "stopped"]


class Connection(Protocol):
    def start(self) -> None: ...
    def stop(self, timeout_s: float = 5.0) -> None: ...
    @property
    def state(self) -> str: ...
    @property
    def alive(self) -> bool: ...


@dataclass
class ConnectionSupervisor:
    """Holds the lease while connected; (re)starts the connection; steps down when the lease is lost."""

    lease: Lease
    connect: Callable[[], Connection]
    restart_backoff_max_s: float = 60.0
    _conn: Connection | None = None
    _held_since_renew: float = 0.0
    _holding: bool = False
    _failures: int = 0
    _next_start_at: float = 0.0
    last_error: str | None = field(default=None)

    @property
    def state(self) -> SupervisorState:
        if not self._holding:
            return "standby"
        if self._conn is None:
            return "failed" if self.last_error else "connecting"
        conn_state = self._conn.state
        return conn_state if conn_state in ("connecting", "connected", "failed") else "connecting"  # type: ignore[return-value]

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.lease.ttl_ms / 3000
        try:
            while not stop.is_set():
                try:
                    await self._tick()
                except Exception as exc:  # Redis away: keep the connection only while the lease surely holds
                    log.warning("lease tick failed", extra={"error": str(exc)[:200]})
                    if (
                        self._holding
                        and time.monotonic() - self._held_since_renew > self.lease.ttl_ms / 1000 * 0.9
                    ):
                        await self._step_down("lease not renewable")
                metrics.WS_CONNECTED.set(1 if self.state == "connected" else 0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval)
        finally:
            await self._step_down("shutdown", release=True)

    async def _tick(self) -> None:
        if not self._holding:
            if await self.lease.acquire():
                self._holding = True
                self._held_since_renew = time.monotonic()
                metrics.WS_LEASE_HELD.set(1)
                log.info("feishu connection lease acquired", extra={"holder": self.lease.holder})
            else:
                return
        elif await self.lease.renew():
            self._held_since_renew = time.monotonic()
        else:
            await self._step_down("lease lost")
            return
        await self._ensure_connection()

    async def _ensure_connection(self) -> None:
        if self._conn is not None and self._conn.alive:
            if self._conn.state == "connected":
                self._failures = 0
            return
        if self._conn is not None:  # the client thread ended by itself (bad credentials, …)
            self.last_error = getattr(self._conn, "error", None) or "long connection ended"
            self._conn = None
            self._failures += 1
            delay = min(2.0**self._failures, self.restart_backoff_max_s)
            self._next_start_at = time.monotonic() + delay
            log.warning(
                "feishu long connection ended; restarting", extra={"error": self.last_error, "in_s": delay}
            )
        if time.monotonic() < self._next_start_at:
            return
        conn = self.connect()
        conn.start()
        self._conn = conn

    async def _step_down(self, reason: str, *, release: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(conn.stop)
        if self._holding:
            log.info("feishu connection lease given up", extra={"reason": reason})
            if release:
                with contextlib.suppress(Exception):
                    await self.lease.release()
        self._holding = False
        metrics.WS_LEASE_HELD.set(0)
        metrics.WS_CONNECTED.set(0)
