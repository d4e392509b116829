"""Pure rules about files: how an inbound file is referenced, how an upload is sent, size limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Literal
from urllib.parse import parse_qs, urlsplit

IMAGE_MAX_BYTES = 10 * 1024 * 1024  # Feishu im/v1/images limit
FILE_MAX_BYTES = 30 * 1024 * 1024  # Feishu im/v1/files limit

RESOURCE_SCHEME = "feishu"
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".ico", ".tiff", ".tif", ".heic"}
)

UploadKind = Literal["image", "file", "too_large"]


@dataclass(frozen=True)
class ResourceRef:
    """A file inside a received message: downloadable through im/v1 message resources."""

    message_id: str
    file_key: str
    kind: Literal["image", "file"]


def resource_url(message_id: str, file_key: str, kind: str) -> str:
    # Attachment.url carries what the download RPC needs; nothing secret, nothing fetchable directly
    return f"{RESOURCE_SCHEME}://message/{message_id}/resource/{file_key}?type={kind}"


def parse_resource_url(url: str | None) -> ResourceRef | None:
    if not url:
        return None
    parts = urlsplit(url)
    segments = parts.path.strip("/").split("/")
    if parts.scheme != RESOURCE_SCHEME or parts.netloc != "message" or len(segments) != 3:
        return None
    message_id, marker, file_key = segments
    kind = (parse_qs(parts.query).get("type") or ["file"])[0]
    if marker != "resource" or not message_id or not file_key or kind not in ("image", "file"):
        return None
    return ResourceRef(message_id=message_id, file_key=file_key, kind=kind)  # type: ignore[arg-type]


def is_image_name(filename: str, content_type: str | None = None) -> bool:
    if content_type and content_type.lower().startswith("image/") and "svg" not in content_type.lower():
        return True
    return PurePath(filename).suffix.lower() in IMAGE_EXTENSIONS


def classify_upload(size: int, *, is_image: bool) -> UploadKind:
    """Images up to 10 MB go as image messages; anything up to 30 MB as a file; larger is refused."""
    if is_image and size <= IMAGE_MAX_BYTES:
        return "image"
    if size <= FILE_MAX_BYTES:
        return "file"
    return "too_large"


def feishu_file_type(filename: str) -> str:
    """The `file_type` im/v1/files expects; everything unknown is a generic stream."""
    suffix = PurePath(filename).suffix.lower()
    return {
        ".opus": "opus",
        ".mp4": "mp4",
        ".pdf": "pdf",
        ".doc": "doc",
        ".docx": "doc",
        ".xls": "xls",
        ".xlsx": "xls",
        ".ppt": "ppt",
        ".pptx": "ppt",
    }.get(suffix, "stream")
