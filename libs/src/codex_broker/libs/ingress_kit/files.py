"""Files across the platform edge, written once for every ingress: what an upload may read, where
a download may land, and the download loop itself. A platform brings only its HTTP fetch (Slack
sends its bot token, Discord's CDN links are signed) and says which of its errors are permanent.

Paths come from other services and, through them, from Codex: an upload path must resolve inside
an allowed root before a byte is read; a download lands in a session workspace that Codex's shell
also writes, so it goes through `libs.safe_files` (O_NOFOLLOW from DATA_ROOT/sessions, O_EXCL
temporary, rename into place) and is cut off at its size limit while it streams.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from urllib.parse import urlparse

from codex_broker.libs.bus import DeadLetter
from codex_broker.libs.contracts import Attachment, DownloadPayload, UploadPayload
from codex_broker.libs.paths import is_within
from codex_broker.libs.safe_files import UnsafePath, open_dir, relative_parts

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

# a platform's fetch: stream the attachment's bytes at `url` into `save` and return its size
Fetch = Callable[[str, "Saver"], Awaitable[int]]
# the skip reason of a platform error that will not heal (None: not one — it propagates, retried)
PermanentReason = Callable[[Exception], str | None]


class TooLarge(Exception):
    """The download passed its size limit while streaming (nothing of it is kept)."""


# ---- pure checks ----------------------------------------------------------------------------------


def upload_source(payload: UploadPayload, roots: Sequence[Path]) -> tuple[Path | bytes, str]:
    """The file (a checked path) or the decoded bytes, and the filename to show."""
    if payload.path:
        path = Path(payload.path)
        if not path.is_absolute() or not any(is_within(path, root) for root in roots):
            raise DeadLetter(f"upload path outside the allowed roots: {payload.path}")
        if not path.is_file():
            raise DeadLetter(f"upload path is not a file: {payload.path}")
        return path.resolve(), payload.filename or path.name
    if payload.content_base64 is not None:
        try:
            content = base64.b64decode(payload.content_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DeadLetter(f"upload content is not base64: {exc}") from exc
        return content, payload.filename or "file"
    raise DeadLetter("upload has neither path nor content_base64")


def safe_filename(name: str) -> str:
    """A plain file name for disk and headers: no path, no odd characters, never empty."""
    return _UNSAFE.sub("_", Path(name or "").name).strip("._-")[:100] or "file"


def workspace_target(dest_dir: str, sessions_root: Path, index: int, name: str) -> Path:
    """Where the `index`-th file of a download lands: inside DATA_ROOT/sessions (checked here
    lexically; a symlink on the way is refused when the directory is opened)."""
    directory = Path(dest_dir)
    try:
        relative_parts(sessions_root, directory)
    except UnsafePath as exc:
        raise DeadLetter(f"download dest_dir outside DATA_ROOT/sessions: {dest_dir}") from exc
    return directory / f"{index:02d}-{safe_filename(name)}"


def download_target(dest_dir: str, sessions_root: Path, attachment: Attachment, index: int) -> Path:
    return workspace_target(dest_dir, sessions_root, index, attachment.name or attachment.id)


def url_allowed(url: str | None, hosts: frozenset[str]) -> bool:
    """Only the platform's own file hosts are fetched (`host`, or `host:port` for a configured
    API host): a platform credential never goes anywhere else."""
    if not url:
        return False
    parsed = urlparse(url)
    host = (parsed.hostname or "").lower()
    return parsed.scheme in ("https", "http") and (host in hosts or parsed.netloc.lower() in hosts)


# ---- I/O --------------------------------------------------------------------------------------------


class Saver:
    """Where one download's bytes go: the session directory, opened safely when the first byte
    is ready (a refused fetch creates nothing)."""

    def __init__(self, sessions_root: Path, target: Path, limit: int) -> None:
        self.sessions_root, self.target, self.limit = sessions_root, target, limit

    async def save(self, chunks: AsyncIterator[bytes]) -> int:
        directory = await asyncio.to_thread(open_dir, self.sessions_root, self.target.parent)
        with directory:
            temp, fh = await asyncio.to_thread(directory.create_temp, self.target.name)
            try:
                size = 0
                with fh:
                    async for chunk in chunks:
                        size += len(chunk)
                        if size > self.limit:
                            raise TooLarge()
                        await asyncio.to_thread(fh.write, chunk)
            except BaseException:
                directory.discard(temp)
                raise
            await asyncio.to_thread(directory.commit, temp, self.target.name)
        return size


async def download_all(
    payload: DownloadPayload,
    *,
    sessions_root: Path,
    hosts: frozenset[str],
    limit: int,
    fetch: Fetch,
    permanent: PermanentReason,
) -> tuple[list[Attachment], dict[str, str]]:
    """Download each attachment; returns the saved ones and the reason each other one was
    skipped. A transient platform error propagates: the whole download is retried."""
    saved: list[Attachment] = []
    errors: dict[str, str] = {}
    for index, attachment in enumerate(payload.attachments):
        target = download_target(payload.dest_dir, sessions_root, attachment, index)
        if not url_allowed(attachment.url, hosts):
            errors[attachment.id] = "url_not_allowed"
            continue
        if attachment.size and attachment.size > limit:
            errors[attachment.id] = "too_large"
            continue
        try:
            size = await fetch(str(attachment.url), Saver(sessions_root, target, limit))
        except TooLarge:
            errors[attachment.id] = "too_large"
            continue
        except UnsafePath as exc:
            log.warning("download refused", extra={"file": attachment.id, "error": str(exc)})
            errors[attachment.id] = "unsafe_path"
            continue
        except Exception as exc:
            reason = permanent(exc)
            if reason is None:
                raise
            errors[attachment.id] = reason
            continue
        is_image = attachment.is_image or attachment.mimetype.startswith("image/")
        update = {"local_path": str(target), "size": size, "is_image": is_image}
        saved.append(attachment.model_copy(update=update))
    return saved, errors
