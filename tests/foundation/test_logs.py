"""Hourly JSON log files: every record lands whole, in the service file and its session's file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from codex_broker.libs.logs import HourlyFileHandler, JsonFormatter, Redactor


def _logger(tmp_path: Path, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"test-logs-{tmp_path.name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger


def _lines(directory: Path) -> list[dict]:
    return [
        json.loads(line) for f in sorted(directory.glob("*.jsonl")) for line in f.read_text().splitlines()
    ]


def test_records_fan_out_stay_whole_and_survive_a_removed_file(tmp_path: Path) -> None:
    handler = HourlyFileHandler(tmp_path / "logs", "svc")
    handler.setFormatter(JsonFormatter("svc", Redactor(["s3cr3t-value"])))
    logger = _logger(tmp_path, handler)
    try:
        logger.info("first", extra={"session_key": "slack:C1:1.2"})
        logger.info("second with s3cr3t-value")
        service_dir = tmp_path / "logs" / "svc"
        assert [r["msg"] for r in _lines(service_dir)] == ["first", "second with [REDACTED]"]
        (session_dir,) = (tmp_path / "logs" / "sessions").iterdir()
        assert [r["msg"] for r in _lines(session_dir)] == ["first"]

        for f in service_dir.glob("*.jsonl"):  # housekeeping removed it: the next record starts anew
            f.unlink()
        logger.info("third")
        assert [r["msg"] for r in _lines(service_dir)] == ["third"]
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_open_files_are_bounded(tmp_path: Path) -> None:
    handler = HourlyFileHandler(tmp_path / "logs", "svc")
    handler.setFormatter(JsonFormatter("svc", Redactor()))
    logger = _logger(tmp_path, handler)
    try:
        for i in range(HourlyFileHandler.MAX_OPEN + 10):
            logger.info("hello", extra={"session_key": f"slack:C1:{i}"})
        assert len(handler._open) <= HourlyFileHandler.MAX_OPEN
        assert len(list((tmp_path / "logs" / "sessions").iterdir())) == HourlyFileHandler.MAX_OPEN + 10
        assert len(_lines(tmp_path / "logs" / "svc")) == HourlyFileHandler.MAX_OPEN + 10
    finally:
        logger.removeHandler(handler)
        handler.close()
