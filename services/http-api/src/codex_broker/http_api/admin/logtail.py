"""The admin's log tails: libs.logtail (shared with `codex-broker status`)."""

from __future__ import annotations

from codex_broker.libs.logtail import parse_records, recent_logs, service_dirs, session_logs

__all__ = ["parse_records", "recent_logs", "service_dirs", "session_logs"]
