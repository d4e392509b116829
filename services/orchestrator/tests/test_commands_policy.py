from __future__ import annotations

from pathlib import Path

import pytest

from codex_broker.libs.contracts import Actor, InboundEvent
from codex_broker.orchestrator.commands import StatusFacts, help_text, parse_command, status_text
from codex_broker.orchestrator.policy import Policy, access_denial, route_message, validate_workspace


def event(**fields: object) -> InboundEvent:
    base: dict[str, object] = {
        "event_id": "e1",
        "platform": "slack",
        "conversation_id": "C1",
        "root_message_id": "1.0",
        "message_id": "1.0",
        "actor": Actor(id="U1", display_name="Alice"),
        "text": "hi",
    }
    base.update(fields)
    return InboundEvent(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "name", "args"),
    [
        ("-stop", "stop", ""),
        ("/STOP please", "stop", "please"),
        ("/new", "new", ""),
        ("  /status ", "status", ""),
        ("/cd /srv/repo", "cd", "/srv/repo"),
        ("/config sandbox read-only", "config", "sandbox read-only"),
        ("-status", "status", ""),
        ("-new", "new", ""),
        ("-usage", "usage", ""),
        ("-HELP", "help", ""),
        ("-cd /srv/repo", "cd", "/srv/repo"),
    ],
)
def test_parse_command(text: str, name: str, args: str) -> None:
    command = parse_command(text)
    assert command is not None and command.name == name and command.args == args


@pytest.mark.parametrize("text", ["", "stop", "please -stop", "/unknown", "/newer"])
def test_not_commands(text: str) -> None:
    assert parse_command(text) is None


@pytest.mark.parametrize(("text", "name"), [("status", "status"), ("New", "new"), ("help?", "help")])
def test_a_mention_that_is_only_the_word(text: str, name: str) -> None:
    command = parse_command(text, mentioned=True)
    assert command is not None and command.name == name
    assert parse_command(text) is None  # a plain reply saying "status" is a message to Codex


@pytest.mark.parametrize("text", ["help me fix the build", "status of the deploy?", "cd /srv"])
def test_a_mention_with_more_words_is_a_task(text: str) -> None:
    assert parse_command(text, mentioned=True) is None


def test_help_lists_only_what_the_platform_delivers() -> None:
    slack, feishu = help_text("slack"), help_text("feishu")
    assert "`/codex status`" in slack and "`-status`" in slack
    assert "`/status`" not in slack and "`/stop`" not in slack  # Slack never delivers these as text
    assert "`/status`" in feishu and "`/codex" not in feishu
    discord = help_text("discord")
    assert "`/codex status`" in discord and "`-status`" in discord and "`-cd <path|alias>`" in discord
    assert "`/status`" not in discord and "`/codex cd" not in discord  # /codex has no cd subcommand


def test_routing() -> None:
    assert route_message(event(is_mention=True), session_exists=False, mention_required=True) == "start"
    assert route_message(event(), session_exists=False, mention_required=True) == "ignore"
    assert route_message(event(), session_exists=True, mention_required=True) == "continue"
    assert route_message(event(is_direct=True), session_exists=False, mention_required=True) == "start"
    assert route_message(event(), session_exists=False, mention_required=False) == "start"
    reply = event(message_id="2.0")  # a plain reply in a thread without a session
    assert route_message(reply, session_exists=False, mention_required=False) == "ignore"
    bot = event(is_mention=True, actor=Actor(id="B1", is_bot=True))
    assert route_message(bot, session_exists=True, mention_required=True) == "ignore"
    job = event(kind="job_callback", actor=Actor(id="job:j1", is_bot=True))
    assert route_message(job, session_exists=True, mention_required=True) == "continue"
    assert route_message(job, session_exists=False, mention_required=True) == "ignore"


def test_access_policy() -> None:
    policy = Policy(
        allowed_users=frozenset({"U1"}), allowed_channels=frozenset({"C1"}), admins=frozenset({"A"})
    )
    assert access_denial(event(), policy) is None
    assert access_denial(event(actor=Actor(id="U2")), policy) == "user"
    assert access_denial(event(conversation_id="C9"), policy) == "channel"
    assert access_denial(event(conversation_id="C9", actor=Actor(id="A")), policy) is None
    assert access_denial(event(conversation_id="D1", is_direct=True), policy) is None
    no_dms = Policy(dms_allowed=False)
    assert access_denial(event(conversation_id="D1", is_direct=True), no_dms) == "dm"


def test_admins_by_id_or_by_the_platforms_roles() -> None:
    policy = Policy(allowed_users=frozenset({"U1"}), admins=frozenset({"A"}))
    role_admin = Actor(id="U7", platform_admin=True)
    assert policy.is_admin(Actor(id="A")) and policy.is_admin(role_admin)
    assert not policy.is_admin(Actor(id="U1"))
    assert not policy.is_admin(Actor(id="job:1", is_bot=True, platform_admin=True))  # never a bot
    assert access_denial(event(actor=role_admin), policy) is None  # admins pass the allow-list


def test_validate_workspace(tmp_path: Path) -> None:
    home = tmp_path / "home" / "me"
    home.mkdir(parents=True)
    project = tmp_path / "project"
    project.mkdir()
    assert validate_workspace(str(project), aliases={}, home=home) == project.resolve()
    assert validate_workspace("proj", aliases={"proj": str(project)}, home=home) == project.resolve()
    for bad in [
        "/",
        "/etc",
        "/usr/lib",
        "/tmp",
        "/home",
        "relative/path",
        str(home),
        str(tmp_path / "missing"),
    ]:
        assert isinstance(validate_workspace(bad, aliases={}, home=home), str), bad
    assert isinstance(validate_workspace(str(project) + "/../../../../etc", aliases={}, home=home), str)


def test_status_text() -> None:
    body = status_text(
        StatusFacts(
            running=True,
            run_id="abcdef123456789",
            queued=2,
            thread_id="thr",
            workspace="/w",
            input_tokens=10,
            output_tokens=5,
            total_tokens=15,
        )
    )
    assert "Running" in body and "abcdef123456" in body and "*Queued messages:* 2" in body and "`thr`" in body
