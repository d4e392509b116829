"""Files out (an upload from the outbox or a session) and attachments in (Discord's CDN).

Paths come from other services and, through them, from Codex: a path is checked to resolve inside
an allowed root before a byte is read, and a download lands in a session workspace through
`libs.safe_files` (no symlink followed below DATA_ROOT/sessions). Discord's attachment URLs are
signed CDN links: no token is sent with them, and only the configured CDN hosts are fetched.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
import discord

from codex_broker.libs.bus import DeadLetter
from codex_broker.libs.contracts import Attachment, DownloadPayload, UploadPayload
from codex_broker.libs.ingress_kit.platform import PlatformError
from codex_broker.libs.paths import is_within
from codex_broker.libs.safe_files import SafeDir, UnsafePath, open_dir, relative_parts

log = logging.getLogger(__name__)

CDN_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})
READ_CHUNK = 64 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class _TooLarge(Exception):
    pass


def upload_file(payload: UploadPayload, roots: Sequence[Path], max_bytes: int) -> discord.File:
    """The file to send (blocking: run in a thread). Too large for Discord → a permanent error."""
    if payload.path:
        path = Path(payload.path)
        if not path.is_absolute() or not any(is_within(path, root) for root in roots):
            raise DeadLetter(f"upload path outside the allowed roots: {payload.path}")
        if not path.is_file():
            raise DeadLetter(f"upload path is not a file: {payload.path}")
        if path.stat().st_size > max_bytes:
            raise PlatformError("file_too_large", permanent=True, method="upload")
        content = path.resolve().read_bytes()
        name = payload.filename or path.name
    elif payload.content_base64 is not None:
        try:
            content = base64.b64decode(payload.content_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DeadLetter(f"upload content is not base64: {exc}") from exc
        name = payload.filename or "file"
    else:
        raise DeadLetter("upload has neither path nor content_base64")
    if len(content) > max_bytes:
        raise PlatformError("file_too_large", permanent=True, method="upload")
    return discord.File(io.BytesIO(content), filename=name, description=payload.alt_text or None)


def download_target(dest_dir: str, sessions_root: Path, attachment: Attachment, index: int) -> Path:
    directory = Path(dest_dir)
    try:  # lexical: a symlink on the way is refused when the directory is opened
        relative_parts(sessions_root, directory)
    except UnsafePath as exc:
        raise DeadLetter(f"download dest_dir outside DATA_ROOT/sessions: {dest_dir}") from exc
    name = _UNSAFE.sub("_", Path(attachment.name or attachment.id).name).strip("._-")[:100] or "file"
    return directory / f"{index:02d}-{name}"


def url_allowed(url: str | None, hosts: frozenset[str]) -> bool:
    """Only the CDN (and the configured API host, `host` or `host:port`) is fetched."""
    if not url:
        return False
    parsed = urlparse(url)
    host = (parsed.hostname or "").lower()
    return parsed.scheme in ("https", "http") and (host in hosts or parsed.netloc.lower() in hosts)


async def download(
    payload: DownloadPayload, *, sessions_root: Path, hosts: frozenset[str], limit: int
) -> tuple[list[Attachment], dict[str, str]]:
    """Download each attachment; returns the saved ones and the reason for each one skipped."""
    saved: list[Attachment] = []
    errors: dict[str, str] = {}
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for index, attachment in enumerate(payload.attachments):
            target = download_target(payload.dest_dir, sessions_root, attachment, index)
            if not url_allowed(attachment.url, hosts):
                errors[attachment.id] = "url_not_allowed"
                continue
            if attachment.size and attachment.size > limit:
                errors[attachment.id] = "too_large"
                continue
            try:
                size = await _fetch(session, str(attachment.url), sessions_root, target, limit)
            except _TooLarge:
                errors[attachment.id] = "too_large"
                continue
            except UnsafePath as exc:
                log.warning("download refused", extra={"file": attachment.id, "error": str(exc)})
                errors[attachment.id] = "unsafe_path"
                continue
            saved.append(attachment.model_copy(update={"local_path": str(target), "size": size}))
    return saved, errors


async def _fetch(
    session: aiohttp.ClientSession, url: str, sessions_root: Path, target: Path, limit: int
) -> int:
    try:
        async with session.get(url, allow_redirects=False) as response:
            if response.status in (403, 404):
                raise PlatformError("file_not_found", permanent=True, method="download")
            if response.status != 200:
                raise PlatformError("download_failed", permanent=False, method="download")
            directory = await asyncio.to_thread(open_dir, sessions_root, target.parent)
            with directory:
                return await _save(response, directory, target.name, limit)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise PlatformError("connection_error", permanent=False, method="download") from exc


async def _save(response: aiohttp.ClientResponse, directory: SafeDir, name: str, limit: int) -> int:
    temp, fh = await asyncio.to_thread(directory.create_temp, name)
    try:
        size = 0
        with fh:
            async for chunk in response.content.iter_chunked(READ_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise _TooLarge()
                await asyncio.to_thread(fh.write, chunk)
    except BaseException:
        directory.discard(temp)
        raise
    await asyncio.to_thread(directory.commit, temp, name)
    return size
