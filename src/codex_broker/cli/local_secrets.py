"""Secrets `codex-broker up` generates for itself: the embedded Redis's password, the admin token.

They live in DATA_ROOT/secrets (0700, files 0600), a tree every session's permission profile
hides (libs.sealing.PRIVATE_TREES), and are made once and reused: the embedded Redis's AOF
outlives a restart, and so should the password that guards it and an admin's browser login.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from codex_broker.libs.paths import secrets_root

REDIS_PASSWORD = "redis-password"
ADMIN_TOKEN = "admin-token"
TOKEN_BYTES = 32


def secret_path(data_root: Path, name: str) -> Path:
    return secrets_root(data_root) / name


def _ensure_dir(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)  # an older or hand-made directory: tighten it


def read_secret(path: Path) -> str | None:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return value or None


def load_or_create(data_root: Path, name: str) -> str:
    """The secret stored under `name`, created (random, URL-safe) the first time.

    O_EXCL makes two concurrent `up`s agree on one value instead of overwriting each other.
    """
    directory = secrets_root(data_root)
    _ensure_dir(directory)
    path = directory / name
    existing = read_secret(path)
    if existing is not None:
        os.chmod(path, 0o600)
        return existing
    value = secrets.token_urlsafe(TOKEN_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # someone else won the race (or left an empty file)
        raced = read_secret(path)
        if raced is not None:
            return raced
        path.unlink()
        return load_or_create(data_root, name)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value


def write_private(path: Path, text: str) -> None:
    """A 0600 file written whole (a temporary beside it, then a rename)."""
    _ensure_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    tmp.replace(path)
