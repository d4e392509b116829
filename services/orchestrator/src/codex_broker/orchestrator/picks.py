"""`-repo` and `-model` in a thread, and what `-status` shows of them (the I/O around the pure
rules in channel_defaults.py)."""

from __future__ import annotations

from codex_broker.libs import channel_defaults as stored
from codex_broker.libs.contracts import Coordinates, InboundEvent
from codex_broker.orchestrator import run_request
from codex_broker.orchestrator.channel_defaults import (
    PICK_MODEL,
    PICK_REPO,
    choices_text,
    pick_problem,
    picked_text,
    status_lines,
)
from codex_broker.orchestrator.core import Core

FIELDS = {"repo": PICK_REPO, "model": PICK_MODEL}


async def pick(core: Core, event: InboundEvent, session: dict[str, str], what: str, args: str) -> str:
    """Show the allowed values, or pick one for this thread (before or between turns: a run
    already going keeps what it started with)."""
    # read now, not from the cache: a person picking sees the admin's latest list
    defaults = await stored.load(core.redis, core.keys, event.platform, event.conversation_id)
    value = args.strip()
    if not value:
        current = await run_request.run_params(core, session, event.session_key, event.coords)
        return choices_text(defaults, what, current.repo if what == "repo" else current.model)
    problem = pick_problem(defaults, what, value)
    if problem is not None:
        return problem
    if not session:
        session = await core.create_session(event)
    pipe = core.redis.pipeline(transaction=False)
    pipe.hset(core.keys.session(event.session_key), FIELDS[what], value)
    if what == "repo":  # a new working directory needs a thread started there
        pipe.hdel(core.keys.session(event.session_key), "thread_id")
        pipe.hincrby(core.keys.session(event.session_key), "epoch", 1)
    core.add_timeline(pipe, event.session_key, "command", f"-{what} {value}")
    await pipe.execute()
    return picked_text(what, value)


async def status(core: Core, session: dict[str, str], session_key: str, coords: Coordinates) -> list[str]:
    return status_lines(await run_request.run_params(core, session, session_key, coords))
