"""Files of the web chat, both ways, below DATA_ROOT/web (only this service writes there).

A browser's attachment is kept as `uploads/<id>/<name>` until the orchestrator asks for it; the
download then copies it into the session's workspace through `libs.safe_files` (Codex's shell
may have planted symlinks there). A file Codex sends comes from the http-api's outbox copy (or
inline base64) and is kept as `sent/<id>/<name>` for browsers to fetch.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import mimetypes
import re
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from redis.asyncio import Redis

from codex_broker.libs.bus import DeadLetter
from codex_broker.libs.contracts import Attachment, UploadPayload
from codex_broker.libs.ingress_kit.files import safe_filename, workspace_target
from codex_broker.libs.keys import Keys
from codex_broker.libs.paths import is_within
from codex_broker.libs.safe_files import UnsafePath, open_dir

FILE_META_TTL_S = 30 * 86400
READ_CHUNK = 64 * 1024


class TooLarge(Exception):
    pass


def content_type(name: str, given: str | None = None) -> str:
    return given or mimetypes.guess_type(name)[0] or "application/octet-stream"


@dataclass(frozen=True)
class StoredFile:
    id: str
    name: str
    mimetype: str
    size: int
    path: Path

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "mimetype": self.mimetype, "size": self.size}

    def attachment(self) -> Attachment:
        return Attachment(
            id=self.id,
            name=self.name,
            mimetype=self.mimetype,
            size=self.size,
            is_image=self.mimetype.startswith("image/"),
        )


def attachment_of(public: dict[str, Any]) -> Attachment:
    """A file as a message shows it (`StoredFile.public`) → the contracts' attachment."""
    return Attachment(
        id=str(public.get("id", "")),
        name=str(public.get("name", "")),
        mimetype=str(public.get("mimetype", "")),
        size=int(public.get("size", 0)),
    )


def _kept_file(path: Path, web_root: Path) -> bool:
    return is_within(path, web_root) and path.is_file()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class FileStore:
    def __init__(self, redis: Redis, keys: Keys, *, web_root: Path, sessions_root: Path) -> None:
        self.redis = redis
        self.keys = keys
        self.web_root = web_root
        self.sessions_root = sessions_root

    # ---- keeping files -----------------------------------------------------------------------

    def save_stream(self, kind: str, name: str, source: BinaryIO, max_bytes: int) -> StoredFile:
        """Copy at most `max_bytes` from `source` (blocking: run in a thread)."""
        file_id, filename = uuid.uuid4().hex, safe_filename(name)
        directory = self.web_root / kind / file_id
        size = 0
        with open_dir(self.web_root, directory) as safe:
            temp, out = safe.create_temp(filename)
            try:
                with out:
                    while chunk := source.read(READ_CHUNK):
                        size += len(chunk)
                        if size > max_bytes:
                            raise TooLarge(filename)
                        out.write(chunk)
            except BaseException:
                safe.discard(temp)
                raise
            path = safe.commit(temp, filename)
        return StoredFile(file_id, filename, content_type(filename), size, path)

    async def remember(self, stored: StoredFile, *, owner: str, thread: str | None) -> None:
        key = self.keys.web_file(stored.id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(
            key,
            mapping={
                "name": stored.name,
                "mimetype": stored.mimetype,
                "size": str(stored.size),
                "path": str(stored.path),
                "owner": owner,
                "thread": thread or "",
            },
        )
        pipe.expire(key, FILE_META_TTL_S)
        await pipe.execute()

    async def find(self, file_id: str) -> StoredFile | None:
        if not re.fullmatch(r"[0-9a-f]{32}", file_id):
            return None
        raw = await self.redis.hgetall(self.keys.web_file(file_id))
        if not raw:
            return None
        f = {_text(k): _text(v) for k, v in raw.items()}
        path = Path(f["path"])
        if not await asyncio.to_thread(_kept_file, path, self.web_root):
            return None
        return StoredFile(file_id, f["name"], f["mimetype"], int(f["size"]), path)

    # ---- Codex → browser -----------------------------------------------------------------------

    def keep_upload(self, payload: UploadPayload, outbox_root: Path, max_bytes: int) -> StoredFile:
        """The file of an UploadPayload, kept for browsers (blocking: run in a thread)."""
        if payload.path:
            path = Path(payload.path)
            if not path.is_absolute() or not is_within(path, outbox_root):
                raise DeadLetter(f"upload path outside the outbox: {payload.path}")
            if not path.is_file():
                raise DeadLetter(f"upload path is not a file: {payload.path}")
            with open(path.resolve(), "rb") as source:
                stored = self.save_stream("sent", payload.filename or path.name, source, max_bytes)
        elif payload.content_base64 is not None:
            try:
                content = base64.b64decode(payload.content_base64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise DeadLetter(f"upload content is not base64: {exc}") from exc
            stored = self.save_stream("sent", payload.filename or "file", io.BytesIO(content), max_bytes)
        else:
            raise DeadLetter("upload has neither path nor content_base64")
        if payload.content_type:
            stored = StoredFile(stored.id, stored.name, payload.content_type, stored.size, stored.path)
        return stored

    # ---- browser → Codex's workspace -------------------------------------------------------------

    async def to_workspace(
        self, attachments: Sequence[Attachment], dest_dir: str, max_bytes: int
    ) -> tuple[list[Attachment], dict[str, str]]:
        saved: list[Attachment] = []
        errors: dict[str, str] = {}
        for index, attachment in enumerate(attachments):
            stored = await self.find(attachment.id)
            if stored is None:
                errors[attachment.id] = "not_found"
                continue
            if stored.size > max_bytes:
                errors[attachment.id] = "too_large"
                continue
            target = workspace_target(dest_dir, self.sessions_root, index, stored.name)
            try:
                await asyncio.to_thread(self._copy_into, stored.path, target)
            except UnsafePath:
                errors[attachment.id] = "unsafe_path"
                continue
            saved.append(
                attachment.model_copy(
                    update={
                        "local_path": str(target),
                        "size": stored.size,
                        "is_image": stored.attachment().is_image,
                    }
                )
            )
        return saved, errors

    def _copy_into(self, source: Path, target: Path) -> None:
        with open_dir(self.sessions_root, target.parent) as safe:
            temp, out = safe.create_temp(target.name)
            try:
                with out, open(source, "rb") as src:
                    shutil.copyfileobj(src, out, READ_CHUNK)
            except BaseException:
                safe.discard(temp)
                raise
            safe.commit(temp, target.name)
