"""Bounded, redacted tails of the hourly JSONL logs: the admin status and session timeline, and
the last errors of `codex-broker status`.

Only the last few KB of the newest files are read (libs.logfiles), never whole files; every
record goes through the log redactor again because a log line may predate a secret's
configuration, and long values are cut so one huge record cannot bloat the admin response.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from codex_broker.libs.logfiles import tail_recent
from codex_broker.libs.logs import Redactor
from codex_broker.libs.paths import safe_name

# Directories under logs/ that are not one service's own log.
NOT_SERVICES = frozenset({"sessions", "jobs", "raw"})
MAX_SERVICES = 32
MAX_VALUE_CHARS = 2000


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[:MAX_VALUE_CHARS] + f"… [{len(value) - MAX_VALUE_CHARS} more chars]"
    if isinstance(value, dict):
        return {k: _cut(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut(v) for v in value[:50]]
    return value


def parse_records(
    lines: list[str], redactor: Redactor, *, service: str | None = None
) -> list[dict[str, Any]]:
    """JSON log lines → redacted, size-bounded records; a non-JSON line becomes {msg: <line>}."""
    records = []
    for line in lines:
        try:
            parsed = json.loads(line)
        except ValueError:
            parsed = None
        record: dict[str, Any] = parsed if isinstance(parsed, dict) else {"msg": line}
        if service is not None:
            record.setdefault("service", service)
        records.append(_cut(redactor.value(record)))
    return records


def _by_time(record: dict[str, Any]) -> str:
    return str(record.get("ts", ""))


def service_dirs(logs_root: Path) -> list[Path]:
    try:
        entries = sorted(p for p in logs_root.iterdir() if p.is_dir() and not p.is_symlink())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [p for p in entries if p.name not in NOT_SERVICES][:MAX_SERVICES]


def recent_logs(
    logs_root: Path, redactor: Redactor, *, max_bytes_per_service: int, max_lines: int
) -> list[dict[str, Any]]:
    """The newest `max_lines` records across all services, oldest first."""
    records: list[dict[str, Any]] = []
    for directory in service_dirs(logs_root):
        lines = tail_recent(directory, max_bytes_per_service, max_lines, max_files=2)
        records.extend(parse_records(lines, redactor, service=directory.name))
    records.sort(key=_by_time)
    return records[-max_lines:]


def session_logs(
    logs_root: Path, session_key: str, redactor: Redactor, *, max_bytes: int, max_lines: int
) -> list[dict[str, Any]]:
    """The tail of the session's own fan-out log (logs/sessions/<safe key>/), oldest first."""
    directory = logs_root / "sessions" / safe_name(session_key)
    return parse_records(tail_recent(directory, max_bytes, max_lines, max_files=4), redactor)
