"""The fake Slack and an in-process ingress-slack: the fixtures of tests/ingress_slack, reused."""

from __future__ import annotations

from tests.ingress_slack.conftest import slack, start_ingress

__all__ = ["slack", "start_ingress"]
