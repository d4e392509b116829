"""Raw traffic logs: switches, hourly files, session fan-out, truncation and redaction."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from codex_broker.libs.logs import REDACTED, Redactor
from codex_broker.libs.paths import safe_name
from codex_broker.libs.rawlog import (
    KIND_CODEX_RPC,
    KIND_HTTP_REQUESTS,
    KIND_SLACK_EVENTS,
    RawLog,
    RawLogSettings,
    base64_marker,
    strip_base64,
    truncate_value,
)

PLANTED_API_KEY = "sk-proj-PLANTEDapikey0123456789abcdef"
PLANTED_BOT_TOKEN = "xoxb-1111-2222-PLANTEDbottoken"
PLANTED_SECRET = "configured-signing-secret-PLANTED"


def read_lines(directory: Path) -> list[dict]:
    files = sorted(directory.glob("*.jsonl"))
    return [json.loads(line) for path in files for line in path.read_text().splitlines()]


def test_disabled_writes_nothing(tmp_path: Path) -> None:
    raw = RawLog(KIND_SLACK_EVENTS, tmp_path, False, 131072, Redactor())
    raw.write({"type": "events_api"}, session_key="slack:C1:1.2")
    assert not (tmp_path / "logs").exists()


def test_enabled_writes_hourly_jsonl_and_session_fan_out(tmp_path: Path) -> None:
    raw = RawLog(KIND_SLACK_EVENTS, tmp_path, True, 131072, Redactor())
    raw.write({"type": "events_api", "n": 1}, session_key="slack:C1:1.2")
    raw.write({"type": "hello", "n": 2})
    main = read_lines(tmp_path / "logs" / "raw" / "slack-events")
    assert [r["record"]["n"] for r in main] == [1, 2]
    assert main[0]["session_key"] == "slack:C1:1.2" and main[0]["kind"] == "slack-events"
    (name,) = [p.name for p in (tmp_path / "logs" / "raw" / "slack-events").iterdir()]
    assert len(name) == len("2026-01-01T00.jsonl") and name.endswith(".jsonl")
    session_dir = tmp_path / "logs" / "sessions" / safe_name("slack:C1:1.2") / "raw" / "slack-events"
    assert [r["record"]["n"] for r in read_lines(session_dir)] == [1]


def test_settings_switch_each_kind(tmp_path: Path) -> None:
    settings = RawLogSettings(data_root=tmp_path, log_raw_codex_rpc=True, log_raw_max_bytes=4096)
    assert settings.raw_log(KIND_CODEX_RPC, Redactor()).enabled
    assert settings.raw_log(KIND_CODEX_RPC, Redactor()).max_bytes == 4096
    assert not settings.raw_log(KIND_HTTP_REQUESTS, Redactor()).enabled
    assert RawLogSettings().log_raw_max_bytes == 131072


def test_settings_combine_with_other_subclasses(tmp_path: Path) -> None:
    from codex_broker.orchestrator.housekeeping.config import HousekeepingSettings

    class Combined(HousekeepingSettings, RawLogSettings):
        pass

    settings = Combined(data_root=tmp_path, log_raw_slack_events=True)
    assert settings.log_raw_slack_events and settings.disk_cleanup_dry_run


@pytest.mark.parametrize("max_bytes", [1024, 4096, 131072])
def test_truncation_keeps_valid_json_within_the_limit(tmp_path: Path, max_bytes: int) -> None:
    raw = RawLog(KIND_CODEX_RPC, tmp_path, True, max_bytes, Redactor())
    record = {
        "method": "item/agentMessage/delta",
        "params": {"delta": 'é"\\x' * 100_000, "items": [{"text": "y" * 5000} for _ in range(50)]},
    }
    raw.write(record, session_key="slack:C1:1.2")
    path = next((tmp_path / "logs" / "raw" / "codex-rpc").iterdir())
    line = path.read_bytes().rstrip(b"\n")
    assert len(line) <= max_bytes
    entry = json.loads(line)
    assert entry["truncated"] is True and entry["original_bytes"] > max_bytes
    assert "truncated" in json.dumps(entry["record"], ensure_ascii=False)


def test_small_records_are_not_marked_truncated(tmp_path: Path) -> None:
    raw = RawLog(KIND_CODEX_RPC, tmp_path, True, 131072, Redactor())
    raw.write({"id": 1, "result": {"ok": True}})
    (entry,) = read_lines(tmp_path / "logs" / "raw" / "codex-rpc")
    assert "truncated" not in entry and entry["record"] == {"id": 1, "result": {"ok": True}}


def test_truncate_value_falls_back_to_a_preview_for_wide_structures() -> None:
    wide = {f"k{i}": i for i in range(5000)}
    value, truncated = truncate_value(wide, 2000)
    assert truncated and isinstance(value, str) and len(json.dumps(value).encode()) <= 2000


def test_redaction_of_planted_secrets(tmp_path: Path) -> None:
    redactor = Redactor([PLANTED_SECRET])
    raw = RawLog(KIND_CODEX_RPC, tmp_path, True, 131072, redactor)
    # Codex's API-key login request, as a parsed message and as the raw stdio line
    login = {
        "id": 3,
        "method": "account/login/start",
        "params": {"type": "apiKey", "apiKey": "plain-key-123"},
    }
    raw.write(login)
    raw.write({"direction": "out", "line": json.dumps(login)})
    raw.write({"headers": {"Authorization": "Bearer abcdefgh12345678"}, "body": f"token={PLANTED_BOT_TOKEN}"})
    raw.write({"text": f"use {PLANTED_API_KEY} and {PLANTED_SECRET}"})
    text = (next((tmp_path / "logs" / "raw" / "codex-rpc").iterdir())).read_text()
    for planted in ("plain-key-123", PLANTED_API_KEY, PLANTED_BOT_TOKEN, PLANTED_SECRET, "abcdefgh12345678"):
        assert planted not in text
    entries = read_lines(tmp_path / "logs" / "raw" / "codex-rpc")
    assert entries[0]["record"]["params"] == {"type": "apiKey", "apiKey": REDACTED}
    assert REDACTED in entries[1]["record"]["line"] and '"type": "apiKey"' in entries[1]["record"]["line"]


def test_inline_base64_becomes_a_size_marker(tmp_path: Path) -> None:
    blob = base64.b64encode(b"\x89PNG" + bytes(1230)).decode()  # 1234 bytes decoded
    raw = RawLog(KIND_HTTP_REQUESTS, tmp_path, True, 131072, Redactor())
    raw.write(
        {
            "path": "/slack/post-file",
            "body": {"filename": "a.png", "content_base64": blob, "contentBase64": blob},
            "input": [{"type": "image", "url": f"data:image/png;base64,{blob}"}],
            "bare": [blob],
        }
    )
    text = next((tmp_path / "logs" / "raw" / "http-requests").iterdir()).read_text()
    assert blob[:40] not in text
    (entry,) = read_lines(tmp_path / "logs" / "raw" / "http-requests")
    record = entry["record"]
    assert record["body"]["content_base64"] == "[base64 1234 bytes]"
    assert record["body"]["contentBase64"] == "[base64 1234 bytes]"
    assert record["input"][0]["url"] == "data:image/png;base64,[base64 1234 bytes]"
    assert record["bare"] == ["[base64 1234 bytes]"]
    assert record["body"]["filename"] == "a.png"


def test_strip_base64_leaves_ordinary_text_alone() -> None:
    value = {"text": "hello world", "id": "abcdefABCDEF0123", "n": 3, "encoding": "base64"}
    assert strip_base64(value) == value
    long_word = {"text": "y" * 5000, "number": "1" * 2000}
    assert strip_base64(long_word) == long_word
    assert base64_marker("QUJD") == "[base64 3 bytes]"
    assert base64_marker("QUI=") == "[base64 2 bytes]"


@pytest.mark.parametrize("offset", [-40, -10, 0, 5, 1000, 1020, 1030, 5000])
def test_a_secret_at_the_cut_is_never_half_written(tmp_path: Path, offset: int) -> None:
    max_bytes = 2048
    raw = RawLog(KIND_CODEX_RPC, tmp_path, True, max_bytes, Redactor([PLANTED_SECRET]))
    text = "a " * ((max_bytes + offset) // 2) + PLANTED_SECRET + " b" * 5000
    raw.write({"output": text})
    written = next((tmp_path / "logs" / "raw" / "codex-rpc").iterdir()).read_text()
    assert PLANTED_SECRET[:8] not in written
    assert len(written.encode().rstrip(b"\n")) <= max_bytes
