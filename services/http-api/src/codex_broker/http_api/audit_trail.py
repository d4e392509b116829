"""The http-api's records on the audit trail for what Codex does through the session API."""

from __future__ import annotations

from codex_broker.http_api.context import AppContext
from codex_broker.libs import audit
from codex_broker.libs.contracts import Coordinates, OutboundAction, OutboundResult
from codex_broker.libs.records import TurnState

CODEX_ACTOR = "codex"


async def file_posted(
    ctx: AppContext,
    coords: Coordinates,
    filename: str,
    content_type: str,
    action: OutboundAction,
    result: OutboundResult | None,
) -> None:
    """One record per post request (each has its own action id): the file's name, never its
    content; `delivered` is false while the ingress has not answered."""
    turn = TurnState.from_hash(await ctx.redis.hgetall(ctx.keys.session_state(coords.session_key)))
    record = audit.make(
        "file",
        CODEX_ACTOR,
        platform=coords.platform,
        session_key=coords.session_key,
        run_id=turn.active_run_id,
        summary=filename,
        action="posted" if result is not None and result.ok else "queued" if result is None else "failed",
        details={"content_type": content_type, "action_id": action.action_id},
    )
    await audit.AuditLog.from_settings(ctx.settings).write(ctx.redis, record)
