"""The fake Feishu and an in-process ingress-feishu: the fixtures of tests/ingress_feishu, reused."""

from __future__ import annotations

from tests.ingress_feishu.conftest import fake, make_settings, start_ingress

__all__ = ["fake", "make_settings", "start_ingress"]
