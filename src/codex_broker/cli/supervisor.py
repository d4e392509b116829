"""`codex-broker up`: run every service as a child process, prefix its output, keep it alive.

Each child runs in its own session (process group), so that a signal from the terminal reaches
only `up`, which then stops the children in order: services first (SIGTERM to the child, which
drains; SIGKILL to its whole group after the grace period), the embedded Redis last. Whatever a
child leaves behind in its group is killed when the child exits. On Linux a child also gets
SIGTERM from the kernel if `up` itself dies without cleaning up (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from redis.asyncio import Redis

from codex_broker.cli import admin_login, embedded_redis, local_secrets
from codex_broker.cli.config import Settings
from codex_broker.cli.plan import (
    ChildPlan,
    backoff_delay,
    env_without_foreign_secrets,
    failures_after_exit,
    prefix_width,
)

PR_SET_PDEATHSIG = 1
READ_CHUNK = 65536
UP = "up"


class UpError(RuntimeError):
    """`up` cannot start (no redis-server, Redis never answered); the message says what to do."""


def _load_libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()


def _die_with_parent(parent_pid: int) -> None:
    """Runs in the child between fork and exec: SIGTERM me when `up` dies."""
    if _LIBC is None:
        return
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # `up` died before prctl took effect
        os._exit(1)


class Output:
    """Prefixed lines on one text stream: `[orchestrator-1] ...`."""

    def __init__(self, stream: TextIO, width: int) -> None:
        self.stream = stream
        self.width = width

    def line(self, name: str, text: str) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):  # `up | head` must not kill `up`
            self.stream.write(f"{('[' + name + ']').ljust(self.width)} {text}\n")
            self.stream.flush()

    def up(self, text: str) -> None:
        self.line(UP, text)


@dataclass
class Managed:
    plan: ChildPlan
    proc: asyncio.subprocess.Process | None = None
    output: asyncio.StreamReader | None = None
    output_transport: asyncio.BaseTransport | None = None
    started_at: float = 0.0
    failures: int = 0
    restarts: int = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


@dataclass(frozen=True)
class RestartPolicy:
    initial_s: float
    max_s: float
    stable_after_s: float


async def spawn(managed: Managed, out: Output) -> asyncio.subprocess.Process:
    """Start the child with stdout+stderr on a pipe of our own.

    Not asyncio's PIPE: with that, `Process.wait()` (Python 3.11) also waits until the pipe is
    closed, i.e. it hangs while a grandchild holding the pipe outlives the child.
    """
    plan = managed.plan
    parent = os.getpid()
    read_fd, write_fd = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *plan.argv,
            env=dict(plan.env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            start_new_session=True,
            preexec_fn=lambda: _die_with_parent(parent),
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    reader = asyncio.StreamReader()
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
    )
    managed.output, managed.output_transport = reader, transport
    managed.proc = proc
    managed.started_at = time.monotonic()
    port = f", metrics :{plan.metrics_port}" if plan.metrics_port else ""
    out.up(f"started {plan.name} (pid {proc.pid}{port})")
    return proc


async def pump(stream: asyncio.StreamReader | None, name: str, out: Output) -> None:
    """Copy a child's output line by line with its prefix; tolerate lines of any length."""
    if stream is None:
        return
    pending = b""
    while True:
        chunk = await stream.read(READ_CHUNK)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            out.line(name, raw.decode("utf-8", errors="replace").rstrip("\r"))
    if pending:
        out.line(name, pending.decode("utf-8", errors="replace"))


def close_output(managed: Managed) -> None:
    if managed.output_transport is not None:
        managed.output_transport.close()
    managed.output, managed.output_transport = None, None


def signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def signal_child(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


async def supervise(
    managed: Managed,
    out: Output,
    stop: asyncio.Event,
    policy: RestartPolicy,
    *,
    first: asyncio.subprocess.Process | None = None,
) -> None:
    """Keep one child running until `stop`; restart it with backoff whenever it dies."""
    name = managed.plan.name
    proc = first
    while True:
        if proc is None:
            try:
                proc = await spawn(managed, out)
            except OSError as exc:  # e.g. the interpreter vanished under a venv rebuild
                managed.failures += 1
                delay = backoff_delay(managed.failures, initial_s=policy.initial_s, max_s=policy.max_s)
                out.up(f"cannot start {name}: {exc}; retry in {delay:.1f}s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                if stop.is_set():
                    return
                continue
        if stop.is_set():  # stop arrived while spawning: the sweep may have missed this one
            signal_child(proc.pid, signal.SIGTERM)
        reader = asyncio.create_task(pump(managed.output, name, out))
        code = await proc.wait()
        signal_group(proc.pid, signal.SIGKILL)  # whatever it left behind in its group
        with contextlib.suppress(TimeoutError):  # a setsid'd orphan may still hold the pipe
            await asyncio.wait_for(reader, timeout=5)
        close_output(managed)
        uptime = time.monotonic() - managed.started_at
        if stop.is_set():
            out.up(f"{name} stopped (exit code {code})")
            return
        managed.failures = failures_after_exit(
            managed.failures, uptime_s=uptime, stable_after_s=policy.stable_after_s
        )
        managed.restarts += 1
        delay = backoff_delay(managed.failures, initial_s=policy.initial_s, max_s=policy.max_s)
        out.up(
            f"{name} died unexpectedly (exit code {code}) after {uptime:.1f}s; "
            f"restart #{managed.restarts} in {delay:.1f}s"
        )
        proc = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        if stop.is_set():
            return


async def stop_all(
    group: list[Managed], tasks: list[asyncio.Task[None]], out: Output, grace_s: float, force: asyncio.Event
) -> None:
    """SIGTERM every running child, wait up to `grace_s` (or until `force`), then SIGKILL groups."""
    for managed in group:
        if managed.running and managed.proc is not None:
            signal_child(managed.proc.pid, signal.SIGTERM)
    if not tasks:
        return
    forced: asyncio.Task[Any] = asyncio.create_task(force.wait())
    watch: set[asyncio.Task[Any]] = {*tasks, forced}
    deadline = time.monotonic() + grace_s
    while not all(t.done() for t in tasks) and not forced.done():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        await asyncio.wait(watch, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        watch = {t for t in watch if not t.done()}
    forced.cancel()
    if not all(t.done() for t in tasks):
        for managed in group:
            if managed.running and managed.proc is not None:
                out.up(f"{managed.plan.name} did not stop in time: SIGKILL")
                signal_group(managed.proc.pid, signal.SIGKILL)
    await asyncio.gather(*tasks, return_exceptions=True)


async def _ping(url: str) -> bool:
    client = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


async def start_embedded_redis(
    settings: Settings, out: Output, env: Mapping[str, str]
) -> tuple[Managed, asyncio.subprocess.Process, int]:
    """Start redis-server (password required) on a free loopback port and wait until it answers."""
    binary = embedded_redis.find_redis_server(settings.redis_server_bin)
    if binary is None:
        raise UpError(
            "REDIS_URL is unset and no redis-server was found: install one "
            "(apt-get install redis-server, brew install redis) or set REDIS_URL"
        )
    directory = embedded_redis.redis_dir(settings.data_root).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    config_file = embedded_redis.write_config(settings.data_root, embedded_redis.password(settings.data_root))
    for _attempt in range(3):  # a port taken between probing and binding: pick another
        port = embedded_redis.free_loopback_port()
        url = embedded_redis.authed_url(settings.data_root, embedded_redis.url_for(port))
        plan = ChildPlan(
            name="redis",
            service="redis",
            index=1,
            argv=tuple(embedded_redis.server_argv(binary, port, directory, config_file.resolve())),
            env=env_without_foreign_secrets("redis", env),  # Redis owns no secret
        )
        managed = Managed(plan)
        proc = await spawn(managed, out)
        # its output waits in the pipe until `supervise` pumps it (or we do, on failure)
        deadline = time.monotonic() + settings.up_redis_wait_s
        while proc.returncode is None and time.monotonic() < deadline:
            if await _ping(url):
                secret = local_secrets.secret_path(settings.data_root, local_secrets.REDIS_PASSWORD)
                out.up(
                    f"embedded Redis ready at {embedded_redis.url_for(port)} "
                    f"(password in {secret}, AOF in {directory})"
                )
                return managed, proc, port
            await asyncio.sleep(0.05)
        signal_group(proc.pid, signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(pump(managed.output, "redis", out), proc.wait()), timeout=10)
        close_output(managed)
        out.up(f"embedded Redis on port {port} did not come up (exit code {proc.returncode})")
    raise UpError(f"embedded Redis ({binary}) did not answer; see the [redis] lines above")


# One Ctrl-C often arrives twice: from the terminal (to the whole foreground group) and again
# forwarded by a wrapper such as `uv run`. Only a repeat after this long means "kill now".
REPEAT_SIGNAL_AFTER_S = 1.0


def install_stop_signals(stop: asyncio.Event, force: asyncio.Event, out: Output) -> None:
    loop = asyncio.get_running_loop()
    first_at: list[float] = []

    def on_signal(sig: signal.Signals) -> None:
        now = time.monotonic()
        if stop.is_set():
            if first_at and now - first_at[0] >= REPEAT_SIGNAL_AFTER_S and not force.is_set():
                out.up(f"{sig.name} again: killing every child now")
                force.set()
            return
        first_at.append(now)
        out.up(f"{sig.name}: stopping every child")
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, on_signal, sig)


async def run_up(
    settings: Settings,
    children: list[ChildPlan],
    *,
    base_env: Mapping[str, str],
    embedded: bool,
    stream: TextIO | None = None,
    stop: asyncio.Event | None = None,
    notes: Sequence[str] = (),
) -> int:
    """Run until SIGINT/SIGTERM (or `stop`); returns the exit code of `up`."""
    out = Output(stream or sys.stdout, prefix_width([c.name for c in children] + ["redis", UP]))
    for note in notes:
        out.up(note)
    stop = stop or asyncio.Event()
    force = asyncio.Event()
    install_stop_signals(stop, force, out)
    policy = RestartPolicy(
        settings.up_restart_backoff_initial_s,
        settings.up_restart_backoff_max_s,
        settings.up_restart_stable_after_s,
    )
    redis_stop = asyncio.Event()
    redis_managed: Managed | None = None
    redis_task: asyncio.Task[None] | None = None
    env = dict(base_env)
    if embedded:
        other = embedded_redis.read_state(settings.data_root)
        if other is not None:  # two Redis servers on one AOF directory would corrupt it
            out.up(f"cannot start: codex-broker up (pid {other.pid}) already runs on this DATA_ROOT")
            return 1
        try:
            redis_managed, redis_proc, port = await start_embedded_redis(settings, out, env)
        except UpError as exc:
            out.up(f"cannot start: {exc}")
            return 1
        redis_task = asyncio.create_task(supervise(redis_managed, out, redis_stop, policy, first=redis_proc))
        embedded_redis.write_state(
            settings.data_root,
            embedded_redis.EmbeddedState(
                url=embedded_redis.url_for(port), pid=os.getpid(), redis_pid=redis_proc.pid
            ),
        )
        url = embedded_redis.authed_url(settings.data_root, embedded_redis.url_for(port))
        children = [_with_env(child, {"REDIS_URL": url}) for child in children]
    elif "REDIS_URL" in base_env and not await _ping(base_env["REDIS_URL"]):
        out.up("Redis at REDIS_URL does not answer (yet): services will retry until it does")
    if any(child.service == "http-api" for child in children):
        await announce_admin_login(settings, children, out)
    try:
        group = [Managed(child) for child in children]
        tasks = [] if stop.is_set() else [asyncio.create_task(supervise(m, out, stop, policy)) for m in group]
        out.up(f"running {len(group)} children; Ctrl-C or SIGTERM stops them all")
        await stop.wait()
        await stop_all(group, tasks, out, settings.up_stop_grace_s, force)
    finally:
        stop.set()
        if redis_managed is not None and redis_task is not None:
            redis_stop.set()
            await stop_all([redis_managed], [redis_task], out, settings.up_stop_grace_s, force)
            embedded_redis.clear_state(settings.data_root, os.getpid())
    out.up("all children stopped")
    return 0


async def announce_admin_login(settings: Settings, children: Sequence[ChildPlan], out: Output) -> None:
    """Print the admin page's one-time login URL (the code, not the token: `up`'s output is often
    kept in a terminal's scrollback or a log file, and a used code is worthless)."""
    api = next(child for child in children if child.service == "http-api")
    redis_url = api.env.get("REDIS_URL", settings.redis_url)
    page = admin_login.page_url(settings.http_api_host, settings.http_api_port)
    try:
        code = await admin_login.issue_code(redis_url, settings.keys)
    except Exception as exc:  # an external Redis not up yet: the token still works
        out.up(
            f"admin page {page}: no one-time login code ({type(exc).__name__}); log in with the admin token"
        )
        return
    out.up(f"admin page: open {page}#code={code} (one-time login, valid {admin_login.CODE_TTL_S // 60} min)")


def _with_env(child: ChildPlan, extra: Mapping[str, str]) -> ChildPlan:
    return ChildPlan(
        name=child.name,
        service=child.service,
        index=child.index,
        argv=child.argv,
        env={**child.env, **extra},
        metrics_port=child.metrics_port,
    )
