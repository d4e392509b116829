"""`codex-broker doctor --live` against the project's fakes: real slack-sdk on the fake Slack
(auth.test, the x-oauth-scopes header, apps.connections.open), real lark-oapi on the fake Feishu
(tenant token, bot info), and the real Codex app-server on CODEX_HOMEs pointed at the fake model
(account/read) — with good and bad credentials. Secrets never appear in the output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from codex_broker.cli import doctor_live
from codex_broker.cli.config import Settings
from codex_broker.cli.doctor import exit_code
from codex_broker.ingress_feishu.config import Settings as FeishuSettings
from codex_broker.ingress_slack.config import Settings as SlackSettings
from codex_broker.libs.codex_account import AccountFacts, describe_rate_limits, facts_from_account
from codex_broker.libs.keys import Keys
from codex_broker.libs.paths import codex_home
from tests.fakes.codex_home import FAKE_API_KEY, write_codex_home
from tests.fakes.fake_feishu import FakeFeishu
from tests.fakes.fake_model import FakeModel
from tests.fakes.fake_slack import FakeSlack

REPO = Path(__file__).resolve().parents[2]
WANTED = doctor_live.read_manifest_scopes(REPO / doctor_live.MANIFEST)
assert WANTED, "the manifest lists bot scopes"


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(granted_scopes=tuple(WANTED or ())) as fake:
        yield fake


@pytest.fixture(scope="module")
def feishu() -> Iterator[FakeFeishu]:
    fake = FakeFeishu().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def model() -> Iterator[FakeModel]:
    with FakeModel(api_key=FAKE_API_KEY) as fake:
        yield fake


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Codex's own reaching out goes to a dead loopback port; no key leaks in from outside."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def _settings(data_root: Path) -> Settings:
    return Settings(data_root=data_root, _env_file=None)  # type: ignore[call-arg]


def _slack(fake: FakeSlack, *, bot: str | None = None, app: str | None = None) -> SlackSettings:
    return SlackSettings(  # type: ignore[call-arg]
        slack_api_url=fake.api_url,
        slack_bot_token=SecretStr(bot if bot is not None else fake.bot_token),
        slack_app_token=SecretStr(app if app is not None else fake.app_token),
        _env_file=None,
    )


def _feishu(fake: FakeFeishu | None, *, secret: str | None = None) -> FeishuSettings:
    if fake is None:
        return FeishuSettings(_env_file=None)  # type: ignore[call-arg]
    return FeishuSettings(  # type: ignore[call-arg]
        feishu_app_id=fake.app_id,
        feishu_app_secret=SecretStr(secret if secret is not None else fake.app_secret),
        feishu_domain=fake.url,
        _env_file=None,
    )


def _profile(data_root: Path, name: str, model: FakeModel, auth: dict[str, str] | None) -> Path:
    home = codex_home(data_root, name)
    home.mkdir(parents=True, exist_ok=True)
    write_codex_home(home, model.base_url)
    if auth is not None:
        (home / "auth.json").write_text(json.dumps(auth))
    return home


def _by_name(checks: list[doctor_live.Check]) -> dict[str, list[doctor_live.Check]]:
    found: dict[str, list[doctor_live.Check]] = {}
    for check in checks:
        found.setdefault(check.name, []).append(check)
    return found


async def test_good_credentials_pass_everything(
    slack: FakeSlack, feishu: FakeFeishu, model: FakeModel, tmp_path: Path, redis: Redis, keys: Keys
) -> None:
    _profile(tmp_path, "default", model, {"auth_mode": "apikey", "OPENAI_API_KEY": FAKE_API_KEY})
    _profile(tmp_path, "team", model, {"auth_mode": "apikey", "OPENAI_API_KEY": FAKE_API_KEY})
    await redis.hset(keys.auth_profiles, "team", json.dumps({"kind": "apikey"}))  # type: ignore[misc]
    inputs = doctor_live.LiveInputs(_settings(tmp_path), _slack(slack), _feishu(feishu), WANTED)
    checks = await doctor_live.gather_live(inputs, redis, keys)
    named = _by_name(checks)
    assert [c.status for c in checks] == ["ok"] * len(checks), [c.line() for c in checks]
    assert "UBOT0FAKE" in named["slack-auth"][0].detail
    assert f"all {len(WANTED or [])} scopes" in named["slack-scopes"][0].detail
    assert feishu.bot_open_id in named["feishu-bot"][0].detail
    assert [c.detail.split(":")[0] for c in named["codex-account"]] == ["profile default", "profile team"]
    output = "\n".join(c.line() for c in checks)
    for secret in (slack.bot_token, slack.app_token, feishu.app_secret, FAKE_API_KEY):
        assert secret not in output
    assert exit_code(checks) == 0


async def test_bad_credentials_fail_each_with_its_reason(
    slack: FakeSlack, feishu: FakeFeishu, model: FakeModel, tmp_path: Path, keys: Keys
) -> None:
    _profile(tmp_path, "default", model, None)  # no auth.json: Codex cannot log in
    inputs = doctor_live.LiveInputs(
        _settings(tmp_path),
        _slack(slack, bot="xoxb-wrong", app="xapp-wrong"),
        _feishu(feishu, secret="not-the-secret"),
        WANTED,
    )
    checks = await doctor_live.gather_live(inputs, None, keys)
    named = _by_name(checks)
    assert named["slack-auth"][0].status == "fail" and "invalid_auth" in named["slack-auth"][0].detail
    assert "slack-scopes" not in named  # nothing to compare without a working token
    assert named["slack-socket"][0].status == "fail" and "invalid_auth" in named["slack-socket"][0].detail
    assert named["feishu-token"][0].status == "fail" and "10014" in named["feishu-token"][0].detail
    assert named["feishu-bot"][0].status == "fail"
    assert named["codex-account"][0].status == "fail" and "no auth.json" in named["codex-account"][0].detail
    output = "\n".join(c.line() for c in checks)
    assert "xoxb-wrong" not in output and "not-the-secret" not in output
    assert exit_code(checks) == 1


async def test_a_missing_scope_fails_and_unset_platforms_only_warn(
    model: FakeModel, tmp_path: Path, keys: Keys
) -> None:
    granted = [s for s in WANTED or [] if s != "files:write"]
    with FakeSlack(granted_scopes=tuple(granted)) as narrow:
        inputs = doctor_live.LiveInputs(_settings(tmp_path), _slack(narrow, app=""), _feishu(None), WANTED)
        _profile(tmp_path, "default", model, {"auth_mode": "apikey", "OPENAI_API_KEY": FAKE_API_KEY})
        named = _by_name(await doctor_live.gather_live(inputs, None, keys))
    assert named["slack-scopes"][0].status == "fail"
    assert "missing files:write" in named["slack-scopes"][0].detail
    assert named["slack-socket"][0].status == "warn"  # no app token: not checked, not failed
    assert named["feishu-token"][0].status == "warn"


def _openai_profile(data_root: Path, name: str, key: str) -> None:
    """A profile on Codex's built-in OpenAI provider (account/read says apiKey); network features off."""
    home = codex_home(data_root, name)
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("check_for_update_on_startup = false\n\n[analytics]\nenabled = false\n")
    (home / "auth.json").write_text(json.dumps({"auth_mode": "apikey", "OPENAI_API_KEY": key}))


async def test_an_api_key_profile_is_tried_on_the_api(
    model: FakeModel, tmp_path: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", model.base_url)  # the fake stands in for api.openai.com
    _openai_profile(tmp_path, "default", FAKE_API_KEY)
    _openai_profile(tmp_path, "stale", "sk-revoked-000000000000")
    settings = _settings(tmp_path)
    checks = await doctor_live.codex_checks(settings, await doctor_live.profile_homes(settings, None, keys))
    good, bad = checks
    assert good.status == "ok" and "accepted by" in good.detail, good.line()
    assert bad.status == "fail" and "refused the key (HTTP 401)" in bad.detail, bad.line()
    assert "sk-revoked" not in bad.line() and FAKE_API_KEY not in good.line()


def test_manifest_scopes_parse_the_bot_block_only() -> None:
    text = (
        "oauth_config:\n  scopes:\n    bot:\n      - chat:write   # posts\n\n"
        "      - users:read.email\nsettings:\n  x: 1\n"
    )
    assert doctor_live.manifest_bot_scopes(text) == ["chat:write", "users:read.email"]


def test_scope_verdicts() -> None:
    assert doctor_live.check_slack_scopes(["a", "b"], ["a", "b"]).status == "ok"
    assert doctor_live.check_slack_scopes(["a", "b", "c"], ["a", "b"]).status == "warn"
    assert doctor_live.check_slack_scopes(["a"], ["a", "b"]).status == "fail"
    assert doctor_live.check_slack_scopes(None, ["a"]).status == "warn"
    assert doctor_live.check_slack_scopes(["a"], None).status == "warn"


def test_account_facts_from_app_server_answers() -> None:
    chatgpt = {
        "account": {"type": "chatgpt", "email": "dev@example.com", "planType": "pro"},
        "requiresOpenaiAuth": True,
    }
    facts = facts_from_account("team", chatgpt)
    assert (facts.ok, facts.who, facts.plan) == (True, "dev@example.com", "pro")
    assert facts_from_account("x", {"account": None, "requiresOpenaiAuth": True}).ok is False
    limits = {"rateLimits": {"primary": {"usedPercent": 40, "windowDurationMins": 300}, "secondary": None}}
    assert describe_rate_limits(limits) == "primary 40% used of 5 h"
    line = doctor_live.check_codex_account(
        AccountFacts("team", True, "chatgpt", "dev@example.com", "pro", "primary 40% used")
    )
    assert line.status == "ok" and "plan pro" in line.detail and "primary 40% used" in line.detail


def test_the_command_exits_non_zero_on_a_bad_token(slack: FakeSlack, tmp_path: Path, redis_url: str) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "FEISHU_", "OPENAI_"))},
        "REDIS_URL": redis_url,
        "DATA_ROOT": str(tmp_path),
        "SLACK_API_URL": slack.api_url,
        "SLACK_BOT_TOKEN": "xoxb-wrong",
        "SLACK_APP_TOKEN": slack.app_token,
    }
    done = subprocess.run(
        [sys.executable, "-m", "codex_broker.cli", "doctor", "--live"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("fail  slack-auth") and "invalid_auth" in line for line in lines), done.stdout
    assert any(line.startswith("ok    slack-socket") for line in lines), done.stdout
    assert "xoxb-wrong" not in done.stdout and slack.app_token not in done.stdout
