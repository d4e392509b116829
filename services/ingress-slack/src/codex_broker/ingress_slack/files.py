"""Uploads (files_upload_v2) and attachment downloads (url_private with the bot token) on the
ingress kit's file checks and download loop (libs/ingress_kit/files.py): the bot token is only
ever sent to Slack's own file hosts."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from codex_broker.ingress_slack import metrics
from codex_broker.ingress_slack.api import SlackApi
from codex_broker.ingress_slack.errors import SlackCallError, metric_error
from codex_broker.ingress_slack.mrkdwn import to_mrkdwn
from codex_broker.libs.contracts import Attachment, DownloadPayload, UploadPayload
from codex_broker.libs.ingress_kit import files as kit_files

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


# ---- I/O --------------------------------------------------------------------------------------------


async def upload(
    api: SlackApi, payload: UploadPayload, roots: Sequence[Path], *, channel: str, thread_ts: str
) -> dict[str, Any]:
    source, filename = kit_files.upload_source(payload, roots)
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
    """Download each attachment with the bot token (only ever sent to Slack's file hosts: the
    kit checks every URL first); returns the saved ones and the reason for each one skipped."""

    async def fetch(url: str, saver: kit_files.Saver) -> int:
        return await _fetch(session, url, token, saver)

    return await kit_files.download_all(
        payload,
        sessions_root=sessions_root,
        hosts=hosts,
        limit=min(payload.max_bytes, cap_bytes),
        fetch=fetch,
        permanent=_permanent,
    )


def _permanent(exc: Exception) -> str | None:
    if not isinstance(exc, SlackCallError):
        return None
    metrics.API_ERRORS.labels(method="files.download", error=metric_error(exc.error)).inc()
    return exc.error if exc.permanent else None


async def _fetch(session: aiohttp.ClientSession, url: str, token: str, saver: kit_files.Saver) -> int:
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
            return await saver.save(response.content.iter_chunked(kit_files.READ_CHUNK))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise SlackCallError("files.download", "connection_error", "transient") from exc
