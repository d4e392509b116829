"""Redaction of every secret shape before anything is written; hourly files and fan-out."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from codex_broker.libs.logs import REDACTED, HourlyFileHandler, JsonFormatter, Redactor, setup_logging
from codex_broker.libs.paths import safe_name

SHAPES = {
    "slack bot": "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp",
    "slack app": "xapp-1-A0123456789-1234567890123-abcdef0123456789",
    "slack user": "xoxp-1234567890-0987654321-abcdefabcdef",
    "openai": "sk-abcdefghijklmnopqrstuvwxyz0123",
    "openai project": "sk-proj-AbCdEf0123456789_xyz-ABCDEFGHIJ",
    "github": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "feishu tenant": "t-g1044abcdEFGH.ijklmnopqrstuvwxyz0123",
    "feishu tenant (no dot)": "t-g1044ghJRUIJJ5ELPFNMULZNRQYOB3QGBVTNUEQI",
    "feishu user": "u-2bY7KLmJ8c3XEpqA5nH1wFvd9QrTz0sGuxiC4oN6yekZ",
}


@pytest.mark.parametrize("token", SHAPES.values(), ids=SHAPES.keys())
def test_token_shapes_are_redacted(token: str) -> None:
    out = Redactor().text(f"calling api with {token} now")
    assert token not in out
    assert out == f"calling api with {REDACTED} now"


@pytest.mark.parametrize(
    "header",
    [
        "Authorization: Bearer abc.def-ghi_jkl",
        'authorization="Bearer abcdefgh12345678"',
        "headers={'Authorization': 'token abcdef123456'}",
    ],
)
def test_authorization_headers_are_redacted(header: str) -> None:
    out = Redactor().text(header)
    assert "abc" not in out.lower().replace("authorization", "")
    assert REDACTED in out


def test_bare_bearer_token_is_redacted() -> None:
    assert Redactor().text("got Bearer eyJhbGciOiJIUzI1NiJ9.payload") == f"got Bearer {REDACTED}"


def test_configured_secret_values_are_redacted() -> None:
    redactor = Redactor(["hunter2-plain-password", "abc"])  # too short to redact safely: ignored
    out = redactor.text("login with hunter2-plain-password as abc")
    assert out == f"login with {REDACTED} as abc"


def test_nested_structures_and_secret_key_names() -> None:
    redactor = Redactor(["my-configured-secret"])
    value = {
        "request": {
            "headers": {"Authorization": "anything at all", "X-Admin-Token": "t0p"},
            "body": ["ok", {"text": "key sk-abcdefghijklmnopqrstuvwxyz"}],
        },
        "slack_bot_token": "whatever",
        "note": "uses my-configured-secret",
        "count": 3,
        "empty_token": "",
    }
    out = redactor.value(value)
    assert out == {
        "request": {
            "headers": {"Authorization": REDACTED, "X-Admin-Token": REDACTED},
            "body": ["ok", {"text": f"key {REDACTED}"}],
        },
        "slack_bot_token": REDACTED,
        "note": f"uses {REDACTED}",
        "count": 3,
        "empty_token": "",
    }


def test_plain_text_is_untouched() -> None:
    text = "skip the task-list; see ticket xox-12 and sk-short; a t-shirt-and-u-turn-kind-of-day"
    assert Redactor().text(text) == text


@pytest.fixture
def file_logger(tmp_path: Path) -> Iterator[logging.Logger]:
    logger = logging.getLogger(f"test-logs-{tmp_path.name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = HourlyFileHandler(tmp_path / "logs", "orchestrator")
    handler.setFormatter(JsonFormatter("orchestrator", Redactor(["configured-secret-1"])))
    logger.addHandler(handler)
    yield logger
    logger.removeHandler(handler)


def _lines(directory: Path) -> list[dict[str, object]]:
    files = sorted(directory.glob("*.jsonl"))
    assert len(files) == 1, files
    assert len(files[0].stem) == len("2026-01-01T00")  # one file per UTC hour
    return [json.loads(line) for line in files[0].read_text().splitlines()]


def test_hourly_file_and_session_and_job_fan_out(file_logger: logging.Logger, tmp_path: Path) -> None:
    sk = "slack:C1:100.1"
    file_logger.info("plain")
    file_logger.info("turn started with xoxb-1234567890-abcdefghij", extra={"session_key": sk})
    file_logger.warning("job said configured-secret-1", extra={"job_id": "job/1"})
    logs = tmp_path / "logs"
    service = _lines(logs / "orchestrator")
    assert [e["msg"] for e in service] == [
        "plain",
        f"turn started with {REDACTED}",
        f"job said {REDACTED}",
    ]
    assert service[1]["session_key"] == sk
    assert service[2]["level"] == "WARNING"
    session = _lines(logs / "sessions" / safe_name(sk))
    assert [e["msg"] for e in session] == [f"turn started with {REDACTED}"]
    job = _lines(logs / "jobs" / safe_name("job/1"))
    assert [e["msg"] for e in job] == [f"job said {REDACTED}"]
    written = "".join(p.read_text() for p in logs.rglob("*.jsonl"))
    assert "xoxb-" not in written and "configured-secret-1" not in written


def test_setup_logging_writes_redacted_json_to_stdout_and_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        setup_logging("codex-runner", level="INFO", data_root=tmp_path, secrets=["runner-secret-xyz"])
        logging.getLogger("demo").info("auth runner-secret-xyz", extra={"api_key": "k", "run": 1})
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    entry = json.loads(line)
    assert entry["msg"] == f"auth {REDACTED}"
    assert entry["api_key"] == REDACTED
    assert entry["service"] == "codex-runner" and entry["run"] == 1
    assert _lines(tmp_path / "logs" / "codex-runner")[0]["msg"] == f"auth {REDACTED}"
