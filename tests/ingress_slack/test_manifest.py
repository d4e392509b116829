"""The shipped Slack app manifest asks for what the service uses: Socket Mode, events, scopes."""

from __future__ import annotations

from pathlib import Path

import yaml

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "slack-app-manifest.yaml"


def test_manifest_enables_socket_mode_interactivity_events_and_scopes() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["interactivity"]["is_enabled"] is True
    assert "request_url" not in settings["event_subscriptions"], "Socket Mode needs no public URL"
    assert set(settings["event_subscriptions"]["bot_events"]) == {
        "app_mention",
        "message.channels",
        "message.groups",
        "message.im",
        "message.mpim",
    }
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "app_mentions:read",
        "chat:write",
        "channels:history",
        "groups:history",
        "im:history",
        "mpim:history",
        "files:read",
        "files:write",
        "users:read",
        "users:read.email",
        "reactions:write",
        "assistant:write",
        "commands",
    }
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/codex"  # what ingress-slack handles (normalize.SLASH_COMMAND)
    assert all(name in command["usage_hint"] for name in ("status", "new", "stop", "usage", "help"))
    assert "assistant_view" in manifest["features"], "Slack grants assistant:write only with assistant_view"
