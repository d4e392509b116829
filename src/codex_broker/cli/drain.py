"""`codex-broker drain <runner instance>`: what SIGTERM does to one codex-runner, on demand.

For a host or node going down while its pod or container stays, or to empty a runner before an
upgrade by hand. The control itself is libs.drain (the admin page's Drain button sends the same);
this adds the audit record under the operator's identity.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from codex_broker.cli.audit_export import operator_identity
from codex_broker.libs import audit
from codex_broker.libs import drain as control
from codex_broker.libs.drain import RUNNER_SERVICE, DrainError
from codex_broker.libs.keys import Keys

__all__ = ["RUNNER_SERVICE", "DrainError", "drain"]


async def drain(
    redis: Redis, keys: Keys, instance: str, *, audit_log: audit.AuditLog | None = None
) -> dict[str, Any]:
    """Send the control to a live runner, then record it (an admin action on the audit trail)."""
    sent = await control.drain(redis, keys, instance)
    log = audit_log or audit.AuditLog(keys)
    await audit.record(redis, log, "admin", operator_identity(), action="runner.drain", summary=instance)
    return sent
