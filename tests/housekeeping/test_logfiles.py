"""Bounded tail reading, listing and age-based removal of hourly log files."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from codex_broker.libs.logfiles import (
    files_older_than,
    hour_of,
    hourly_name,
    prune_empty_dirs,
    recent_files,
    remove_files_older_than,
    tail_lines,
    tail_recent,
)


def test_tail_lines_reads_only_the_window_and_drops_the_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "2026-01-01T00.jsonl"
    path.write_text("".join(f'{{"n": {i}}}\n' for i in range(1000)))
    lines = tail_lines(path, max_bytes=50, max_lines=100)
    assert lines  # a few whole lines fit in 50 bytes
    assert lines[-1] == '{"n": 999}'
    assert all(line.startswith('{"n": ') and line.endswith("}") for line in lines)
    assert len("\n".join(lines)) <= 50


def test_tail_lines_limits_lines_and_handles_missing_and_unterminated(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text("a\nb\nc\nd")
    assert tail_lines(path, 1000, 2) == ["c", "d"]
    assert tail_lines(path, 1000, 10) == ["a", "b", "c", "d"]
    assert tail_lines(tmp_path / "missing.jsonl", 1000, 10) == []
    assert tail_lines(path, 0, 10) == []


def test_recent_files_newest_first_ignores_other_names(tmp_path: Path) -> None:
    for name in ["2026-01-01T03.jsonl", "2026-01-01T01.jsonl", "2026-01-02T00.jsonl", "notes.txt"]:
        (tmp_path / name).write_text("x\n")
    (tmp_path / "2026-01-01T02.jsonl").mkdir()  # a directory is not a log file
    assert [p.name for p in recent_files(tmp_path, 2)] == ["2026-01-02T00.jsonl", "2026-01-01T03.jsonl"]
    assert len(recent_files(tmp_path, 10)) == 3
    assert recent_files(tmp_path / "missing", 3) == []


def test_tail_recent_spans_files_oldest_first(tmp_path: Path) -> None:
    (tmp_path / "2026-01-01T00.jsonl").write_text("a1\na2\n")
    (tmp_path / "2026-01-01T01.jsonl").write_text("b1\n")
    assert tail_recent(tmp_path, 10_000, 2) == ["a2", "b1"]
    assert tail_recent(tmp_path, 10_000, 10) == ["a1", "a2", "b1"]
    assert tail_recent(tmp_path, 3, 10) == ["b1"]


def test_hour_names_round_trip() -> None:
    at = datetime(2026, 3, 4, 5, 59, tzinfo=UTC)
    assert hourly_name(at) == "2026-03-04T05.jsonl"
    assert hour_of(Path(hourly_name(at))) == datetime(2026, 3, 4, 5, tzinfo=UTC)
    assert hour_of(Path("2026-13-04T05.jsonl")) is None
    assert hour_of(Path("x.jsonl")) is None


def test_removal_by_name_hour_then_mtime_and_pruning(tmp_path: Path) -> None:
    now = datetime(2026, 3, 4, 12, 30, tzinfo=UTC)
    logs = tmp_path / "logs"
    old = logs / "sessions" / "s1" / hourly_name(now - timedelta(hours=30))
    fresh = logs / "svc" / hourly_name(now - timedelta(hours=1))
    odd_old = logs / "raw" / "x" / "legacy.log"
    for path in (old, fresh, odd_old):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("line\n")
    # the name decides for hourly files, even when the mtime is new
    old_mtime = (now - timedelta(hours=48)).timestamp()
    os.utime(odd_old, (old_mtime, old_mtime))

    cutoff = now - timedelta(hours=24)
    assert {f.path for f in files_older_than(logs, cutoff)} == {old, odd_old}
    removed = remove_files_older_than(logs, cutoff)
    assert {f.path for f in removed} == {old, odd_old}
    assert fresh.exists() and not old.exists() and not odd_old.exists()
    pruned = prune_empty_dirs(logs)
    assert logs / "sessions" / "s1" in pruned and logs / "raw" in pruned
    assert (logs / "svc").is_dir() and logs.is_dir()
