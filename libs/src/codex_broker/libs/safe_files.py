"""Writing files into a directory that an untrusted shell can also write (a session workspace).

The session's commands can plant a symlink anywhere in their workspace and swap it between a
check and a write, so nothing here resolves a path and then opens it. Every directory below the
trusted root is opened relative to its parent's descriptor with O_NOFOLLOW, a file is created
under a random temporary name with O_EXCL (which never follows a symlink) and renamed into place
(a rename replaces a planted symlink instead of writing through it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path, PurePosixPath
from typing import BinaryIO

DIR_MODE = 0o700
FILE_MODE = 0o600
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(Exception):
    """The target is outside the root, or a component is a symlink or not a directory."""


def relative_parts(root: Path, target: Path) -> tuple[str, ...]:
    """The components of `target` below `root`, judged lexically (no symlink is looked at)."""
    clean_root = PurePosixPath(os.path.normpath(root))
    clean = PurePosixPath(os.path.normpath(target))
    if not clean.is_absolute() or not clean_root.is_absolute():
        raise UnsafePath(f"not an absolute path: {target}")
    try:
        parts = clean.relative_to(clean_root).parts
    except ValueError:
        raise UnsafePath(f"outside {root}: {target}") from None
    return parts


class SafeDir:
    """An open directory: names are created, renamed and removed relative to its descriptor."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    def __enter__(self) -> SafeDir:
        return self

    def __exit__(self, *_: object) -> None:
        os.close(self.fd)

    def create_temp(self, name: str) -> tuple[str, BinaryIO]:
        temp = f".{name[:80]}.{secrets.token_hex(8)}.part"
        fd = os.open(_component(temp), _NEW_FILE_FLAGS, FILE_MODE, dir_fd=self.fd)
        return temp, os.fdopen(fd, "wb")

    def commit(self, temp: str, name: str) -> Path:
        try:
            os.replace(temp, _component(name), src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError as exc:  # the name is a directory (or similar): never write into it
            self.discard(temp)
            raise UnsafePath(f"cannot place {name} in {self.path}: {exc.strerror}") from exc
        return self.path / name

    def discard(self, temp: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=self.fd)

    def write(self, name: str, data: bytes) -> Path:
        temp, fh = self.create_temp(name)
        try:
            with fh:
                fh.write(data)
        except BaseException:
            self.discard(temp)
            raise
        return self.commit(temp, name)


def open_dir(root: Path, target: Path, *, create: bool = True) -> SafeDir:
    """`target` opened below the trusted `root`, refusing a symlink or non-directory on the way.

    The root itself is the operator's path and may be reached through symlinks; everything below
    it may have been written by a session's shell. Missing directories are created (0700).
    """
    parts = relative_parts(root, target)
    if create:
        os.makedirs(root, DIR_MODE, exist_ok=True)
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            child = _descend(fd, part, create=create)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return SafeDir(fd, Path(os.path.normpath(target)))


def write_file(root: Path, directory: Path, name: str, data: bytes) -> Path:
    with open_dir(root, directory) as safe:
        return safe.write(name, data)


def _descend(parent: int, part: str, *, create: bool) -> int:
    """Open `part` inside `parent`: only a real directory is entered."""
    try:
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, DIR_MODE, dir_fd=parent)
        return os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EEXIST):
            raise UnsafePath(f"not a directory (or a symlink): {part}") from exc
        raise


def _component(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        raise UnsafePath(f"not a single file name: {name!r}")
    return name
