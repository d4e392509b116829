"""Who receives which secret, checked without starting anything (fast; the e2e test proves it
on live processes): `codex-broker up`'s per-child environment, Codex's shell environment
policy, and the redaction of the session token in logs."""

from __future__ import annotations

import json
from pathlib import Path

from codex_broker.cli.plan import (
    ALL_SERVICES,
    SECRET_OWNERS,
    env_without_foreign_secrets,
    plan_children,
)
from codex_broker.codex_runner.environment import SHELL_EXCLUDED_ENV, shell_env_excludes
from codex_broker.libs.logs import Redactor
from codex_broker.libs.settings import CommonSettings

SECRETS = {name: f"value-of-{name.lower()}" for name in SECRET_OWNERS}
BASE = {**SECRETS, "KEY_PREFIX": "cb", "PATH": "/usr/bin", "SLACK_API_URL": "http://127.0.0.1:1/api/"}


def _children(base: dict[str, str]) -> dict[str, dict[str, str]]:
    plans = plan_children(
        python="/venv/bin/python",
        replicas={"codex-runner": 2},
        metrics_port_base=9100,
        http_api_port=3000,
        with_worker=True,
        worker_available=True,
        base_env=base,
    )
    return {plan.name: dict(plan.env) for plan in plans}


SHARED = "REDIS_PASSWORD"  # every broker service needs Redis


def _secrets_in(env: dict[str, str]) -> set[str]:
    """The per-service secrets in `env` (the shared Redis password apart)."""
    return {name for name in SECRET_OWNERS if name in env and name != SHARED}


def test_each_child_gets_only_the_secrets_it_owns() -> None:
    children = _children(BASE)
    assert {name: _secrets_in(env) for name, env in children.items()} == {
        "ingress-slack-1": {"SLACK_APP_TOKEN", "SLACK_BOT_TOKEN"},
        "ingress-feishu-1": {"FEISHU_APP_SECRET"},
        "ingress-web-1": {"BROKER_ADMIN_TOKEN"},
        "ingress-discord-1": {"DISCORD_BOT_TOKEN"},
        "orchestrator-1": set(),
        "codex-runner-1": {"OPENAI_API_KEY", "GH_TOKEN", "GITHUB_TOKEN"},
        "codex-runner-2": {"OPENAI_API_KEY", "GH_TOKEN", "GITHUB_TOKEN"},
        "http-api-1": {"BROKER_ADMIN_TOKEN"},
        "worker-1": set(),
    }
    assert all(SHARED in env for env in children.values())
    for env in children.values():  # everything that is not a secret passes through
        assert env["KEY_PREFIX"] == "cb" and env["PATH"] == "/usr/bin"
        assert env["SLACK_API_URL"] == BASE["SLACK_API_URL"]


def test_every_secret_setting_has_an_owner() -> None:
    """A new SecretStr setting must be added to SECRET_OWNERS, or `up` hands it to every child."""
    from codex_broker.codex_runner.config import Settings as RunnerSettings
    from codex_broker.http_api.config import Settings as ApiSettings
    from codex_broker.ingress_discord.config import Settings as DiscordSettings
    from codex_broker.ingress_feishu.config import Settings as FeishuSettings
    from codex_broker.ingress_slack.config import Settings as SlackSettings
    from codex_broker.ingress_web.config import Settings as WebSettings

    found = set()
    models = (SlackSettings, FeishuSettings, WebSettings, DiscordSettings, RunnerSettings, ApiSettings)
    for model in (*models, CommonSettings):
        for name, info in model.model_fields.items():
            if "SecretStr" in str(info.annotation):
                found.add(name.upper())
    assert found == set(SECRET_OWNERS)
    services = {s.name for s in ALL_SERVICES}
    assert all(owners <= services for owners in SECRET_OWNERS.values())


def test_names_match_case_insensitively_like_the_settings() -> None:
    env = env_without_foreign_secrets("orchestrator", {"slack_bot_token": "x", "Gh_Token": "y", "A": "1"})
    assert env == {"A": "1"}


def test_worker_gets_the_github_tokens_only_when_jobs_may_have_them() -> None:
    assert _secrets_in(_children(BASE)["worker-1"]) == set()
    children = _children({**BASE, "JOB_ENV_INCLUDE_GH_TOKEN": "true"})
    assert _secrets_in(children["worker-1"]) == {"GH_TOKEN", "GITHUB_TOKEN"}
    assert _secrets_in(children["http-api-1"]) == {"BROKER_ADMIN_TOKEN"}


def test_embedded_redis_gets_no_secret() -> None:
    env = env_without_foreign_secrets("redis", BASE)
    assert _secrets_in(env) == set() and SHARED not in env


def test_codex_shell_drops_the_model_api_key_and_keeps_the_operators_excludes(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    assert shell_env_excludes(config) == list(SHELL_EXCLUDED_ENV)  # no config.toml
    config.write_text('[shell_environment_policy]\nexclude = ["AWS_*", "OPENAI_API_KEY"]\n')
    assert shell_env_excludes(config) == ["AWS_*", "OPENAI_API_KEY"]
    config.write_text('[shell_environment_policy]\nexclude = ["AWS_*"]\n')
    excludes = shell_env_excludes(config)
    assert excludes == ["AWS_*", "OPENAI_API_KEY"]
    assert json.loads(json.dumps(excludes)) == excludes  # the `-c` value is a TOML array literal
    config.write_text("not toml [")
    assert shell_env_excludes(config) == list(SHELL_EXCLUDED_ENV)


def test_session_token_line_is_redacted_in_logs() -> None:
    text = "## Broker API\nBROKER_SESSION_TOKEN=PPhnnXTe31H_HPUPEg0uNpqLTwCEuadmkSpOy9xNL1o\nmore"
    redacted = Redactor().text(text)
    assert "PPhnnXTe31H" not in redacted
    assert "BROKER_SESSION_TOKEN=[REDACTED]" in redacted
    exported = "export BROKER_API_BASE=http://127.0.0.1:3000 BROKER_SESSION_TOKEN=abcdefgh12345678 and"
    assert "abcdefgh12345678" not in Redactor().text(exported)
