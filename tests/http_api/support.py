"""Shared pieces of the http-api tests: sessions with tokens, an ingress stand-in, processes.

`Responder` plays the ingress at the network edge of this service: it reads the outbound
streams and answers each RPC on its reply key, like ingress-slack/feishu would. It runs in a
thread with a blocking client so it serves both async tests and the (sync) schemathesis run.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from redis import Redis as SyncRedis

from codex_broker.libs.contracts import (
    Actor,
    Coordinates,
    HistoryMessage,
    OutboundAction,
    OutboundResult,
    decode,
    encode,
)
from codex_broker.libs.keys import Keys
from codex_broker.libs.paths import session_workspace

REPO = Path(__file__).resolve().parents[2]


def token_sha(token: str) -> str:
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()


def make_session(redis: SyncRedis, keys: Keys, coords: Coordinates, data_root: Path) -> tuple[str, Path]:
    """What the orchestrator stores for a session: the hash, its workspace, a capability token."""
    token = secrets.token_urlsafe(24)
    workspace = session_workspace(data_root, coords.session_key)
    workspace.mkdir(parents=True, exist_ok=True)
    sk = coords.session_key
    redis.hset(
        keys.session(sk),
        mapping={
            "platform": coords.platform,
            "conversation_id": coords.conversation_id,
            "root_message_id": coords.root_message_id,
            "workspace": str(workspace),
            "status": "active",
        },
    )
    redis.set(keys.session_token_hash(sk), token_sha(token))
    redis.set(keys.session_by_token(token_sha(token)), sk)
    return token, workspace


HISTORY = [
    HistoryMessage(message_id="100.1", actor=Actor(id="U1", display_name="Ann"), text="first"),
    HistoryMessage(message_id="100.2", actor=Actor(id="B1", display_name="bot", is_bot=True), text="second"),
]


@dataclass
class Responder:
    """The ingress side of the RPCs: records every action and answers it."""

    redis_url: str
    keys: Keys
    mode: str = "ok"  # ok | error | silent
    history: list[HistoryMessage] = field(default_factory=lambda: list(HISTORY))  # what a history RPC gets
    actions: list[OutboundAction] = field(default_factory=list)
    uploads: list[bytes] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Responder:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        client = SyncRedis.from_url(self.redis_url)
        streams = {self.keys.outbound_stream("slack"): "0", self.keys.outbound_stream("feishu"): "0"}
        try:
            while not self._stop.is_set():
                for stream, entries in client.xread(streams, block=100, count=50) or []:  # type: ignore[arg-type]
                    name = stream.decode()
                    for entry_id, fields in entries:
                        streams[name] = entry_id.decode()
                        self._answer(client, decode(OutboundAction, fields[b"data"]))
        finally:
            client.close()

    def _answer(self, client: SyncRedis, action: OutboundAction) -> None:
        self.actions.append(action)
        payload = action.payload
        if payload.kind == "upload" and payload.path:
            with contextlib.suppress(OSError):
                self.uploads.append(Path(payload.path).read_bytes())
        if self.mode == "silent" or action.reply_to is None:
            return
        if self.mode == "error":
            result = OutboundResult(action_id=action.action_id, ok=False, error="channel_not_found")
        elif payload.kind == "history":
            result = OutboundResult(
                action_id=action.action_id, ok=True, messages=self.history[: payload.limit]
            )
        else:
            result = OutboundResult(
                action_id=action.action_id, ok=True, message_ids=[f"m-{len(self.actions)}"]
            )
        client.rpush(action.reply_to, encode(result))
        client.expire(action.reply_to, 120)


def service_env(prefix: str, redis_url: str, data_root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    env.update(
        {
            "KEY_PREFIX": prefix,
            "SHARD_COUNT": "4",
            "REDIS_URL": redis_url,
            "DATA_ROOT": str(data_root),
            "METRICS_PORT": "0",
            "LOG_LEVEL": "INFO",
            "HEARTBEAT_INTERVAL_S": "1",
            "HEARTBEAT_TTL_S": "3",
        }
    )
    env.update(extra)
    return env


def start_process(module: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout_s: float = 20) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    # rq forks worker children into the same group: make sure none outlives the test
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def wait_http(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} not up within {timeout_s}s")


def job_callback_events(redis: SyncRedis, keys: Keys, session_key: str) -> list[dict[str, Any]]:
    """What the http-api and the worker told the session: its job-callback stream's events."""
    entries = redis.xrange(keys.job_callback_stream_for(session_key))
    return [json.loads(fields[b"data"]) for _, fields in entries]  # type: ignore[union-attr]


def delete_rq_keys(redis: SyncRedis, queue_name: str, job_ids: list[str]) -> None:
    for pattern in (f"rq:*{queue_name}*",):
        for key in redis.scan_iter(match=pattern, count=1000):
            redis.delete(key)
    for job_id in job_ids:
        for key in redis.scan_iter(match=f"rq:*{job_id}*", count=1000):
            redis.delete(key)
