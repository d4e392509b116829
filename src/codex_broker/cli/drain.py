"""`codex-broker drain <runner instance>`: what SIGTERM does to one codex-runner, on demand.

A `drain` control on the runner's own control stream: it stops claiming, lets its turns finish
within RUNNER_DRAIN_GRACE_S, hands the rest over with the restart notice, and exits; its
supervisor (Kubernetes, compose, `up`) starts a fresh one. For a host or node going down while
its pod or container stays, or to empty a runner before an upgrade by hand.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from codex_broker.cli.audit_export import operator_identity
from codex_broker.libs import audit
from codex_broker.libs.bus import DATA_FIELD
from codex_broker.libs.contracts import RunControl, encode
from codex_broker.libs.keys import Keys

RUNNER_SERVICE = "codex-runner"


class DrainError(Exception):
    pass


async def drain(
    redis: Redis, keys: Keys, instance: str, *, audit_log: audit.AuditLog | None = None
) -> dict[str, Any]:
    """Send the control to a live runner (an admin action on the audit trail, under the
    operator's identity); its heartbeat (active turns) as the answer."""
    beat = await redis.get(keys.heartbeat(RUNNER_SERVICE, instance))
    if beat is None:
        raise DrainError(f"no live codex-runner named {instance!r} (see `codex-broker status`)")
    control = RunControl(kind="drain")
    await redis.xadd(keys.runner_control_stream(instance), {DATA_FIELD: encode(control)})
    log = audit_log or audit.AuditLog(keys)
    await audit.record(redis, log, "admin", operator_identity(), action="runner.drain", summary=instance)
    details: dict[str, Any] = json.loads(beat)
    return {"instance": instance, "control_id": control.control_id, "active": details.get("active")}
