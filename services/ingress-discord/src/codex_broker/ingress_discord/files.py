"""Files out (an upload from the outbox or a session) and attachments in (Discord's CDN), on the
ingress kit's file checks and download loop (libs/ingress_kit/files.py). Discord's attachment
URLs are signed CDN links: no token is sent with them, and only the configured CDN hosts are
fetched.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import discord

from codex_broker.libs.contracts import Attachment, DownloadPayload, UploadPayload
from codex_broker.libs.ingress_kit import files as kit_files
from codex_broker.libs.ingress_kit.platform import PlatformError

log = logging.getLogger(__name__)

CDN_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})
READ_CHUNK = 64 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def upload_file(payload: UploadPayload, roots: Sequence[Path], max_bytes: int) -> discord.File:
    """The file to send (blocking: run in a thread). Too large for Discord → a permanent error."""
    source, name = kit_files.upload_source(payload, roots)
    if isinstance(source, Path):
        if source.stat().st_size > max_bytes:
            raise PlatformError("file_too_large", permanent=True, method="upload")
        source = source.read_bytes()
    if len(source) > max_bytes:
        raise PlatformError("file_too_large", permanent=True, method="upload")
    return discord.File(io.BytesIO(source), filename=name, description=payload.alt_text or None)


async def download(
    payload: DownloadPayload, *, sessions_root: Path, hosts: frozenset[str], limit: int
) -> tuple[list[Attachment], dict[str, str]]:
    """Download each attachment (no credential: the links are signed); returns the saved ones
    and the reason for each one skipped. A transient error propagates and is retried."""
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def fetch(url: str, saver: kit_files.Saver) -> int:
            return await _fetch(session, url, saver)

        return await kit_files.download_all(
            payload, sessions_root=sessions_root, hosts=hosts, limit=limit, fetch=fetch, permanent=_permanent
        )


def _permanent(exc: Exception) -> str | None:
    return exc.error if isinstance(exc, PlatformError) and exc.permanent else None


async def _fetch(session: aiohttp.ClientSession, url: str, saver: kit_files.Saver) -> int:
    try:
        async with session.get(url, allow_redirects=False) as response:
            if response.status in (403, 404):
                raise PlatformError("file_not_found", permanent=True, method="download")
            if response.status != 200:
                raise PlatformError("download_failed", permanent=False, method="download")
            return await saver.save(response.content.iter_chunked(kit_files.READ_CHUNK))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise PlatformError("connection_error", permanent=False, method="download") from exc
