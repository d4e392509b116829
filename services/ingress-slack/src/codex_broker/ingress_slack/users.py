"""Display names from users.info, cached in memory with a TTL (per replica; names change rarely)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from codex_broker.ingress_slack import metrics
from codex_broker.ingress_slack.api import SlackApi
from codex_broker.ingress_slack.errors import SlackCallError

log = logging.getLogger(__name__)

MAX_ENTRIES = 50_000
FAILED_TTL_S = 60.0  # a failed lookup falls back to the id, and is retried after a minute


def display_name_of(user: Mapping[str, Any]) -> str:
    """Slack's own order of preference: display name, real name, then the handle."""
    profile = user.get("profile") or {}
    for candidate in (
        profile.get("display_name_normalized"),
        profile.get("display_name"),
        profile.get("real_name_normalized"),
        profile.get("real_name"),
        user.get("real_name"),
        user.get("name"),
    ):
        if candidate:
            return str(candidate)
    return str(user.get("id") or "")


@dataclass
class _Entry:
    name: str
    expires_at: float


class UserDirectory:
    def __init__(
        self,
        api: SlackApi,
        *,
        ttl_s: float,
        lookup_timeout_s: float = 1.5,  # inside Slack's ack window, with room for the XADD
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.ttl_s = ttl_s
        self.lookup_timeout_s = lookup_timeout_s
        self._clock = clock
        self._cache: dict[str, _Entry] = {}
        # profile emails (scope users:read.email) let the broker infer GitHub co-authors
        self._emails: dict[str, str] = {}
        self._inflight: dict[str, asyncio.Future[str]] = {}

    async def names(self, user_ids: Iterable[str]) -> dict[str, str]:
        unique = list(dict.fromkeys(u for u in user_ids if u))
        found = await asyncio.gather(*(self.name(uid) for uid in unique))
        return dict(zip(unique, found, strict=True))

    async def name(self, user_id: str) -> str:
        entry = self._cache.get(user_id)
        if entry is not None and entry.expires_at > self._clock():
            metrics.USER_CACHE.labels(result="hit").inc()
            return entry.name
        metrics.USER_CACHE.labels(result="miss").inc()
        pending = self._inflight.get(user_id)
        if pending is not None:  # concurrent events of one user share one users.info call
            return await asyncio.shield(pending)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._inflight[user_id] = future
        try:
            name = await self._lookup(user_id)
            future.set_result(name)
            return name
        finally:
            self._inflight.pop(user_id, None)
            if not future.done():
                future.set_result(user_id)

    async def _lookup(self, user_id: str) -> str:
        try:
            async with asyncio.timeout(self.lookup_timeout_s):
                data = await self.api.call("users.info", user=user_id)
        except (SlackCallError, TimeoutError) as exc:
            log.warning("users.info failed; using the id", extra={"user_id": user_id, "error": str(exc)})
            self._remember(user_id, user_id, FAILED_TTL_S)
            return user_id
        user = data.get("user") or {"id": user_id}
        name = display_name_of(user)
        self._remember(user_id, name, self.ttl_s)
        email = (user.get("profile") or {}).get("email")
        if email:
            self._emails[user_id] = str(email)
        return name

    def email(self, user_id: str) -> str | None:
        """The profile email seen by the last users.info of this user (None without the scope)."""
        return self._emails.get(user_id)

    def _remember(self, user_id: str, name: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        if len(self._cache) >= MAX_ENTRIES:
            self._cache.clear()  # crude but bounded; a cold cache costs one lookup per user
            self._emails.clear()
        self._cache[user_id] = _Entry(name, self._clock() + ttl_s)
