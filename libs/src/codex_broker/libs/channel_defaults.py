"""Per-channel defaults: what a new turn in a channel (or chat) runs with unless its thread picked
otherwise — a repository of the shared repos cache as the working directory, a model, a sandbox
level — and the values a thread may pick from (`-repo`, `-model`).

Admins edit them in the admin API (http-api); the orchestrator reads them when it builds a run.
Stored as one hash `keys.channel_defaults`: field `<platform>:<conversation id>` → JSON.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from redis.asyncio import Redis

from codex_broker.libs import paths
from codex_broker.libs.keys import Keys

Sandbox = Literal["read-only", "workspace-write", "danger-full-access"]
# a repo is a directory of the repos cache: one or two plain path components (`api`, `acme/api`)
REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9][A-Za-z0-9._-]{0,63})?$")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
# what `git clone` is given: a remote URL or an absolute local path, never an option
CLONE_URL = re.compile(r"^(https://|ssh://|git@|file://|/)[^\s]{1,500}$")
MAX_CHOICES = 50


def valid_repo(name: str) -> bool:
    return bool(REPO_NAME.match(name)) and ".." not in name.split("/")


class ChannelDefaults(BaseModel):
    """`repos`: repo name → clone URL ("" = the directory must already be in the cache)."""

    model_config = ConfigDict(extra="forbid")
    repo: str | None = None
    model: str | None = None
    sandbox: Sandbox | None = None
    repos: dict[str, str] = Field(default_factory=dict)
    models: list[str] = Field(default_factory=list)

    @field_validator("repos")
    @classmethod
    def _repos(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_CHOICES:
            raise ValueError("too many repos")
        for name, url in value.items():
            if not valid_repo(name):
                raise ValueError(f"invalid repo name {name!r}")
            if url and not CLONE_URL.match(url):
                raise ValueError(f"invalid clone url for {name!r}")
        return value

    @field_validator("models")
    @classmethod
    def _models(cls, value: list[str]) -> list[str]:
        if len(value) > MAX_CHOICES or any(not MODEL_NAME.match(m) for m in value):
            raise ValueError("invalid models")
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        if value is not None and not MODEL_NAME.match(value):
            raise ValueError("invalid model")
        return value

    def allowed_repos(self) -> list[str]:
        names = list(self.repos)
        return names if self.repo is None or self.repo in names else [self.repo, *names]

    def allowed_models(self) -> list[str]:
        return self.models if self.model is None or self.model in self.models else [self.model, *self.models]


def field_of(platform: str, conversation_id: str) -> str:
    return f"{platform}:{conversation_id}"


def repo_dir(data_root: Path, repo: str) -> Path:
    return paths.repos_root(data_root) / repo


def parse(raw: bytes | str | None) -> ChannelDefaults | None:
    """A stored entry, or None (absent, or written by a newer release in a shape we do not know)."""
    if not raw:
        return None
    try:
        return ChannelDefaults.model_validate_json(raw)
    except ValidationError:
        return None


async def load(redis: Redis, keys: Keys, platform: str, conversation_id: str) -> ChannelDefaults | None:
    return parse(await redis.hget(keys.channel_defaults, field_of(platform, conversation_id)))


async def save(redis: Redis, keys: Keys, platform: str, conversation_id: str, value: ChannelDefaults) -> None:
    await redis.hset(keys.channel_defaults, field_of(platform, conversation_id), value.model_dump_json())


async def delete(redis: Redis, keys: Keys, platform: str, conversation_id: str) -> bool:
    return bool(await redis.hdel(keys.channel_defaults, field_of(platform, conversation_id)))


async def all_entries(redis: Redis, keys: Keys) -> dict[str, ChannelDefaults]:
    raw = await redis.hgetall(keys.channel_defaults)
    found = {}
    for name, value in raw.items():
        parsed = parse(value)
        if parsed is not None:
            found[name.decode() if isinstance(name, bytes) else str(name)] = parsed
    return found


@dataclass
class Cache:
    """The whole hash, re-read at most every `ttl_s`: a run's parameters cost no round trip of
    their own on the routing path (BRIEF §5b), and an admin's edit reaches every orchestrator
    replica within `ttl_s`."""

    ttl_s: float = 5.0
    _entries: dict[str, ChannelDefaults] = field(default_factory=dict)
    _loaded_at: float = float("-inf")
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get(
        self, redis: Redis, keys: Keys, platform: str, conversation_id: str
    ) -> ChannelDefaults | None:
        if time.monotonic() - self._loaded_at > self.ttl_s:
            async with self._lock:
                if time.monotonic() - self._loaded_at > self.ttl_s:  # another caller may have read it
                    self._entries = await all_entries(redis, keys)
                    self._loaded_at = time.monotonic()
        return self._entries.get(field_of(platform, conversation_id))
