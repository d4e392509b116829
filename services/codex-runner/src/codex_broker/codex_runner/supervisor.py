"""One warm `codex app-server` per auth profile: started once, restarted with backoff.

The supervisor owns the process, knows which Codex threads are loaded in the current process,
routes notifications and server requests to the turn bound to their thread, and tells every
bound turn when the process goes away so that it can fail within seconds instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from pathlib import Path
from typing import Any, Protocol

from codex_broker.codex_runner import dynamic_tools, metrics
from codex_broker.codex_runner.app_server import METHOD_NOT_FOUND, AppServer, AppServerError, AppServerGone
from codex_broker.codex_runner.config import Settings
from codex_broker.codex_runner.environment import Profile, app_server_command, child_env
from codex_broker.codex_runner.translate import ThreadSettings
from codex_broker.libs.logs import redactor
from codex_broker.libs.rawlog import KIND_CODEX_RPC

log = logging.getLogger(__name__)

CLIENT_NAME = "codex-broker"
CLIENT_VERSION = "0.1.0"
PING_METHOD = "codexBroker/ping"  # unknown to Codex: any answer, even an error, proves liveness


class ThreadListener(Protocol):
    def on_notification(self, method: str, params: dict[str, Any]) -> None: ...

    def on_server_request(
        self, server: AppServer, request_id: Any, method: str, params: dict[str, Any]
    ) -> None: ...

    def on_app_server_exit(self, reason: str) -> None: ...


def thread_id_of(params: dict[str, Any]) -> str | None:
    thread_id = params.get("threadId")
    if thread_id is None and isinstance(params.get("thread"), dict):
        thread_id = params["thread"].get("id")
    return thread_id if isinstance(thread_id, str) else None


class Supervisor:
    def __init__(self, settings: Settings, profile: Profile, codex_bin: str) -> None:
        self.settings = settings
        self.profile = profile
        self.codex_bin = codex_bin
        self.server: AppServer | None = None
        self.ready = asyncio.Event()
        # threads loaded in the current process, with the settings they run with
        self.loaded_threads: dict[str, ThreadSettings] = {}
        self.listeners: dict[str, ThreadListener] = {}
        self.last_error = ""
        self.restarts = 0
        self._stopping = False

    # ---- routing ---------------------------------------------------------------------------
    def bind(self, thread_id: str, listener: ThreadListener) -> None:
        self.listeners[thread_id] = listener

    def unbind(self, thread_id: str, listener: ThreadListener) -> None:
        if self.listeners.get(thread_id) is listener:
            del self.listeners[thread_id]

    def _on_notification(self, method: str, params: dict[str, Any]) -> None:
        thread_id = thread_id_of(params)
        listener = self.listeners.get(thread_id) if thread_id else None
        if listener is not None:
            listener.on_notification(method, params)
        elif method == "thread/closed" and thread_id:
            self.loaded_threads.pop(thread_id, None)

    def _on_server_request(
        self, server: AppServer, request_id: Any, method: str, params: dict[str, Any]
    ) -> None:
        thread_id = thread_id_of(params)
        listener = self.listeners.get(thread_id) if thread_id else None
        if listener is not None:
            listener.on_server_request(server, request_id, method, params)
            return
        # Nobody can answer (auth refresh, elicitation outside a turn): refuse rather than hang Codex.
        asyncio.get_running_loop().create_task(
            _quiet(
                server.respond_error(
                    request_id, METHOD_NOT_FOUND, f"{method} is not supported by codex-broker"
                )
            )
        )

    # ---- lifecycle -------------------------------------------------------------------------
    async def get(self, timeout_s: float) -> AppServer:
        """The warm server; waits (bounded) while it is starting or restarting."""
        server = self.server
        if server is not None and self.ready.is_set() and server.alive:
            return server
        try:
            await asyncio.wait_for(self.ready.wait(), timeout_s)
        except TimeoutError as exc:
            detail = f": {self.last_error}" if self.last_error else ""
            raise AppServerGone(
                f"codex app-server for profile {self.profile.name} is not available{detail}"
            ) from exc
        assert self.server is not None
        return self.server

    async def run(self, stop: asyncio.Event) -> None:
        """Start, keep warm, restart with backoff and jitter until `stop`."""
        backoff = 0.5
        while not stop.is_set():
            started = asyncio.get_running_loop().time()
            try:
                server = await self._start()
            except Exception as exc:
                self.last_error = f"start failed: {exc}"
                log.error(
                    "codex app-server failed to start",
                    extra={"profile": self.profile.name, "error": str(exc)},
                )
            else:
                await self._serve(server, stop)
            if stop.is_set():
                break
            if asyncio.get_running_loop().time() - started > 60:
                backoff = 0.5  # it ran fine for a while: restart quickly
            metrics.APP_SERVER_RESTARTS.inc()
            self.restarts += 1
            delay = backoff * (0.5 + random.random())
            log.warning(
                "restarting codex app-server", extra={"profile": self.profile.name, "in_s": round(delay, 2)}
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            backoff = min(backoff * 2, self.settings.restart_backoff_max_s)

    async def close(self) -> None:
        self._stopping = True
        self.ready.clear()
        if self.server is not None:
            await self.server.close()

    async def _start(self) -> AppServer:
        command = app_server_command(self.settings, self.codex_bin, self.profile)
        server = await AppServer.spawn(
            command,
            child_env(self.settings, self.profile),
            Path(self.profile.codex_home),
            on_notification=self._on_notification,
            on_server_request=lambda request_id, method, params: self._on_server_request(
                server, request_id, method, params
            ),
            name=f"codex:{self.profile.name}",
            raw_log=self.settings.raw_log(KIND_CODEX_RPC, redactor()),
        )
        try:
            await server.initialize(
                CLIENT_NAME,
                CLIENT_VERSION,
                timeout_s=self.settings.request_timeout_s,
                capabilities=dynamic_tools.CAPABILITIES,
            )
        except (AppServerGone, AppServerError) as exc:
            tail = server.stderr_tail[-500:]
            await server.close()
            raise AppServerGone(f"{exc}; stderr: {tail}" if tail else str(exc)) from exc
        self.server = server
        self.loaded_threads = {}
        self.last_error = ""
        self.ready.set()
        metrics.APP_SERVER_UP.inc()
        log.info("codex app-server ready", extra={"profile": self.profile.name, "pid": server.pid})
        return server

    async def _serve(self, server: AppServer, stop: asyncio.Event) -> None:
        pinger = asyncio.create_task(self._ping_loop(server))
        stopper = asyncio.create_task(stop.wait())
        exited = asyncio.create_task(server.exited.wait())
        try:
            await asyncio.wait([stopper, exited], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pinger, stopper, exited):
                task.cancel()
            self.ready.clear()
            metrics.APP_SERVER_UP.dec()
        if stop.is_set() and not server.exited.is_set():
            return  # the runner drains turns first and closes the server itself
        self.last_error = server.exit_reason
        tail = server.stderr_tail[-300:]
        log.error(
            "codex app-server went away",
            extra={"profile": self.profile.name, "reason": server.exit_reason, "stderr_tail": tail},
        )
        for listener in list(self.listeners.values()):
            listener.on_app_server_exit(server.exit_reason)
        self.listeners.clear()
        self.loaded_threads = {}
        await server.close(grace_s=1.0)

    async def _ping_loop(self, server: AppServer) -> None:
        interval = self.settings.ping_interval_s
        while server.alive:
            await asyncio.sleep(interval)
            if not self.listeners:
                continue  # nobody waits on it: a hang will show at the next request
            try:
                await server.request(PING_METHOD, timeout_s=interval)
            except AppServerError:
                pass  # an answer, so it is alive
            except AppServerGone as exc:
                if server.alive:
                    log.error("codex app-server stopped answering; killing it", extra={"error": str(exc)})
                    server.exit_reason = f"codex app-server stopped answering ({exc})"
                    server.kill()
                return


async def _quiet(awaitable: Any) -> None:
    with contextlib.suppress(Exception):
        await awaitable
