"""Uploads (files_upload_v2) and attachment downloads (url_private with the bot token).

Paths come from other services and, through them, from Codex: every path is checked to resolve
inside an allowed root before a byte is read or written, and the bot token is only ever sent to
Slack's own file hosts. Downloads land in a session workspace that Codex's shell also writes, so
they go through `libs.safe_files` (no symlink followed below DATA_ROOT/sessions).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp

from codex_broker.ingress_slack import metrics
from codex_broker.ingress_slack.api import SlackApi
from codex_broker.ingress_slack.errors import SlackCallError, metric_error
from codex_broker.ingress_slack.mrkdwn import to_mrkdwn
from codex_broker.libs.bus import DeadLetter
from codex_broker.libs.contracts import Attachment, DownloadPayload, UploadPayload
from codex_broker.libs.paths import is_within
from codex_broker.libs.safe_files import SafeDir, UnsafePath, open_dir, relative_parts

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


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


def download_target(dest_dir: str, sessions_root: Path, attachment: Attachment, index: int) -> Path:
    directory = Path(dest_dir)
    try:  # lexical: a symlink on the way is refused when the directory is opened
        relative_parts(sessions_root, directory)
    except UnsafePath as exc:
        raise DeadLetter(f"download dest_dir outside DATA_ROOT/sessions: {dest_dir}") from exc
    name = _UNSAFE.sub("_", Path(attachment.name or attachment.id).name).strip("._-")[:100] or "file"
    return directory / f"{index:02d}-{name}"


def url_allowed(url: str | None, hosts: frozenset[str]) -> bool:
    if not url:
        return False
    parsed = urlparse(url)
    return parsed.scheme in ("https", "http") and (parsed.hostname or "").lower() in hosts


# ---- I/O --------------------------------------------------------------------------------------------


async def upload(
    api: SlackApi, payload: UploadPayload, roots: Sequence[Path], *, channel: str, thread_ts: str
) -> dict[str, Any]:
    source, filename = upload_source(payload, roots)
    args: dict[str, Any] = {
        "channel": channel,
        "thread_ts": thread_ts,
        "filename": filename,
        "title": payload.title or filename,
    }
    if isinstance(source, Path):
        args["file"] = str(source)
    else:
        args["content"] = source
    if payload.initial_comment:
        args["initial_comment"] = to_mrkdwn(payload.initial_comment)
    if payload.alt_text:
        args["alt_txt"] = payload.alt_text
    if payload.snippet_type:
        args["snippet_type"] = payload.snippet_type
    data = await api.call("files.upload_v2", **args)
    file = data.get("file") or {}
    return {"file_id": file.get("id"), "permalink": file.get("permalink")}


async def download(
    session: aiohttp.ClientSession,
    *,
    token: str,
    payload: DownloadPayload,
    sessions_root: Path,
    hosts: frozenset[str],
    cap_bytes: int,
) -> tuple[list[Attachment], dict[str, str]]:
    """Download each attachment; returns the saved ones and the reason for each one skipped."""
    saved: list[Attachment] = []
    errors: dict[str, str] = {}
    limit = min(payload.max_bytes, cap_bytes)
    for index, attachment in enumerate(payload.attachments):
        target = download_target(payload.dest_dir, sessions_root, attachment, index)
        if not url_allowed(attachment.url, hosts):
            errors[attachment.id] = "url_not_allowed"
            continue
        if attachment.size and attachment.size > limit:
            errors[attachment.id] = "too_large"
            continue
        try:
            size = await _fetch(session, str(attachment.url), token, sessions_root, target, limit)
        except _TooLarge:
            errors[attachment.id] = "too_large"
            continue
        except UnsafePath as exc:
            log.warning("download refused", extra={"file": attachment.id, "error": str(exc)})
            errors[attachment.id] = "unsafe_path"
            continue
        except SlackCallError as exc:
            metrics.API_ERRORS.labels(method="files.download", error=metric_error(exc.error)).inc()
            if not exc.permanent:
                raise
            errors[attachment.id] = exc.error
            continue
        mimetype = attachment.mimetype
        saved.append(
            attachment.model_copy(
                update={
                    "local_path": str(target),
                    "size": size,
                    "is_image": attachment.is_image or mimetype.startswith("image/"),
                }
            )
        )
    return saved, errors


class _TooLarge(Exception):
    pass


async def _fetch(
    session: aiohttp.ClientSession, url: str, token: str, sessions_root: Path, target: Path, limit: int
) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            if response.status in (401, 403, 404):
                raise SlackCallError("files.download", "file_not_found", "permanent")
            if response.status != 200:
                raise SlackCallError("files.download", "download_failed", "transient")
            if "text/html" in response.headers.get("Content-Type", ""):
                # Slack answers a bad token with a 200 HTML login page instead of the file
                raise SlackCallError("files.download", "invalid_auth", "permanent")
            directory = await asyncio.to_thread(open_dir, sessions_root, target.parent)
            with directory:
                return await _save(response, directory, target.name, limit)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise SlackCallError("files.download", "connection_error", "transient") from exc


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
