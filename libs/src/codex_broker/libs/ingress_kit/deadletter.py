"""Dead letters for platform input that never reached a stream (a malformed event, a bad request).

Same fields as `StreamBus.dead_letter` writes for a stream entry, so operators read one shape;
the source is the platform edge (`web:http`, `slack:socket-mode`, …) instead of a stream.
"""

from __future__ import annotations

import json
import time
from typing import Any

from redis.asyncio import Redis

from codex_broker.libs import metrics
from codex_broker.libs.bus import DATA_FIELD, DEAD_LETTER_MAXLEN
from codex_broker.libs.keys import Keys

DATA_MAX_CHARS = 64 * 1024


def dead_letter_fields(source: str, source_id: str, group: str, reason: str, body: Any) -> dict[str, str]:
    """The entry for one rejected payload (pure): bounded, JSON data, never a live object."""
    data = body if isinstance(body, str) else json.dumps(body, default=str)
    return {
        "source_stream": source,
        "source_id": source_id[:256],
        "group": group,
        "reason": reason[:2000],
        "deliveries": "1",
        DATA_FIELD: data[:DATA_MAX_CHARS],
        "at_ms": str(int(time.time() * 1000)),
    }


class DeadLetterWriter:
    def __init__(self, redis: Redis, keys: Keys, *, source: str, group: str) -> None:
        self.redis = redis
        self.keys = keys
        self.source = source
        self.group = group

    async def write(self, body: Any, reason: str, *, source_id: str = "") -> None:
        fields = dead_letter_fields(self.source, source_id, self.group, reason, body)
        await self.redis.xadd(
            self.keys.dead_letter_stream,
            fields,  # type: ignore[arg-type]
            maxlen=DEAD_LETTER_MAXLEN,
            approximate=True,
        )
        metrics.STREAM_DEAD_LETTERED.labels(stream=metrics.stream_label(self.source)).inc()
