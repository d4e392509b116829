"""GitHub authors of platform users and the co-authors of a session's commits.

Two stores, both plain Redis hashes:

- `keys.github_authors(platform)`: platform user id → JSON {name, email, source: manual|inferred}
  (the same format the admin API writes). Manual entries always win: an inferred entry (from the
  platform profile email) only fills a gap or refreshes another inferred entry.
- `keys.session_coauthors(session_key)`: the thread's answer to "who do Codex's commits credit":
  `excluded` (JSON list of user ids not to credit), `allow_missing` ("1": commit without the
  people who have no mapping, do not ask again), `updated_by`, `updated_at_ms`.

`resolve()` is the pure decision the commit hook relies on: participants minus excluded, those with
a mapping become `Co-authored-by:` trailers, the rest are unresolved (and are prompted unless
`allow_missing`). The orchestrator and the http-api both call the thin writers here; services
never import each other.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from redis.asyncio import Redis

from codex_broker.libs.contracts import Actor, InboundEvent
from codex_broker.libs.keys import Keys

Source = Literal["manual", "inferred"]

MAX_NAME = 100
MAX_EMAIL = 254
MAX_PARTICIPANTS = 50  # bounded: a modal shows at most this many people
PROMPT_COOLDOWN_S = 300
_EMAIL = re.compile(
    r"^[^@\s<>,;\"]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+$"
)
# characters that would break a trailer line or smuggle a second one
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f<>]")


# ---- authors ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Author:
    name: str
    email: str
    source: Source = "manual"

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @property
    def trailer(self) -> str:
        return f"Co-authored-by: {self.name} <{self.email}>"


def valid_email(email: str) -> bool:
    return len(email) <= MAX_EMAIL and _EMAIL.match(email) is not None


def clean_name(name: str) -> str:
    """A single-line name safe inside a trailer (no angle brackets, no control characters)."""
    return " ".join(_UNSAFE_NAME.sub(" ", name).split())[:MAX_NAME]


def parse_author(raw: bytes | str | None) -> Author | None:
    """A stored mapping, or None when absent or unreadable (never raises on bad data)."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    name, email = data.get("name"), data.get("email")
    if not isinstance(name, str) or not isinstance(email, str) or not valid_email(email):
        return None
    source: Source = "inferred" if data.get("source") == "inferred" else "manual"
    return Author(name=clean_name(name) or email.split("@", 1)[0], email=email, source=source)


def infer_author(email: str | None, display_name: str = "") -> Author | None:
    """The inferred mapping for a platform profile email (Slack `users:read.email`), if usable.

    GitHub attributes a co-author by email; the name is only what the trailer shows, so the
    platform display name (else the email's local part) is good enough.
    """
    if not email:
        return None
    email = email.strip()
    if not valid_email(email):
        return None
    name = clean_name(display_name) or email.split("@", 1)[0]
    return Author(name=name, email=email, source="inferred")


def may_replace(existing: Author | None, incoming: Author) -> bool:
    """Manual wins over inferred: only a manual write may replace a manual entry."""
    return existing is None or existing.source == "inferred" or incoming.source == "manual"


# Set an inferred entry only where none or another inferred one is stored, atomically (an
# operator's manual entry written between a read and a write must not be overwritten).
_SET_INFERRED = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  if current == ARGV[2] then return 0 end
  local ok, data = pcall(cjson.decode, current)
  if ok and type(data) == 'table' and type(data.email) == 'string' and data.source ~= 'inferred' then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


async def record_inferred_author(redis: Redis, keys: Keys, platform: str, actor: Actor) -> bool:
    """Store the mapping inferred from the actor's profile email unless a manual one exists.

    True when something was written. Cheap enough to call for every inbound message that
    carries an email (one script call).
    """
    if actor.is_bot:
        return False
    author = infer_author(actor.email, actor.display_name)
    if author is None:
        return False
    written = await redis.eval(_SET_INFERRED, 1, keys.github_authors(platform), actor.id, author.to_json())  # type: ignore[misc]
    return bool(written)


async def authors_for(redis: Redis, keys: Keys, platform: str, users: Sequence[str]) -> dict[str, Author]:
    if not users:
        return {}
    values = await redis.hmget(keys.github_authors(platform), list(users))  # type: ignore[misc]
    found = {}
    for user, value in zip(users, values, strict=True):
        author = parse_author(value)
        if author is not None:
            found[user] = author
    return found


async def set_self_author(redis: Redis, keys: Keys, platform: str, user_id: str, author: Author) -> None:
    """A person's own answer in the co-author modal: a manual entry for themselves."""
    await redis.hset(keys.github_authors(platform), user_id, author.to_json())  # type: ignore[misc]


# ---- the session's answer ---------------------------------------------------------------------


@dataclass(frozen=True)
class CoauthorConfig:
    excluded: frozenset[str] = frozenset()
    allow_missing: bool = False
    updated_by: str | None = None
    updated_at_ms: int | None = None

    @property
    def answered(self) -> bool:
        return self.updated_at_ms is not None

    def to_redis(self) -> dict[str, str]:
        return {
            "excluded": json.dumps(sorted(self.excluded)),
            "allow_missing": "1" if self.allow_missing else "0",
            "updated_by": self.updated_by or "",
            "updated_at_ms": str(self.updated_at_ms or 0),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "excluded": sorted(self.excluded),
            "allowMissing": self.allow_missing,
            "updatedBy": self.updated_by,
            "updatedAtMs": self.updated_at_ms,
        }


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def parse_config(raw: Mapping[Any, Any]) -> CoauthorConfig:
    data = {_text(k): _text(v) for k, v in raw.items()}
    if not data:
        return CoauthorConfig()
    try:
        excluded_raw = json.loads(data.get("excluded") or "[]")
    except ValueError:
        excluded_raw = []
    excluded = frozenset(str(x) for x in excluded_raw) if isinstance(excluded_raw, list) else frozenset()
    try:
        at_ms: int | None = int(data.get("updated_at_ms") or 0) or None
    except ValueError:
        at_ms = None
    return CoauthorConfig(
        excluded=excluded,
        allow_missing=data.get("allow_missing") == "1",
        updated_by=data.get("updated_by") or None,
        updated_at_ms=at_ms,
    )


async def load_config(redis: Redis, keys: Keys, session_key: str) -> CoauthorConfig:
    return parse_config(await redis.hgetall(keys.session_coauthors(session_key)))  # type: ignore[misc]


async def store_config(redis: Redis, keys: Keys, session_key: str, config: CoauthorConfig) -> None:
    await redis.hset(keys.session_coauthors(session_key), mapping=config.to_redis())  # type: ignore[misc,arg-type]


# ---- resolution (pure) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Participant:
    user_id: str
    display_name: str
    author: Author | None = None
    excluded: bool = False


@dataclass(frozen=True)
class Resolution:
    participants: list[Participant]
    coauthors: list[tuple[str, Author]]  # (user id, author), in participant order
    unresolved: list[Participant]  # credited, but no mapping
    config: CoauthorConfig = field(default_factory=CoauthorConfig)

    @property
    def trailers(self) -> list[str]:
        return dedupe_trailers(author.trailer for _, author in self.coauthors)

    @property
    def to_prompt(self) -> list[Participant]:
        """Who should be asked: unresolved people, unless the thread allowed commits without them."""
        return [] if self.config.allow_missing else list(self.unresolved)


def resolve(
    participants: Mapping[str, str], authors: Mapping[str, Author], config: CoauthorConfig
) -> Resolution:
    """Participants (user id → display name) → trailers for the mapped, the unmapped as unresolved."""
    people: list[Participant] = []
    coauthors: list[tuple[str, Author]] = []
    unresolved: list[Participant] = []
    for user_id in sorted(participants, key=lambda u: (participants[u].lower(), u))[:MAX_PARTICIPANTS]:
        person = Participant(
            user_id=user_id,
            display_name=participants[user_id] or user_id,
            author=authors.get(user_id),
            excluded=user_id in config.excluded,
        )
        people.append(person)
        if person.excluded:
            continue
        if person.author is not None:
            coauthors.append((user_id, person.author))
        else:
            unresolved.append(person)
    return Resolution(participants=people, coauthors=coauthors, unresolved=unresolved, config=config)


def dedupe_trailers(trailers: Iterable[str]) -> list[str]:
    """One trailer per email (case-insensitive), first one wins."""
    seen: set[str] = set()
    unique = []
    for trailer in trailers:
        email = trailer_email(trailer)
        marker = email.lower() if email else trailer
        if marker in seen:
            continue
        seen.add(marker)
        unique.append(trailer)
    return unique


def trailer_email(trailer: str) -> str | None:
    start, end = trailer.rfind("<"), trailer.rfind(">")
    return trailer[start + 1 : end].strip() if 0 <= start < end else None


async def load_resolution(redis: Redis, keys: Keys, platform: str, session_key: str) -> Resolution:
    """Participants, their mappings and the session's answer, read in one round trip."""
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(keys.session_participants(session_key))
    pipe.hgetall(keys.session_coauthors(session_key))
    raw_participants, raw_config = await pipe.execute()
    participants = {_text(k): _text(v) for k, v in raw_participants.items()}
    authors = await authors_for(redis, keys, platform, sorted(participants))
    return resolve(participants, authors, parse_config(raw_config))


# ---- the modal / form answer ------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    config: CoauthorConfig
    self_author: Author | None  # the submitter's own GitHub identity, when they typed one
    error: str | None = None  # e.g. an email that is not an email: nothing is stored


def _selected(values: Mapping[str, Any]) -> set[str] | None:
    """User ids ticked in the form; Slack splits >10 options over `coauthors_<n>` elements."""
    found: set[str] | None = None
    for key, value in values.items():
        if key != "coauthors" and not key.startswith("coauthors_"):
            continue
        found = found or set()
        if isinstance(value, str) and value:
            found.add(value)
        elif isinstance(value, list):
            found.update(str(v) for v in value if v)
    return found


def _truthy(value: Any) -> bool:
    if isinstance(value, list):
        return len(value) > 0
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on", "allow")
    return bool(value)


def apply_coauthor_submission(
    participants: Mapping[str, str],
    values: Mapping[str, Any],
    actor_id: str,
    *,
    now_ms: int,
) -> Submission:
    """The co-author form's values → the session's new answer (+ the submitter's own mapping).

    Everyone shown and not ticked is excluded; people who join the thread later are credited by
    default. `github_name` / `github_email` are the submitter's own identity (optional; an email
    that is not one rejects the whole submission so nothing half-applies).
    """
    selected = _selected(values)
    shown = set(list(participants)[:MAX_PARTICIPANTS]) if participants else set()
    excluded = frozenset(shown - selected) if selected is not None else frozenset()
    config = CoauthorConfig(
        excluded=excluded,
        allow_missing=_truthy(values.get("allow_missing")),
        updated_by=actor_id,
        updated_at_ms=now_ms,
    )
    email = str(values.get("github_email") or "").strip()
    name = clean_name(str(values.get("github_name") or ""))
    if not email:
        return Submission(config=config, self_author=None)
    if not valid_email(email):
        return Submission(config=config, self_author=None, error="invalid_email")
    return Submission(config=config, self_author=Author(name=name or email.split("@", 1)[0], email=email))


async def store_coauthor_submission(
    redis: Redis, keys: Keys, platform: str, session_key: str, actor: Actor, values: Mapping[str, Any]
) -> Submission:
    """Thin writer: read participants, apply the submission, store answer and self mapping."""
    raw = await redis.hgetall(keys.session_participants(session_key))  # type: ignore[misc]
    participants = {_text(k): _text(v) for k, v in raw.items()}
    submission = apply_coauthor_submission(participants, values, actor.id, now_ms=int(time.time() * 1000))
    if submission.error is not None:
        return submission
    pipe = redis.pipeline(transaction=False)
    pipe.hset(keys.session_coauthors(session_key), mapping=dict(submission.config.to_redis()))  # type: ignore[arg-type]
    if submission.self_author is not None:
        pipe.hset(keys.github_authors(platform), actor.id, submission.self_author.to_json())
        # the person answered: no further prompt for them in this session for a while
        pipe.delete(keys.coauthor_prompt_cooldown(session_key, actor.id))
    await pipe.execute()
    return submission


def is_coauthor_action(event: InboundEvent) -> bool:
    return (
        event.kind == "action"
        and event.action is not None
        and event.action.action
        in (
            "coauthor_open",
            "coauthor_submit",
        )
    )
