"""Where planted secrets could end up, and a search for them there.

Each scanner yields `Blob`s (a place and its bytes); `find()` reports which planted values a blob
holds. Everything here reads only: files, Redis (every data type, streams paged), the
environment of live processes (`/proc/<pid>/environ`), and recorded traffic of the fakes.
Compressed content is searched too: rq stores a job's call as a zlib-compressed pickle, and
housekeeping may gzip old log files.
"""

from __future__ import annotations

import contextlib
import gzip
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis

MAX_FILE_BYTES = 64 * 1024 * 1024
STREAM_PAGE = 1000


@dataclass(frozen=True)
class Blob:
    where: str
    data: bytes


@dataclass(frozen=True)
class Hit:
    secret: str  # the setting's name (SLACK_BOT_TOKEN, ...)
    where: str


@dataclass
class Counts:
    files: int = 0
    file_bytes: int = 0
    redis_keys: int = 0
    redis_entries: int = 0  # hash fields, list items, set/zset members, stream entries, strings
    processes: int = 0
    other: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


def _expand(data: bytes) -> list[bytes]:
    """The bytes themselves, plus their decompressed form when they are zlib or gzip data."""
    out = [data]
    if data[:2] == b"\x1f\x8b":
        with contextlib.suppress(OSError, EOFError, zlib.error):
            out.append(gzip.decompress(data))
    elif data[:1] == b"\x78":
        with contextlib.suppress(zlib.error):
            out.append(zlib.decompress(data))
    return out


def find(blobs: Iterable[Blob], secrets: Mapping[str, str]) -> list[Hit]:
    needles = {name: value.encode() for name, value in secrets.items()}
    hits = []
    for blob in blobs:
        for data in _expand(blob.data):
            for name, needle in needles.items():
                if needle in data:
                    hits.append(Hit(name, blob.where))
    return sorted(set(hits), key=lambda h: (h.where, h.secret))


# ---- files ------------------------------------------------------------------------------------


def file_blobs(root: Path, counts: Counts) -> Iterator[Blob]:
    """Every regular file under `root` (symlinks not followed)."""
    if root.is_file():
        paths: Iterable[Path] = [root]
    else:
        paths = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    for path in paths:
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise AssertionError(f"{path} is {size} bytes: too big to scan in this test")
            data = path.read_bytes()
        except (FileNotFoundError, PermissionError):  # removed meanwhile (outbox copies, temp files)
            continue
        counts.files += 1
        counts.file_bytes += len(data)
        yield Blob(str(path), data)


# ---- Redis ------------------------------------------------------------------------------------


def redis_blobs(client: Redis, patterns: Iterable[str], counts: Counts) -> Iterator[Blob]:
    """Every key matching `patterns`, dumped whole by type (streams page through XRANGE)."""
    seen: set[bytes] = set()
    for pattern in patterns:
        for key in client.scan_iter(match=pattern, count=1000):
            if key in seen:
                continue
            seen.add(key)
            kind = client.type(key)
            kind = kind.decode() if isinstance(kind, bytes) else str(kind)
            counts.redis_keys += 1
            counts.by_type[kind] = counts.by_type.get(kind, 0) + 1
            name = key.decode(errors="replace")
            yield Blob(f"redis key name {name}", key)
            for where, data in _redis_values(client, key, kind, name):
                counts.redis_entries += 1
                yield Blob(where, data)


def _b(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _redis_values(redis: Redis, key: bytes, kind: str, name: str) -> Iterator[tuple[str, bytes]]:
    client: Any = redis  # redis-py's return types are unions of every protocol variant
    if kind == "string":
        value = client.get(key)
        if value is not None:
            yield f"redis string {name}", _b(value)
    elif kind == "hash":
        for fname, value in client.hgetall(key).items():
            yield (
                f"redis hash {name} field {_b(fname).decode(errors='replace')}",
                _b(fname) + b"=" + _b(value),
            )
    elif kind == "list":
        for i, value in enumerate(client.lrange(key, 0, -1)):
            yield f"redis list {name}[{i}]", _b(value)
    elif kind == "set":
        for value in client.smembers(key):
            yield f"redis set {name}", _b(value)
    elif kind == "zset":
        for value in client.zrange(key, 0, -1):
            yield f"redis zset {name}", _b(value)
    elif kind == "stream":
        start = "-"
        while True:
            page = client.xrange(key, min=start, max="+", count=STREAM_PAGE)
            for entry_id, fields in page:
                flat = b"\n".join(_b(k) + b"=" + _b(v) for k, v in fields.items())
                yield f"redis stream {name} entry {_b(entry_id).decode()}", flat
            if len(page) < STREAM_PAGE:
                break
            start = "(" + _b(page[-1][0]).decode()
        for group in client.xinfo_groups(key):
            yield f"redis stream {name} group", repr(group).encode()


# ---- processes --------------------------------------------------------------------------------


def environ(pid: int) -> dict[str, str] | None:
    """The environment a live process started with, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    env = {}
    for item in raw.split(b"\0"):
        if b"=" in item:
            name, _, value = item.partition(b"=")
            env[name.decode(errors="replace")] = value.decode(errors="replace")
    return env


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def parent_of(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2 :].split()[1])


def secrets_in_env(env: Mapping[str, str], secrets: Mapping[str, str]) -> dict[str, list[str]]:
    """Planted secret name → the variables holding its value."""
    found: dict[str, list[str]] = {}
    for name, value in secrets.items():
        holders = sorted(var for var, content in env.items() if value in content)
        if holders:
            found[name] = holders
    return found
