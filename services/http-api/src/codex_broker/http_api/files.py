"""post-file sources: which host files Codex may send, how big, and as what.

A path is resolved (every symlink followed) and must land inside the session workspace, the
repos cache or a configured root. The file is then opened without following a final symlink
and the opened descriptor is checked again (its /proc path and that it is a regular file), so
swapping a path component for a symlink after the check gains nothing. The bytes are copied
into the broker's outbox, which only the broker writes, and the ingress uploads that copy.
"""

from __future__ import annotations

import mimetypes
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from codex_broker.http_api.errors import ApiError
from codex_broker.libs.paths import safe_name

FEISHU_IMAGE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/tiff", "image/x-icon"}
)


@dataclass(frozen=True)
class SizeLimits:
    max_upload_bytes: int
    feishu_max_image_bytes: int
    feishu_max_file_bytes: int


@dataclass(frozen=True)
class UploadKind:
    content_type: str
    as_image: bool


def guess_content_type(filename: str, given: str | None) -> str:
    if given:
        return given
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"


def upload_kind(
    platform: str, size: int, filename: str, content_type: str | None, limits: SizeLimits
) -> UploadKind:
    """Pure size rules: Feishu sends images ≤ 10 MB as images, other files ≤ 30 MB as files."""
    ctype = guess_content_type(filename, content_type)
    if size <= 0:
        raise ApiError(400, "empty_file")
    if platform == "feishu":
        if ctype in FEISHU_IMAGE_TYPES and size <= limits.feishu_max_image_bytes:
            return UploadKind(ctype, as_image=True)
        if size > limits.feishu_max_file_bytes:
            raise ApiError(400, "file_too_large")
        return UploadKind(ctype, as_image=False)
    if size > limits.max_upload_bytes:
        raise ApiError(400, "file_too_large")
    return UploadKind(ctype, as_image=ctype.startswith("image/"))


def _real(path: Path) -> str:
    return os.path.realpath(path)


def _inside(path: str, roots: list[str]) -> bool:
    for root in roots:
        try:
            if os.path.commonpath([path, root]) == root:
                return True
        except ValueError:
            continue
    return False


def resolve_allowed(raw: str, workspace: Path, roots: list[Path]) -> str:
    """The real path of `raw` (relative paths start at the workspace) when it is inside a root."""
    if "\x00" in raw:
        raise ApiError(400, "path_not_allowed", field="filePath")
    candidate = Path(raw) if os.path.isabs(raw) else workspace / raw
    real = _real(candidate)
    if not _inside(real, [_real(root) for root in roots]):
        raise ApiError(400, "path_not_allowed", field="filePath")
    return real


def open_allowed(real: str, roots: list[Path]) -> tuple[int, int]:
    """An open descriptor and size of a regular file still inside the roots once opened."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except FileNotFoundError:
        raise ApiError(400, "file_not_found", field="filePath") from None
    except OSError:  # a symlink swapped in (ELOOP), permission denied, ...
        raise ApiError(400, "file_not_readable", field="filePath") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ApiError(400, "not_a_regular_file", field="filePath")
        opened = os.readlink(f"/proc/self/fd/{fd}") if os.path.isdir("/proc/self/fd") else real
        if not _inside(opened, [_real(root) for root in roots]):
            raise ApiError(400, "path_not_allowed", field="filePath")
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def outbox_path(data_root: Path, action_id: str, filename: str) -> Path:
    name = Path(filename).name.replace("\x00", "") or "file"
    if name in (".", ".."):
        name = "file"
    return Path(data_root) / "outbox" / safe_name(action_id) / name


def copy_fd_to(fd: int, dest: Path, max_bytes: int) -> int:
    """Copy at most `max_bytes` (the size checked) so a file growing meanwhile stays bounded."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with os.fdopen(fd, "rb") as src, open(dest, "wb") as out:
        while written < max_bytes:
            chunk = src.read(min(1024 * 1024, max_bytes - written))
            if not chunk:
                break
            out.write(chunk)
            written += len(chunk)
    return written


def write_bytes(dest: Path, content: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(content)


def remove_outbox(path: Path) -> None:
    shutil.rmtree(path.parent, ignore_errors=True)
