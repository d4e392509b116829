"""One `codex app-server` child process spoken to over stdio JSON lines.

The wire is JSON-RPC 2.0 without the `"jsonrpc"` field: requests carry `id` + `method`,
responses `id` + `result`/`error`, notifications `method` only; the server also sends requests
of its own (approvals) which we answer with the same `id`. Notifications and server requests
are handed to synchronous callbacks in arrival order — they must not block.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import itertools
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codex_broker.libs.rawlog import RawLog

log = logging.getLogger(__name__)

STREAM_LIMIT = 64 * 1024 * 1024  # one line can carry a whole command output
PR_SET_PDEATHSIG = 1


def _load_libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()


def _die_with_runner(runner_pid: int) -> Callable[[], None]:
    """Between fork and exec: SIGKILL the app-server when the runner dies. It runs in its own
    session, so a SIGKILLed runner's process-group kill (by `up`) does not reach it, and an
    orphaned app-server would keep its Codex threads' writer locks (found by tests/replicas)."""

    def setup() -> None:
        if _LIBC is None:
            return
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != runner_pid:  # the runner died before prctl took effect
            os._exit(1)

    return setup


STDERR_TAIL_LINES = 20
METHOD_NOT_FOUND = -32601

NotificationHandler = Callable[[str, dict[str, Any]], None]
ServerRequestHandler = Callable[[Any, str, dict[str, Any]], None]


class AppServerError(Exception):
    """The app-server answered a request with an error."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: {message}")
        self.method = method
        self.code = code
        self.message = message


class AppServerGone(Exception):
    """The app-server exited, or did not answer in time and was given up on."""


class AppServer:
    def __init__(
        self,
        process: asyncio.subprocess.Process,
        *,
        on_notification: NotificationHandler,
        on_server_request: ServerRequestHandler,
        name: str = "codex",
        raw_log: RawLog | None = None,
    ) -> None:
        self.process = process
        self.name = name
        self._on_notification = on_notification
        self._on_server_request = on_server_request
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.exited = asyncio.Event()
        self._raw_log = raw_log if raw_log is not None and raw_log.enabled else None
        self.exit_reason = ""
        self._reader = asyncio.create_task(self._read_stdout(), name=f"{name}-stdout")
        self._stderr = asyncio.create_task(self._read_stderr(), name=f"{name}-stderr")

    @classmethod
    async def spawn(
        cls,
        command: list[str],
        env: dict[str, str],
        cwd: Path,
        *,
        on_notification: NotificationHandler,
        on_server_request: ServerRequestHandler,
        name: str = "codex",
        raw_log: RawLog | None = None,
    ) -> AppServer:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=str(cwd),
            limit=STREAM_LIMIT,
            start_new_session=True,  # a Ctrl-C of the runner's terminal must not hit Codex first
            preexec_fn=_die_with_runner(os.getpid()),
        )
        return cls(
            process,
            on_notification=on_notification,
            on_server_request=on_server_request,
            name=name,
            raw_log=raw_log,
        )

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    @property
    def alive(self) -> bool:
        return not self.exited.is_set()

    @property
    def stderr_tail(self) -> str:
        return "\n".join(self._stderr_tail)

    async def initialize(
        self, client_name: str, version: str, *, timeout_s: float, capabilities: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"clientInfo": {"name": client_name, "version": version}}
        if capabilities:
            params["capabilities"] = capabilities
        result = await self.request("initialize", params, timeout_s=timeout_s)
        await self.notify("initialized")
        return result

    async def request(self, method: str, params: dict[str, Any] | None = None, *, timeout_s: float) -> Any:
        if self.exited.is_set():
            raise AppServerGone(self.exit_reason or "app-server is not running")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (method, future)
        message: dict[str, Any] = {"id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        try:
            await self._write(message)
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError as exc:
            raise AppServerGone(f"{method}: no answer within {timeout_s:g}s") from exc
        finally:
            self._pending.pop(request_id, None)

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"method": method}
        if params is not None:
            message["params"] = params
        await self._write(message)

    async def respond(self, request_id: Any, result: dict[str, Any]) -> None:
        await self._write({"id": request_id, "result": result})

    async def respond_error(self, request_id: Any, code: int, message: str) -> None:
        await self._write({"id": request_id, "error": {"code": code, "message": message}})

    async def _write(self, message: dict[str, Any]) -> None:
        stdin = self.process.stdin
        if stdin is None or stdin.is_closing():
            raise AppServerGone(self.exit_reason or "app-server stdin is closed")
        if self._raw_log is not None:
            self._raw_log.write({"direction": "out", "app_server": self.name, "message": message})
        try:
            stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise AppServerGone(f"app-server stdin closed: {exc}") from exc

    async def _read_stdout(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            while True:
                line = await stdout.readline()
                if not line:
                    break
                self._dispatch(line)
        except Exception as exc:  # a broken pipe or an oversized line: the connection is unusable
            log.exception("app-server stdout reader failed", extra={"app_server": self.name})
            self.exit_reason = f"app-server output unreadable: {exc}"
        code = await self.process.wait()
        self._kill_leftovers()
        await asyncio.sleep(0)  # let the stderr reader catch the last lines
        self._mark_exited(f"codex app-server exited with code {code}")

    def _dispatch(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            log.warning(
                "app-server wrote a non-JSON line", extra={"line": line[:200].decode(errors="replace")}
            )
            return
        if self._raw_log is not None:
            self._raw_log.write({"direction": "in", "app_server": self.name, "message": message})
        method = message.get("method")
        if method is None:
            self._resolve(message)
            return
        params = message.get("params") or {}
        try:
            if "id" in message:
                self._on_server_request(message["id"], method, params)
            else:
                self._on_notification(method, params)
        except Exception:  # a handler bug must not kill the connection shared by every turn
            log.exception("app-server message handler failed", extra={"method": method})

    def _resolve(self, message: dict[str, Any]) -> None:
        entry = self._pending.get(message.get("id"))  # type: ignore[arg-type]
        if entry is None:
            return
        method, future = entry
        if future.done():
            return
        error = message.get("error")
        if error is not None:
            future.set_exception(
                AppServerError(method, int(error.get("code", 0)), str(error.get("message", "")))
            )
        else:
            future.set_result(message.get("result"))

    async def _read_stderr(self) -> None:
        stderr = self.process.stderr
        assert stderr is not None
        with contextlib.suppress(Exception):
            async for raw in stderr:
                text = raw.decode(errors="replace").rstrip()[:1000]
                self._stderr_tail.append(text)
                log.debug("codex stderr", extra={"app_server": self.name, "line": text})

    def _mark_exited(self, reason: str) -> None:
        if self.exited.is_set():
            return
        self.exit_reason = self.exit_reason or reason
        for method, future in list(self._pending.values()):
            if not future.done():
                future.set_exception(AppServerGone(f"{method}: {self.exit_reason}"))
        self.exited.set()

    async def close(self, grace_s: float = 5.0) -> None:
        """Close stdin (the server exits on EOF), then SIGTERM, then SIGKILL; always reaps."""
        if self.process.returncode is None:
            with contextlib.suppress(Exception):
                if self.process.stdin is not None:
                    self.process.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), grace_s / 2)
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), grace_s / 2)
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
        self._kill_leftovers()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._reader, 2)
        self._stderr.cancel()
        self._mark_exited(f"codex app-server closed (code {self.process.returncode})")

    def kill(self) -> None:
        """Give up on a hung server: SIGKILL; the reader then fails everything in flight."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    def _kill_leftovers(self) -> None:
        # Commands Codex started live in its process group (its own session): end them too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
