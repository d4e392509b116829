"""Drain one codex-runner on demand: what SIGTERM does to it, asked through Redis.

A `drain` control on the runner's own control stream: it stops claiming, lets its turns finish
within RUNNER_DRAIN_GRACE_S, hands the rest over with the restart notice, and exits; its
supervisor (Kubernetes, compose, `up`) starts a fresh one. Shared by `codex-broker drain` and the
admin page's Drain button, so both have the same effect.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs.bus import DATA_FIELD
from codex_broker.libs.contracts import RunControl, encode
from codex_broker.libs.keys import Keys

RUNNER_SERVICE = "codex-runner"


class DrainError(Exception):
    pass


async def drain(redis: Redis, keys: Keys, instance: str) -> dict[str, Any]:
    """Send the control to a live runner; its heartbeat (active turns) as the answer."""
    beat = await redis.get(keys.heartbeat(RUNNER_SERVICE, instance))
    if beat is None:
        raise DrainError(f"no live codex-runner named {instance!r} (see `codex-broker status`)")
    control = RunControl(kind="drain")
    await redis.xadd(keys.runner_control_stream(instance), {DATA_FIELD: encode(control)})
    details: dict[str, Any] = json.loads(beat)
    return {"instance": instance, "control_id": control.control_id, "active": details.get("active")}
