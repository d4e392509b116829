"""`up` gives Codex's commands an http-api address of their own unless the operator chose one."""

from __future__ import annotations

from typing import Any

from codex_broker.cli.config import Settings
from codex_broker.cli.main import UP_SESSION_API_HOST, session_api_env


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_up_picks_the_session_address_by_default() -> None:
    assert session_api_env(settings()) == {"SESSION_API_HOST": UP_SESSION_API_HOST}
    assert UP_SESSION_API_HOST.startswith("127.") and UP_SESSION_API_HOST != "127.0.0.1"


def test_an_operators_choice_is_kept() -> None:
    assert session_api_env(settings(session_api_host="127.0.0.9")) == {}
    assert session_api_env(settings(broker_api_base="http://10.0.0.5:3000")) == {}
    assert session_api_env(settings(http_api_host="0.0.0.0")) == {}
