"""Files: an upload's bytes (checked to come from DATA_ROOT) and downloads of message resources.

Paths come from other services and, through them, from Codex: an upload path must resolve inside
DATA_ROOT before a byte is read. Downloads land in a session workspace that Codex's shell also
writes, so they go through `libs.safe_files` (no symlink followed below DATA_ROOT/sessions).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import mimetypes
from pathlib import Path

from codex_broker.ingress_feishu.api import FeishuApi
from codex_broker.ingress_feishu.resources import FILE_MAX_BYTES, parse_resource_url
from codex_broker.libs.contracts import Attachment, DownloadPayload, UploadPayload
from codex_broker.libs.paths import is_within, safe_name
from codex_broker.libs.safe_files import UnsafePath, relative_parts, write_file

log = logging.getLogger(__name__)


class Refused(Exception):
    """A file that cannot be sent or saved as asked (bad path, too large)."""


def upload_bytes(payload: UploadPayload, data_root: Path) -> tuple[bytes, str]:
    """The bytes to send and the name to show (blocking: run it in a thread)."""
    if payload.content_base64 is not None:
        try:
            data = base64.b64decode(payload.content_base64, validate=True)
        except ValueError as exc:
            raise Refused("content_base64 is not valid base64") from exc
        return data, payload.filename or "file"
    if not payload.path:
        raise Refused("upload needs path or content_base64")
    path = Path(payload.path)
    if not is_within(path, data_root) or not path.is_file():
        raise Refused("upload path must be an existing file inside DATA_ROOT")
    if path.stat().st_size > FILE_MAX_BYTES:
        raise Refused(f"file_too_large: {path.name} is {path.stat().st_size} bytes; Feishu takes up to 30 MB")
    return path.read_bytes(), payload.filename or path.name


async def download(
    api: FeishuApi, payload: DownloadPayload, data_root: Path
) -> tuple[list[Attachment], dict[str, str]]:
    """Each file saved into the session's directory; returns the saved ones and the reason for each
    one not saved. Codex's shell writes there too, so the write goes through `libs.safe_files` (a
    planted symlink is refused or replaced, never followed)."""
    dest = Path(payload.dest_dir)
    sessions_root = Path(data_root) / "sessions"
    try:  # lexical: a symlink on the way is refused when the directory is opened
        relative_parts(sessions_root, dest)
    except UnsafePath:
        return [], {
            a.id: "unsafe_path: dest_dir must be inside DATA_ROOT/sessions" for a in payload.attachments
        }
    files: list[Attachment] = []
    errors: dict[str, str] = {}
    for attachment in payload.attachments:
        try:
            files.append(await _download_one(api, attachment, payload.max_bytes, sessions_root, dest))
        except Refused as exc:
            errors[attachment.id] = str(exc)
    return files, errors


async def _download_one(
    api: FeishuApi, attachment: Attachment, max_bytes: int, sessions_root: Path, dest: Path
) -> Attachment:
    ref = parse_resource_url(attachment.url)
    if ref is None:
        raise Refused(f"not a Feishu message resource: {attachment.id}")
    got = await api.download_resource(ref.message_id, ref.file_key, ref.kind)
    if len(got.data) > max_bytes:
        raise Refused(f"file too large: {len(got.data)} bytes > {max_bytes}")
    name = _file_name(attachment, got.file_name, got.content_type)
    try:
        path = await asyncio.to_thread(write_file, sessions_root, dest, name, got.data)
    except UnsafePath as exc:
        raise Refused(f"unsafe_path: {exc}") from exc
    return attachment.model_copy(
        update={
            "local_path": str(path),
            "size": len(got.data),
            "mimetype": got.content_type or attachment.mimetype,
            "is_image": ref.kind == "image" or got.content_type.startswith("image/"),
        }
    )


def _file_name(attachment: Attachment, served_name: str | None, content_type: str) -> str:
    name = served_name or attachment.name or attachment.id
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, (mimetypes.guess_extension(content_type.split(";")[0].strip()) or "").lstrip(".")
    clean_stem = safe_name(stem)
    clean_suffix = "".join(ch for ch in suffix if ch.isalnum())[:10]
    return f"{clean_stem}.{clean_suffix}" if clean_suffix else clean_stem
