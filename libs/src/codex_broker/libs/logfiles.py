"""Hourly JSONL log files: bounded tail reading, listing and age-based removal.

Every log writer in the broker (logs.HourlyFileHandler, rawlog.RawLog) appends to
`<dir>/<YYYY-MM-DDTHH>.jsonl` (UTC hour). Readers here never load a whole file into memory:
the admin status/timeline reads only the last `max_bytes` of the most recent files.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from codex_broker.libs.paths import safe_name

HOUR_FORMAT = "%Y-%m-%dT%H"
HOURLY_SUFFIX = ".jsonl"
_HOUR_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2})(?:\..+)?$")


def logs_root(data_root: Path) -> Path:
    return Path(data_root) / "logs"


def session_log_dir(data_root: Path, session_key: str) -> Path:
    """Where logs.HourlyFileHandler fans out a session's records (raw logs: its raw/<kind>/)."""
    return logs_root(data_root) / "sessions" / safe_name(session_key)


def job_log_dir(data_root: Path, job_id: str) -> Path:
    return logs_root(data_root) / "jobs" / safe_name(job_id)


def raw_log_dir(data_root: Path, kind: str) -> Path:
    return logs_root(data_root) / "raw" / kind


def hourly_name(at: datetime) -> str:
    """File name for records written at `at` (converted to UTC)."""
    return at.astimezone(UTC).strftime(HOUR_FORMAT) + HOURLY_SUFFIX


def hour_of(path: Path) -> datetime | None:
    """Start of the UTC hour a file is named after, or None when the name is not an hour."""
    match = _HOUR_NAME.match(path.name)
    if not match:
        return None
    try:
        return datetime.strptime(match.group(1), HOUR_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def last_write_of(path: Path) -> datetime:
    """Latest time a record can have been written to the file.

    The end of the hour in the name when it has one (renaming or copying a file must not make it
    look new or old), the modification time otherwise.
    """
    hour = hour_of(path)
    if hour is not None:
        return hour + timedelta(hours=1)
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def tail_lines(path: Path, max_bytes: int, max_lines: int) -> list[str]:
    """The last complete lines of a file (oldest first, without newlines).

    Reads at most `max_bytes` from the end; a line cut by that window is dropped rather than
    returned half. A missing file yields an empty list.
    """
    if max_bytes <= 0 or max_lines <= 0:
        return []
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes)
            fh.seek(start)
            chunk = fh.read(size - start)
    except FileNotFoundError:
        return []
    if start > 0:
        # the first line is complete only if the byte before the window is a newline
        newline = chunk.find(b"\n")
        chunk = chunk[newline + 1 :] if newline >= 0 else b""
    lines = [line for line in chunk.decode("utf-8", errors="replace").split("\n") if line.strip()]
    return lines[-max_lines:]


def hourly_files(directory: Path) -> list[Path]:
    """Hour-named files directly inside `directory`, oldest first."""
    try:
        entries = list(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    named = [(hour, p) for p in entries if (hour := hour_of(p)) is not None and p.is_file()]
    named.sort(key=lambda item: (item[0], item[1].name))
    return [p for _, p in named]


def recent_files(dir: Path, limit: int) -> list[Path]:
    """The `limit` most recent hour-named files directly inside `dir`, newest first."""
    if limit <= 0:
        return []
    return list(reversed(hourly_files(dir)))[:limit]


def tail_recent(directory: Path, max_bytes: int, max_lines: int, max_files: int = 48) -> list[str]:
    """The last lines across the most recent hourly files of a directory, oldest first.

    Bounded by `max_bytes` in total (so at most that much is read) and by `max_files`.
    """
    collected: list[str] = []
    budget = max_bytes
    for path in recent_files(directory, max_files):
        if budget <= 0 or len(collected) >= max_lines:
            break
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        lines = tail_lines(path, budget, max_lines - len(collected))
        budget -= min(size, budget)
        collected = lines + collected
    return collected[-max_lines:]


@dataclass(frozen=True)
class LogFile:
    path: Path
    size: int
    last_write: datetime


def iter_log_files(root: Path) -> Iterator[LogFile]:
    """Every regular file at any depth under `root` (symlinks are not followed)."""
    if not root.is_dir():
        return
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            path = Path(dirpath) / name
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if not path.is_file() or path.is_symlink():
                continue
            hour = hour_of(path)
            last = hour + timedelta(hours=1) if hour else datetime.fromtimestamp(st.st_mtime, UTC)
            yield LogFile(path=path, size=st.st_size, last_write=last)


def files_older_than(root: Path, cutoff: datetime) -> list[LogFile]:
    """Log files under `root` whose last possible write is before `cutoff`, oldest first."""
    old = [f for f in iter_log_files(root) if f.last_write < cutoff]
    old.sort(key=lambda f: (f.last_write, str(f.path)))
    return old


def remove_files_older_than(root: Path, cutoff: datetime) -> list[LogFile]:
    """Delete log files older than `cutoff`; returns what was removed."""
    removed = []
    for log_file in files_older_than(root, cutoff):
        try:
            log_file.path.unlink()
        except FileNotFoundError:
            continue
        removed.append(log_file)
    return removed


def prune_empty_dirs(root: Path, keep_root: bool = True, min_idle_s: float = 0.0) -> list[Path]:
    """Remove empty directories below `root` (deepest first); returns the removed ones.

    `min_idle_s` spares directories changed more recently than that: a writer that has just
    created a directory and is about to open a file in it must not lose it under its feet.
    """
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    idle_before = time.time() - min_idle_s
    for dirpath, _dirnames, _filenames in os.walk(root, topdown=False, followlinks=False):
        path = Path(dirpath)
        if keep_root and path == root:
            continue
        try:
            if min_idle_s > 0 and path.stat().st_mtime > idle_before:
                continue
            path.rmdir()  # fails (OSError) when not empty: exactly the check we want, race-free
        except OSError:
            continue
        removed.append(path)
    return removed
