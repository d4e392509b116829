"""Shared pieces of the replica and chaos tests (and bench/chaos_bench.py).

A `SlackWorld` is the whole broker as processes (`codex-broker up --replicas ...` through
`tests.e2e.harness.BrokerProcess`), the fake Slack and the fake model as processes, and the real
Codex binary on a CODEX_HOME that points at the fake model. `PrivateRedis` is a redis-server the
test owns (AOF on, its own directory), so a test can kill and restart Redis without touching
the shared one.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from codex_broker.libs import paths
from codex_broker.libs.keys import session_key_of
from tests.e2e.harness import BrokerProcess, workspace_env
from tests.fakes.codex_home import FAKE_API_KEY, write_codex_home
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_model import FakeModelClient, user_texts
from tests.fakes.fake_slack_client import FakeSlackProcess, start_fake_slack_process
from tests.helpers import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
USERS = {"U1": "Alice", "U2": "Bob"}
# What the orchestrator posts when a runner died under a turn (reconcile.RUNNER_GONE_REASON).
RUNNER_GONE_TEXT = "Codex runner working on this turn stopped"
FULL_REPLICAS = {"orchestrator": 2, "codex-runner": 3, "ingress-slack": 2, "http-api": 2}
SERVICES = ("ingress-slack", "orchestrator", "codex-runner", "http-api")


def wait_until(probe: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.1) -> Any:
    """Poll `probe` until it returns something truthy; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError, RedisError):  # a fake or Redis briefly unreachable: retry
            value = probe()
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


# ---- processes the tests own ---------------------------------------------------------------------


class PrivateRedis:
    """A redis-server on a free loopback port with AOF (fsync always) in `directory`.

    `restart()` SIGKILLs it (nothing is flushed on the way out: only the AOF protects the data)
    and starts it again on the same port and directory."""

    def __init__(self, directory: Path, *, binary: str | None = None) -> None:
        self.directory = directory
        self.binary = binary or shutil.which("redis-server") or "redis-server"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        return [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
        ]

    def start(self) -> PrivateRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, start_new_session=True)
        wait_until(self.ping, 20, f"redis-server on :{self.port}", interval_s=0.05)
        return self

    def ping(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"redis-server exited with {self.process.returncode}")
        client = Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=1)
        try:
            return bool(client.ping())
        except Exception:
            return False
        finally:
            client.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart(self, down_s: float = 1.0) -> None:
        self.kill()
        time.sleep(down_s)
        self.start()
        self.restarts += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


# ---- the world -------------------------------------------------------------------------------------


@dataclass
class SlackWorld:
    broker: BrokerProcess
    slack: FakeSlackProcess
    model: FakeModelClient
    bot: str
    _redis: Redis | None = field(default=None, repr=False)

    def mention(self, channel: str, user: str, text: str, **options: Any) -> Any:
        return self.slack.client.user_message(channel, user, f"<@{self.bot}> {text}", **options)

    def bot_messages(self, channel: str, root: str) -> list[dict[str, Any]]:
        found = self.slack.client.messages(channel=channel, thread_ts=root, from_bot=True)
        return [m for m in found if not m.get("deleted")]

    def thread_text(self, channel: str, root: str) -> str:
        return "\n".join(
            m.get("text", "") + json.dumps(m.get("blocks") or []) for m in self.bot_messages(channel, root)
        )

    def model_saw(self, phrase: str) -> list[dict]:
        return [r for r in self.model.requests if any(phrase in t for t in user_texts(r))]

    def redis(self) -> Redis:
        if self._redis is None:
            self._redis = Redis.from_url(self.broker.redis_url, socket_connect_timeout=2, socket_timeout=5)
        return self._redis

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
            self._redis = None

    def session_key(self, channel: str, root: str) -> str:
        return session_key_of("slack", channel, root)

    def hash(self, key: str) -> dict[str, str]:
        raw = self.redis().hgetall(key)
        return {k.decode(): v.decode() for k, v in raw.items()}  # type: ignore[union-attr]

    def session(self, channel: str, root: str) -> dict[str, str]:
        return self.hash(self.broker.keys.session(self.session_key(channel, root)))

    def state(self, channel: str, root: str) -> dict[str, str]:
        return self.hash(self.broker.keys.session_state(self.session_key(channel, root)))

    def run(self, run_id: str) -> dict[str, str]:
        return self.hash(self.broker.keys.run(run_id))

    def shard_holders(self) -> dict[int, str | None]:
        keys = self.broker.keys
        client = self.redis()
        holders: dict[int, str | None] = {}
        for shard in range(keys.shard_count):
            raw = client.get(keys.shard_lease(shard))
            holders[shard] = raw.decode() if isinstance(raw, bytes) else None
        return holders


def broker_env(slack: FakeSlackProcess, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        **slack.env,
        "OPENAI_API_KEY": FAKE_API_KEY,
        "DEBOUNCE_MS": "100",
        "ALLOWED_USERS": ",".join(USERS),
        # One updated progress message plus the final answer as a message of its own: the
        # tests count final replies as the bot's posts that start with the model's answer.
        "SLACK_NATIVE_STREAMING": "false",
        "HOUSEKEEPING_ENABLED": "false",
    }
    env.update(extra or {})
    return env


@contextlib.contextmanager
def slack_world(
    root: Path,
    model: FakeModelClient,
    *,
    redis_url: str,
    key_prefix: str | None = None,
    replicas: Mapping[str, int] = FULL_REPLICAS,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    cleanup: bool = True,
) -> Iterator[SlackWorld]:
    """The broker with `replicas` (no Feishu, no rq worker), the fake Slack spreading events over
    every Socket Mode connection, Codex on `model`. Keys of the prefix are deleted afterwards unless
    `cleanup` is false (a private Redis that goes away with the test: its AOF stays inspectable)."""
    data_root = root / "data"
    write_codex_home(paths.codex_home(data_root), model.base_url)
    prefix = key_prefix or f"r{uuid.uuid4().hex[:10]}"
    with start_fake_slack_process("--spread") as slack:
        for user_id, name in USERS.items():
            slack.client.add_user(user_id, name.lower(), display_name=name)
        broker = BrokerProcess(
            data_root=data_root,
            redis_url=redis_url,
            key_prefix=prefix,
            env=broker_env(slack, env),
            services=SERVICES,
            replicas={"ingress-feishu": 0, **replicas},
            worker=False,
            log_path=log_path,
        )
        world: SlackWorld | None = None
        try:
            with broker:
                slack.client.wait_connected(timeout_s=60, count=replicas.get("ingress-slack", 1))
                world = SlackWorld(broker=broker, slack=slack, model=model, bot=slack.info["bot_user_id"])
                yield world
        finally:
            if world is not None:
                world.close()
            if cleanup:
                with contextlib.suppress(Exception):
                    delete_prefix(redis_url, prefix)


def delete_prefix(redis_url: str, prefix: str) -> None:
    client = Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=10)
    try:
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)
    finally:
        client.close()


# ---- reading replies ---------------------------------------------------------------------------

TOKEN = re.compile(r"\btok-[A-Za-z0-9]+-\d+\b")


def tokens_in(text: str) -> list[str]:
    return TOKEN.findall(text)


def is_final_answer(message: Mapping[str, Any]) -> bool:
    """A final answer is a post of its own that starts with the fake model's echo (the progress
    message starts with a status line: hourglass or outcome)."""
    return str(message.get("text") or "").lstrip().startswith("echo:")


# ---- Discord ---------------------------------------------------------------------------------------


@dataclass
class DiscordWorld:
    broker: BrokerProcess
    discord: FakeDiscord
    model: FakeModelClient
    home: str = ""  # a workspace home channel, when the world was made with a workspace root

    def mention(self, text: str, user: str = "alice") -> dict[str, Any]:
        return self.discord.user_message(self.discord.channel_id, user, text, mention=True)

    def finals(self, thread: str) -> list[str]:
        """The bot's answers in a task thread: posts that start with the fake model's echo (the
        live message starts with its bold status line)."""
        return [
            m["content"]
            for m in self.discord.bot_messages(thread)
            if m["content"].lstrip().startswith("echo:")
        ]

    def model_saw(self, phrase: str) -> list[dict]:
        return [r for r in self.model.requests if any(phrase in t for t in user_texts(r))]


@contextlib.contextmanager
def discord_world(
    root: Path,
    model: FakeModelClient,
    *,
    redis_url: str,
    replicas: Mapping[str, int],
    env: Mapping[str, str] | None = None,
    workspace_root: Path | None = None,
) -> Iterator[DiscordWorld]:
    """The broker with `replicas` of the Discord path only (no Slack, Feishu, web or rq worker),
    the fake Discord (this process, loopback) sending every event to each gateway session.
    `workspace_root`: also a workspace home channel (`DiscordWorld.home`) working there."""
    data_root = root / "data"
    write_codex_home(paths.codex_home(data_root), model.base_url)
    prefix = f"d{uuid.uuid4().hex[:10]}"
    services = ("ingress-discord", "orchestrator", "codex-runner", "http-api")
    with FakeDiscord() as discord:
        home = discord.add_channel("workspace") if workspace_root is not None else ""
        workspace = workspace_env("discord", home, workspace_root) if workspace_root is not None else {}
        broker = BrokerProcess(
            data_root=data_root,
            redis_url=redis_url,
            key_prefix=prefix,
            env={
                **discord.env,
                "OPENAI_API_KEY": FAKE_API_KEY,
                "DEBOUNCE_MS": "100",
                "HOUSEKEEPING_ENABLED": "false",
                **workspace,
                **(env or {}),
            },
            services=services,
            replicas={"ingress-slack": 0, "ingress-feishu": 0, "ingress-web": 0, **replicas},
            worker=False,
        )
        try:
            with broker:
                discord.wait_connected(timeout_s=60, count=replicas.get("ingress-discord", 1))
                yield DiscordWorld(broker=broker, discord=discord, model=model, home=home)
        finally:
            with contextlib.suppress(Exception):
                delete_prefix(redis_url, prefix)
