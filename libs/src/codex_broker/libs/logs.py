"""JSON-lines logging with redaction before anything is written.

Records go to stdout and to hourly files under DATA_ROOT/logs/<service>/; records carrying a
`session_key` or `job_id` are fanned out to logs/sessions/<safe key>/ and logs/jobs/<id>/ too.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TextIO

from codex_broker.libs.paths import safe_name

REDACTED = "[REDACTED]"

# Token shapes that must never be written, whatever the setting they came from.
_TOKEN_PATTERNS = [
    re.compile(r"xox[abposr]-[A-Za-z0-9-]{6,}"),
    re.compile(r"xapp-[A-Za-z0-9-]{6,}"),
    re.compile(r"sk-(?:proj-|svcacct-|ant-)?[A-Za-z0-9_-]{12,}"),
    re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"github_pat_[A-Za-z0-9_]{20,}"),
    # Feishu tenant/user access tokens: `t-` / `u-` and a long opaque tail, with or without dots
    re.compile(r"\b[tu]-(?=[A-Za-z0-9._-]*[0-9])[A-Za-z0-9][A-Za-z0-9._-]{29,}"),
    # also the repr of a headers dict: {'Authorization': 'token abc'}
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(?:bearer|basic|token)\s+[^\s\"',}]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    # the password in a Redis URL (`up` hands children REDIS_URL=redis://:PASSWORD@host:port)
    re.compile(r"(rediss?://[^:/@\s]*:)[^@\s/]+(?=@)"),
    # the session capability token in Codex's developer instructions (raw Codex RPC logs)
    re.compile(r"(BROKER_SESSION_TOKEN=)[A-Za-z0-9._~+/=-]{8,}"),
]
_SECRET_KEY_NAMES = re.compile(
    r"(?i)^(authorization|x-admin-token|x-broker-session-token|.*(secret|token|api_key|apikey|password).*)$"
)


class Redactor:
    """Removes configured secret values and known token shapes from text and structures."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        self._secrets: list[str] = []
        self.add_secrets(secrets or [])

    def add_secrets(self, secrets: list[str]) -> None:
        for secret in secrets:
            if secret and len(secret) >= 4 and secret not in self._secrets:
                self._secrets.append(secret)
        self._secrets.sort(key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        for pattern in _TOKEN_PATTERNS:
            value = pattern.sub(_keep_group_one, value)
        return value

    def value(self, value: Any, key: str | None = None) -> Any:
        if key is not None and _SECRET_KEY_NAMES.match(key) and isinstance(value, str) and value:
            return REDACTED
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


def _keep_group_one(match: re.Match[str]) -> str:
    prefix = match.group(1) if match.re.groups >= 1 and match.group(1) else ""
    return prefix + REDACTED


_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, redactor: Redactor) -> None:
        super().__init__()
        self.service = service
        self.redactor = redactor

    def to_dict(self, record: logging.LogRecord) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self.redactor.value(entry)  # type: ignore[no-any-return]

    def format(self, record: logging.LogRecord) -> str:
        # stdout and the file handler share this formatter: redact and encode a record only once
        cached = record.__dict__.get("_cb_json")
        if cached is None:
            cached = json.dumps(self.to_dict(record), default=str, ensure_ascii=False)
            record.__dict__["_cb_json"] = cached
        return str(cached)


class HourlyFileHandler(logging.Handler):
    """Appends to <dir>/<YYYY-MM-DDTHH>.jsonl; fans out session/job records to their own dirs.

    The files of the current hour stay open (at most MAX_OPEN, least recently used closed first):
    a mkdir, open and close per record cost more than the rest of logging together. Each line is
    flushed at once, so readers (log tail, admin page) see whole lines; a file removed meanwhile
    (housekeeping) is opened again.
    """

    terminator: ClassVar[str] = "\n"
    MAX_OPEN: ClassVar[int] = 64

    def __init__(self, logs_root: Path, service: str) -> None:
        super().__init__()
        self.logs_root = logs_root
        self.service = service
        self._lock_files = threading.Lock()
        self._open: OrderedDict[Path, TextIO] = OrderedDict()
        self._hour = ""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            hour = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H")
            targets = [self.logs_root / self.service]
            session_key = getattr(record, "session_key", None)
            if session_key:
                targets.append(self.logs_root / "sessions" / safe_name(str(session_key)))
            job_id = getattr(record, "job_id", None)
            if job_id:
                targets.append(self.logs_root / "jobs" / safe_name(str(job_id)))
            with self._lock_files:
                if hour != self._hour:
                    self._close_all()
                    self._hour = hour
                for directory in targets:
                    fh = self._file(directory / f"{hour}.jsonl")
                    fh.write(line)
                    fh.flush()
        except Exception:
            self.handleError(record)

    def _file(self, path: Path) -> TextIO:
        fh = self._open.get(path)
        if fh is not None and os.fstat(fh.fileno()).st_nlink > 0:
            self._open.move_to_end(path)
            return fh
        if fh is not None:  # removed under us: write to a new file of that name
            self._open.pop(path).close()
        try:
            fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 (kept open on purpose, closed by LRU)
        except FileNotFoundError:  # a new session's directory: create it only then (no mkdir per open)
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(path, "a", encoding="utf-8")  # noqa: SIM115
        self._open[path] = fh
        while len(self._open) > self.MAX_OPEN:
            self._open.popitem(last=False)[1].close()
        return fh

    def _close_all(self) -> None:
        while self._open:
            self._open.popitem(last=False)[1].close()

    def close(self) -> None:
        with self._lock_files:
            self._close_all()
        super().close()


_redactor = Redactor()


def redactor() -> Redactor:
    return _redactor


def setup_logging(
    service: str, *, level: str = "INFO", data_root: Path | None = None, secrets: list[str] | None = None
) -> Redactor:
    """Configure the root logger once per process: JSON to stdout and to hourly files."""
    _redactor.add_secrets(secrets or [])
    formatter = JsonFormatter(service, _redactor)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    stdout = logging.StreamHandler(sys.stdout)
    stdout.setFormatter(formatter)
    root.addHandler(stdout)
    if data_root is not None:
        file_handler = HourlyFileHandler(Path(data_root) / "logs", service)
        file_handler.setFormatter(formatter)
        root.addHandler(file_handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "websockets", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return _redactor
