"""Access policy and routing decisions for inbound messages (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from codex_broker.libs.contracts import Actor, InboundEvent

Route = Literal["start", "continue", "ignore"]


@dataclass(frozen=True)
class Policy:
    allowed_users: frozenset[str] = frozenset()
    allowed_channels: frozenset[str] = frozenset()
    admins: frozenset[str] = frozenset()
    dms_allowed: bool = True
    mention_required: bool = True

    def is_admin(self, actor: Actor) -> bool:
        """ADMINS by user id, or an admin by the platform's roles (only an ingress sets that: the
        http-api's job callbacks are bots with ids of their own)."""
        return actor.id in self.admins or (actor.platform_admin and not actor.is_bot)


def route_message(event: InboundEvent, *, session_exists: bool, mention_required: bool) -> Route:
    """Which messages start or continue a session; everything else is not addressed to us."""
    if event.kind == "job_callback":  # from our http-api; its actor is the job (a bot)
        return "continue" if session_exists else "ignore"
    if event.actor.is_bot:
        return "ignore"
    if event.is_direct or event.is_mention:
        return "continue" if session_exists else "start"
    if session_exists:
        return "continue"
    top_level = not event.message_id or event.message_id == event.root_message_id
    if not mention_required and top_level:
        return "start"
    return "ignore"


Denial = Literal["user", "channel", "dm"]


def access_denial(event: InboundEvent, policy: Policy) -> Denial | None:
    """None when the actor may use the bot here; otherwise why not. Admins pass everything."""
    if event.kind == "job_callback":
        return None  # comes from our own http-api with a job token, not from a person
    user = event.actor.id
    if policy.is_admin(event.actor):
        return None
    if policy.allowed_users and user not in policy.allowed_users:
        return "user"
    if event.is_direct:
        return None if policy.dms_allowed else "dm"
    if policy.allowed_channels and event.conversation_id not in policy.allowed_channels:
        return "channel"
    return None


# Directories a session must never run in: the filesystem root, home roots, temp roots and system
# trees. A session workspace below them (e.g. /home/alice/project) is fine; the roots are not.
_FORBIDDEN_EXACT = frozenset(
    {"/", "/home", "/Users", "/root", "/tmp", "/var/tmp", "/private/tmp", "/private/var/tmp"}
)
_FORBIDDEN_TREES = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
    "/sbin", "/sys", "/usr", "/var/lib", "/var/log", "/var/run", "/System", "/Library",
)  # fmt: skip


def validate_workspace(raw: str, *, aliases: dict[str, str], home: Path) -> Path | str:
    """Resolve `/cd` input to a usable directory, or return the reason it is refused."""
    target = aliases.get(raw.strip(), raw.strip())
    if not target:
        return "Usage: `/cd <absolute path or alias>`"
    path = Path(target).expanduser()
    if not path.is_absolute():
        return "The path must be absolute (or a configured alias)."
    resolved = path.resolve(strict=False)
    text = str(resolved)
    if text in _FORBIDDEN_EXACT or resolved == home.resolve(strict=False) or resolved == home.parent:
        return f"`{text}` is too broad a workspace."
    for tree in _FORBIDDEN_TREES:
        if text == tree or text.startswith(tree + "/"):
            return f"`{text}` is a system directory."
    if not resolved.is_dir():
        return f"`{text}` is not an existing directory."
    return resolved
