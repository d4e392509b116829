"""`codex-broker doctor`: pure verdicts, and the command itself against the real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from codex_broker.cli import doctor
from codex_broker.cli.doctor import (
    Check,
    check_codex_auth,
    check_codex_bin,
    check_data_root,
    check_pair,
    check_redis,
    check_sandbox,
    exit_code,
    safe_url,
)
from codex_broker.libs.codex_bin import CODEX_VERSION
from tests.helpers import free_port

SLACK_SHAPES = {"SLACK_APP_TOKEN": "xapp-", "SLACK_BOT_TOKEN": "xoxb-"}


def test_safe_url_hides_the_password() -> None:
    assert safe_url("redis://:hunter2@redis.internal:6380/1") == "redis://:***@redis.internal:6380/1"
    assert safe_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_check_redis() -> None:
    assert check_redis(None, "", None, "/usr/bin/redis-server").status == "ok"
    assert check_redis(None, "", None, None).status == "fail"
    assert check_redis("redis://x", "REDIS_URL", "ConnectionError: refused", None).status == "fail"
    assert check_redis("redis://x", "REDIS_URL", None, None).status == "ok"


def test_check_redis_auth() -> None:
    assert doctor.check_redis_auth(None, None).status == "ok"  # type: ignore[union-attr]
    assert doctor.check_redis_auth("redis://h:1/0", None) is None
    open_ = doctor.check_redis_auth("redis://:pw@h:1/0", True)
    assert open_ is not None and open_.status == "warn" and "pw" not in open_.detail
    assert doctor.check_redis_auth("redis://:pw@h:1/0", False).status == "ok"  # type: ignore[union-attr]


def test_check_codex_bin() -> None:
    assert check_codex_bin(None, None).status == "fail"
    assert check_codex_bin("/c", None).status == "fail"
    assert check_codex_bin("/c", f"codex-cli {CODEX_VERSION}\n") == Check(
        "ok", "codex-bin", f"/c ({CODEX_VERSION})"
    )
    other = check_codex_bin("/c", "codex-cli 0.1.0")
    assert other.status == "warn" and f"pinned {CODEX_VERSION}" in other.detail


def test_check_codex_auth(tmp_path: Path) -> None:
    home = tmp_path / "auth.json"
    assert check_codex_auth(True, None, False, home, False).status == "ok"
    assert check_codex_auth(False, tmp_path / "a.json", True, home, False).status == "ok"
    assert check_codex_auth(False, tmp_path / "a.json", False, home, True).status == "fail"
    assert check_codex_auth(False, None, False, home, True).status == "ok"
    assert check_codex_auth(False, None, False, home, False).status == "fail"


def test_check_pair() -> None:
    neither = check_pair("slack", ("SLACK_APP_TOKEN", None), ("SLACK_BOT_TOKEN", None), SLACK_SHAPES)
    assert neither == Check("warn", "slack", "disabled: SLACK_APP_TOKEN and SLACK_BOT_TOKEN not set")
    one = check_pair("slack", ("SLACK_APP_TOKEN", "xapp-1"), ("SLACK_BOT_TOKEN", None), SLACK_SHAPES)
    assert one.status == "fail" and "SLACK_BOT_TOKEN not set" in one.detail
    swapped = check_pair("slack", ("SLACK_APP_TOKEN", "xoxb-1"), ("SLACK_BOT_TOKEN", "xapp-1"), SLACK_SHAPES)
    assert swapped.status == "warn" and "xapp-" in swapped.detail
    both = check_pair("slack", ("SLACK_APP_TOKEN", "xapp-1"), ("SLACK_BOT_TOKEN", "xoxb-1"), SLACK_SHAPES)
    assert both.status == "ok"
    assert "xapp-1" not in both.detail


def test_check_data_root_and_exit_code(tmp_path: Path) -> None:
    ok = check_data_root(tmp_path, None, 10**9)
    bad = check_data_root(tmp_path, "Permission denied", None)
    assert ok.status == "ok" and bad.status == "fail"
    assert exit_code([ok, Check("warn", "x", "")]) == 0
    assert exit_code([ok, bad]) == 1


def _doctor(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: os.environ[k] for k in ("PATH", "HOME", "CODEX_BIN") if k in os.environ}
    base["DATA_ROOT"] = str(tmp_path / "data")
    return subprocess.run(
        [sys.executable, "-m", "codex_broker.cli", "doctor"],
        env={**base, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _statuses(output: str) -> dict[str, str]:
    return {line.split()[1]: line.split()[0] for line in output.splitlines() if line.strip()}


def test_doctor_command_all_good(tmp_path: Path, redis_url: str) -> None:
    done = _doctor(
        tmp_path,
        REDIS_URL=redis_url,
        OPENAI_API_KEY="sk-doctor-secret-1234567890",
        SLACK_APP_TOKEN="xapp-1-doctor",
        SLACK_BOT_TOKEN="xoxb-doctor",
        DISCORD_BOT_TOKEN="MTA.doctor.discord-secret",
    )
    statuses = _statuses(done.stdout)
    assert statuses["redis"] == "ok"
    assert statuses["codex-auth"] == "ok"
    assert statuses["slack"] == "ok"
    assert statuses["feishu"] == "warn"  # neither set: disabled
    assert statuses["discord"] == "ok"
    assert statuses["data-root"] == "ok"
    assert statuses["sandbox"] == "ok"  # the real `codex sandbox` sealed a command on this host
    # the test Redis has no password: doctor says it is open to a session's commands
    assert statuses["redis-auth"] == "warn"
    assert set(statuses) == {
        "redis",
        "redis-auth",
        "codex-bin",
        "sandbox",
        "codex-auth",
        "slack",
        "feishu",
        "discord",
        "web",  # the web chat needs no platform app: always live
        "data-root",
    }
    assert "sk-doctor-secret" not in done.stdout and "xoxb-doctor" not in done.stdout
    assert "discord-secret" not in done.stdout
    assert done.returncode == (1 if statuses["codex-bin"] == "fail" else 0), done.stdout


def test_doctor_command_fails_on_a_failure(tmp_path: Path) -> None:
    done = _doctor(
        tmp_path,
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        FEISHU_APP_ID="cli_x",
        CODEX_AUTH_JSON_PATH=str(tmp_path / "missing.json"),
    )
    statuses = _statuses(done.stdout)
    assert statuses["redis"] == "fail"
    assert statuses["feishu"] == "fail"
    assert statuses["discord"] == "warn"  # not set: disabled
    assert statuses["codex-auth"] == "fail"
    assert done.returncode == 1


@pytest.mark.parametrize("value", ["abc", "0"])
def test_invalid_setting_stops_doctor_naming_the_variable(tmp_path: Path, value: str) -> None:
    done = _doctor(tmp_path, METRICS_PORT_BASE=value)
    assert done.returncode == 2
    assert "METRICS_PORT_BASE" in done.stderr


def test_the_sandbox_check_is_loud_when_codex_cannot_seal() -> None:
    assert check_sandbox(True, None).status == "ok"
    failed = check_sandbox(True, "bwrap: No permissions to create new namespace")
    assert failed.status == "fail" and "SEAL_SESSIONS=false" in failed.detail and "bwrap" in failed.detail
    assert check_sandbox(False, None).status == "fail"
