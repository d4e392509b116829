"""The frame every service runs in: signals, heartbeat, /metrics + health, graceful drain.

A service hands `run_service` its long-running tasks (each takes the shared stop event). SIGTERM
or SIGINT sets the event; tasks finish what they hold and return; after `grace_s` the rest are
cancelled. A task that crashes stops the whole process with a non-zero exit so that the
supervisor (`codex-broker up`, compose, Kubernetes) restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import stat
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import BlockingConnectionPool, Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from codex_broker.libs import metrics
from codex_broker.libs.heartbeat import Heartbeat
from codex_broker.libs.logs import setup_logging
from codex_broker.libs.settings import CommonSettings, load_settings

log = logging.getLogger(__name__)

S = TypeVar("S", bound=CommonSettings)


def start_process(service: str, settings_cls: type[S], *, quiet_loggers: Sequence[str] = ()) -> S:
    """What every service's `main()` does before its loop: settings read once, DATA_ROOT made
    private, JSON logs that redact the service's secrets, chatty SDK loggers held at WARNING."""
    settings = load_settings(settings_cls)
    private_data_root(settings.data_root)
    setup_logging(
        service, level=settings.log_level, data_root=settings.data_root, secrets=settings.secret_values()
    )
    for name in quiet_loggers:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    return settings


Task = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


PRIVATE_UMASK = 0o077


def private_data_root(data_root: Path) -> None:
    """Call first in a process's main: everything it (and Codex, git, jobs it spawns) creates from
    now on is 0700 / 0600, and DATA_ROOT itself is closed to group and others.

    DATA_ROOT holds auth.json, logs, rollouts and other sessions' workspaces; every broker process
    and Codex run as one user, so nobody needs the group or other bits. The umask (not a chmod
    per file) covers files the services, Codex and git create without naming a mode. Closing the
    root also closes whatever an older install created below it with wider modes.
    """
    os.umask(PRIVATE_UMASK)
    root = Path(data_root)
    root.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(root.stat().st_mode)
    if mode & 0o077:
        try:
            os.chmod(root, mode & 0o700)
        except PermissionError:  # a volume root owned by someone else (e.g. Kubernetes fsGroup)
            log.warning("DATA_ROOT is open to group/others and cannot be changed", extra={"mode": oct(mode)})


def _degraded(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("degraded")


REDIS_POOL_SIZE = 100
REDIS_POOL_WAIT_S = 20.0


def redis_client(url: str) -> Redis:
    """A client whose pool waits (up to REDIS_POOL_WAIT_S) for a free connection when all are busy.

    redis-py's default pool raises MaxConnectionsError past 100 connections in use: a burst of
    concurrent handlers (a Slack burst, many turns claimed at once) then fails instead of queueing.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_POOL_SIZE,
        timeout=REDIS_POOL_WAIT_S,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
    return Redis.from_pool(pool)


def health_app(
    service: str,
    heartbeat: Heartbeat,
    ready: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True, "service": service, "instance": heartbeat.instance})

    async def readyz(_: Request) -> Response:
        checks: dict[str, Any] = {}
        try:
            await heartbeat.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"fail: {type(exc).__name__}"
        if ready is not None:
            checks.update(await ready())
        # "degraded: …" is shown but does not fail readiness (a working, knowingly limited setup)
        ok = all(value == "ok" or value is True or _degraded(value) for value in checks.values())
        return JSONResponse({"ok": ok, "checks": checks}, status_code=200 if ok else 503)

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
        ]
    )


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside our loop: the service frame owns SIGTERM/SIGINT, not uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_http(
    app: Any, host: str, port: int, stop: asyncio.Event, *, lifespan: Literal["auto", "on", "off"] = "off"
) -> None:
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan=lifespan)
    server = _EmbeddedServer(config)
    serve = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await serve


async def heartbeat_loop(heartbeat: Heartbeat, interval_s: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await heartbeat.beat()
        except Exception as exc:
            metrics.REDIS_ERRORS.labels(operation="heartbeat").inc()
            log.warning("heartbeat failed", extra={"error": str(exc)})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
    with contextlib.suppress(Exception):
        await heartbeat.clear()


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def run_service(
    *,
    service: str,
    settings: CommonSettings,
    redis: Redis,
    tasks: Sequence[Task],
    ready: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    heartbeat_details: Callable[[], dict[str, Any]] | None = None,
    stop: asyncio.Event | None = None,
    grace_s: float = 30.0,
) -> int:
    """Run `tasks` until SIGTERM/SIGINT (or `stop`); returns the process exit code."""
    stop = stop or asyncio.Event()
    install_signal_handlers(stop)
    heartbeat = Heartbeat(
        redis=redis,
        keys=settings.keys,
        service=service,
        instance=settings.instance_id,
        ttl_s=settings.heartbeat_ttl_s,
        started_at=time.time(),
        details=heartbeat_details,
    )
    metrics.SERVICE_INFO.labels(service=service).set(1)
    frame: list[Task] = [lambda s: heartbeat_loop(heartbeat, settings.heartbeat_interval_s, s)]
    if settings.metrics_port:
        app = health_app(service, heartbeat, ready)
        frame.append(lambda s: serve_http(app, settings.metrics_host, settings.metrics_port, s))
    # The heartbeat and the probes outlive the stop signal until the tasks have drained: a runner
    # finishing its turns for minutes is alive (the orchestrator must not report them lost) and
    # answers its probes; only then the heartbeat is cleared.
    frame_stop = asyncio.Event()
    framing = [asyncio.create_task(task(frame_stop), name=f"{service}-frame") for task in frame]
    running = [asyncio.create_task(task(stop), name=f"{service}-task") for task in tasks]
    log.info(
        "service started", extra={"instance": settings.instance_id, "metrics_port": settings.metrics_port}
    )
    exit_code = await _wait(running, stop, grace_s, watched=framing)
    frame_stop.set()
    exit_code = max(exit_code, await _wait(framing, frame_stop, 10.0))
    metrics.SERVICE_INFO.labels(service=service).set(0)
    with contextlib.suppress(Exception):
        await redis.aclose()
    log.info("service stopped", extra={"exit_code": exit_code})
    return exit_code


async def _wait(
    running: list[asyncio.Task[None]],
    stop: asyncio.Event,
    grace_s: float,
    *,
    watched: Sequence[asyncio.Task[None]] = (),
) -> int:
    """Until `stop` or the first of `running` / `watched` ends (a crash: exit code 1), then give
    `running` `grace_s` to finish; `watched` (the frame) keeps running."""
    stop_waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*running, *watched, stop_waiter], return_when=asyncio.FIRST_COMPLETED)
    exit_code = 0
    for task in done:
        if task is not stop_waiter and not task.cancelled() and task.exception() is not None:
            log.error("task crashed", exc_info=task.exception())
            exit_code = 1
    stop.set()
    # a service may run no task of its own (an ingress without its tokens: only the frame)
    _, pending = await asyncio.wait(running, timeout=grace_s) if running else (set(), set())
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    stop_waiter.cancel()
    return exit_code


async def run_disabled(
    *,
    service: str,
    platform: str,
    reason: str,
    settings: CommonSettings,
    redis: Redis,
    stop: asyncio.Event | None = None,
) -> int:
    """An ingress without its platform's credentials stays up — heartbeat, /metrics, /readyz —
    so a deployment without that platform is healthy and says why."""
    state = f"disabled: {reason}"
    log.warning(state)

    async def ready() -> dict[str, Any]:
        return {platform: state}

    return await run_service(
        service=service,
        settings=settings,
        redis=redis,
        tasks=[],
        ready=ready,
        heartbeat_details=lambda: {platform: state},
        stop=stop,
    )
