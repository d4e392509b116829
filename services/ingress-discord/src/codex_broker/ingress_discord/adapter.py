"""The `discord` platform: the kit's `Platform` over Discord's REST API.

Every session is one channel (a task thread, a thread we were mentioned in, or a DM), so a
target's `conversation_id` is where everything is posted. A task thread is created lazily from
the message that opened it: the inbound side tries at once, and every post first makes sure it
exists (Discord answers "already created" to a second try, which is fine), so a crash between
storing the mention and creating the thread loses nothing.

Workspace mode asks for a task thread with a `post` at the channel scope (root `channel`): a
top-level message of the home channel and a Discord thread opened on it, whose id (the
message's) is the task thread's root. The orchestrator's coordinates of that task are (home
channel, thread id) — a root that is not the conversation itself — and every action with them
goes into the thread (`channel_of`); the operator's own root is a person's message in the home
channel, so its posts stay top-level there.

Long posts are split at 2,000 characters; the ids of the pieces already sent are kept under the
post's `parts_id`, so a redelivered action sends only the missing pieces.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from codex_broker.ingress_discord import files
from codex_broker.ingress_discord.normalize import thread_name
from codex_broker.ingress_discord.render import components, plain_title, split_message, stop_button, view_text
from codex_broker.ingress_discord.rest import Rest
from codex_broker.libs.contracts import (
    CHANNEL_SCOPE,
    Actor,
    Attachment,
    Button,
    DownloadPayload,
    HistoryMessage,
    OpenViewPayload,
    PostPayload,
    ProgressPayload,
    StatusPayload,
    UploadPayload,
)
from codex_broker.libs.ingress_kit.platform import Downloaded, PlatformError, Target, ViewHandle
from codex_broker.libs.keys import Keys

PARTS_TTL_S = 7 * 86400
CHANNEL_TTL_S = 30 * 86400
EPHEMERAL = 64
ACK_WAIT_POLLS, ACK_WAIT_POLL_S = 60, 0.05  # up to 3 s: Discord's own limit for the ack
SUPPRESS_EMBEDS = 4
HISTORY_PAGE = 100
# Slack-style names the other services use → the Unicode emoji Discord takes
EMOJI = {
    "eyes": "👀",
    "white_check_mark": "✅",
    "heavy_check_mark": "✔️",
    "x": "❌",
    "thumbsup": "👍",
    "+1": "👍",
    "hourglass": "⌛",
    "warning": "⚠️",
}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def piece_nonce(parts_id: str, index: int) -> str:
    """Discord's nonce (at most 25 characters) for one piece: with `enforce_nonce`, a create that
    is retried within minutes returns the message made the first time instead of a second one."""
    return hashlib.blake2b(f"{parts_id}:{index}".encode(), digest_size=12).hexdigest()


def message_body(text: str, buttons: Sequence[Button] = (), *, nonce: str | None = None) -> dict[str, Any]:
    """A message create/edit body: Markdown as is, our buttons as components, no pings."""
    body: dict[str, Any] = {
        "content": text,
        "components": components(buttons),
        "allowed_mentions": {"parse": []},
    }
    if nonce:
        body["nonce"] = nonce
        body["enforce_nonce"] = True
    return body


class DiscordPlatform:
    name = "discord"

    def __init__(
        self,
        rest: Rest,
        redis: Redis,
        keys: Keys,
        *,
        data_root: Path,
        max_upload_bytes: int,
        download_max_bytes: int,
        download_hosts: frozenset[str],
        archive_minutes: int,
    ) -> None:
        self.rest = rest
        self.redis = redis
        self.keys = keys
        self.data_root = Path(data_root)
        self.max_upload_bytes = max_upload_bytes
        self.download_max_bytes = download_max_bytes
        self.download_hosts = download_hosts
        self.archive_minutes = archive_minutes
        self._threads_ready: set[str] = set()
        self._thread_locks: dict[str, asyncio.Lock] = {}
        self._home_threads: set[str] = set()  # task threads of home channels (never change)

    # ---- the session channel ------------------------------------------------------------------

    async def _meta(self, channel_id: str) -> dict[str, Any]:
        raw = await self.redis.get(self.keys.discord_channel(channel_id))
        return json.loads(_text(raw)) if raw else {}

    async def channel_of(self, target: Target) -> str:
        """The channel a target's messages go to: a home channel's task thread for its (home,
        thread) coordinates, else the conversation (a session channel, or the home channel)."""
        root, conversation = target.root_message_id, target.conversation_id
        if root in (conversation, CHANNEL_SCOPE):
            return conversation
        if root in self._home_threads:
            return root
        if (await self._meta(root)).get("home") == conversation:
            self._home_threads.add(root)
            return root
        return conversation

    async def ensure_thread(self, channel_id: str) -> None:
        """Create the task thread `channel_id` names if it is one we opened and it is not there yet."""
        if channel_id in self._threads_ready:
            return
        lock = self._thread_locks.setdefault(channel_id, asyncio.Lock())
        async with lock:
            if channel_id in self._threads_ready:
                return
            meta = await self._meta(channel_id)
            if meta.get("opens_thread") and not meta.get("created"):
                thread = await self.rest.start_thread(
                    meta["parent"],
                    channel_id,
                    name=meta.get("name") or "Codex",
                    archive_minutes=self.archive_minutes,
                )
                meta["created"] = True
                # REST history does not name the guild: the backfill takes it from here
                meta["guild"] = meta.get("guild") or str((thread or {}).get("guild_id") or "")
                await self.redis.set(
                    self.keys.discord_channel(channel_id), json.dumps(meta), ex=CHANNEL_TTL_S
                )
            self._threads_ready.add(channel_id)

    async def _send_pieces(
        self, channel: str, pieces: Sequence[str], buttons: Sequence[Button], parts_id: str
    ) -> list[str]:
        await self.ensure_thread(channel)
        key = self.keys.discord_parts(parts_id)
        sent = {_text(k): _text(v) for k, v in (await self.redis.hgetall(key)).items()}
        ids: list[str] = []
        for index, piece in enumerate(pieces):
            if str(index) in sent:
                ids.append(sent[str(index)])
                continue
            last = index == len(pieces) - 1
            body = message_body(piece, buttons if last else (), nonce=piece_nonce(parts_id, index))
            created = await self.rest.send(channel, body)
            message_id = str(created["id"])
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(key, str(index), message_id)
            pipe.expire(key, PARTS_TTL_S)
            await pipe.execute()
            ids.append(message_id)
        return ids

    # ---- Platform ------------------------------------------------------------------------------

    async def post(self, target: Target, payload: PostPayload, *, parts_id: str) -> list[str]:
        pieces = split_message(payload.text) or ["\u200b"]
        if target.root_message_id == CHANNEL_SCOPE:
            return await self._post_opening_thread(target, pieces, payload, parts_id)
        return await self._send_pieces(await self.channel_of(target), pieces, payload.buttons, parts_id)

    async def _post_opening_thread(
        self, target: Target, pieces: Sequence[str], payload: PostPayload, parts_id: str
    ) -> list[str]:
        """A top-level message of the channel with a thread opened on it; the first id is the
        thread's. Its record goes in before the thread is created (SET NX: a redelivery keeps
        `created`), so a post that fails in between creates it on the next try."""
        home = target.conversation_id
        ids = await self._send_pieces(home, pieces, payload.buttons, parts_id)
        thread_id = ids[0]
        meta = {
            "parent": home,
            "guild": (await self._meta(home)).get("guild", ""),
            "opens_thread": True,
            "home": home,
            "name": thread_name(plain_title(payload.text), "Codex"),
        }
        key = self.keys.discord_channel(thread_id)
        await self.redis.set(key, json.dumps(meta), ex=CHANNEL_TTL_S, nx=True)
        await self.ensure_thread(thread_id)
        self._home_threads.add(thread_id)
        return ids

    async def update(self, target: Target, message_id: str, text: str, buttons: Sequence[Button]) -> str:
        pieces = split_message(text) or ["\u200b"]
        await self.rest.edit(await self.channel_of(target), message_id, message_body(pieces[0], buttons))
        return message_id

    async def set_status(self, target: Target, status: StatusPayload) -> str:
        """Discord's 'working' indicator is the typing notice (about 10 s); nothing else to show."""
        if status.state != "running":
            return "none"
        channel = await self.channel_of(target)
        await self.ensure_thread(channel)
        await self.rest.typing(channel)
        return "typing"

    async def react(self, target: Target, message_id: str, emoji: str, *, remove: bool) -> None:
        name = EMOJI.get(emoji.strip(":"), emoji.strip(":"))
        await self.rest.react(await self.channel_of(target), message_id, name, remove=remove)

    async def upload(self, target: Target, payload: UploadPayload) -> dict[str, Any]:
        roots = [self.data_root / "outbox", self.data_root / "sessions", self.data_root / "repos"]
        file = await asyncio.to_thread(files.upload_file, payload, roots, self.max_upload_bytes)
        channel = await self.channel_of(target)
        await self.ensure_thread(channel)
        body = message_body(payload.initial_comment or "")
        created = await self.rest.send(channel, body, files=[file])
        attachments = created.get("attachments") or [{}]
        return {"message_id": str(created["id"]), "file_id": str(attachments[0].get("id", ""))}

    async def thread_link(self, target: Target, root_message_id: str) -> str:
        """A task thread is a Discord thread channel: `<#id>` renders as its clickable name."""
        return f"<#{root_message_id}>"

    async def ephemeral(self, target: Target, user_id: str, text: str, buttons: Sequence[Button]) -> str:
        """The follow-up of the user's `/codex` interaction when there is one (only they see it);
        otherwise a message in the channel that names them."""
        channel = await self.channel_of(target)
        token = await self._interaction_token(channel, user_id)
        pieces = split_message(text) or ["\u200b"]
        if token is not None:
            body = {**message_body(pieces[0], buttons), "flags": EPHEMERAL}
            created = await self.rest.followup(token["application_id"], token["token"], body)
            return str((created or {}).get("id", ""))
        body = message_body(f"<@{user_id}> {pieces[0]}"[:2000], buttons)
        body["allowed_mentions"] = {"users": [user_id]}
        await self.ensure_thread(channel)
        created = await self.rest.send(channel, body)
        return str(created["id"])

    async def _interaction_token(self, channel: str, user_id: str) -> dict[str, Any] | None:
        """The user's `/codex` interaction here, once acked: the orchestrator's answer can be
        faster than the ingress's deferral, and Discord refuses a follow-up before it."""
        key = self.keys.discord_interaction(channel, user_id)
        for _ in range(ACK_WAIT_POLLS):
            raw = await self.redis.get(key)
            token = json.loads(_text(raw)) if raw else None
            if token is None or token.get("acked"):
                return token
            await asyncio.sleep(ACK_WAIT_POLL_S)
        # not acked in time: redelivered later (the token expires with its key, then the answer
        # goes to the channel)
        raise PlatformError("interaction_not_acked", permanent=False, method="ephemeral")

    async def open_form(self, target: Target, payload: OpenViewPayload) -> dict[str, Any]:
        raise PlatformError("forms_not_supported", permanent=True, method="open_form")

    async def history(
        self, target: Target, before_message_id: str | None, limit: int
    ) -> list[HistoryMessage]:
        """Newest first from Discord, page by page; returned oldest first."""
        found: list[dict[str, Any]] = []
        before = before_message_id
        channel = await self.channel_of(target)
        while len(found) < limit:
            page = await self.rest.history(
                channel, limit=min(HISTORY_PAGE, limit - len(found)), before=before
            )
            if not page:
                break
            found.extend(page)
            before = str(page[-1]["id"])
            if len(page) < HISTORY_PAGE:
                break
        return [history_message(m) for m in reversed(found)]

    async def download(self, target: Target, payload: DownloadPayload) -> Downloaded:
        saved, errors = await files.download(
            payload,
            sessions_root=self.data_root / "sessions",
            hosts=self.download_hosts,
            limit=min(payload.max_bytes, self.download_max_bytes),
        )
        return Downloaded(saved=saved, errors=errors)

    # ---- the live view: one message edited per snapshot ---------------------------------------------

    async def view_open(self, target: Target, snapshot: ProgressPayload) -> ViewHandle:
        ids = await self._send_pieces(
            await self.channel_of(target),
            [view_text(snapshot)],
            stop_button(snapshot),
            f"view:{snapshot.progress_id}",
        )
        return {"message_id": ids[0]}

    async def view_update(self, target: Target, handle: ViewHandle, snapshot: ProgressPayload) -> ViewHandle:
        body = message_body(view_text(snapshot), stop_button(snapshot))
        await self.rest.edit(await self.channel_of(target), handle["message_id"], body)
        return handle

    async def view_finish(
        self, target: Target, handle: ViewHandle | None, snapshot: ProgressPayload
    ) -> ViewHandle:
        if handle is not None:
            await self.view_update(target, handle, snapshot)
        if snapshot.final_text:
            ids = await self._send_pieces(
                await self.channel_of(target),
                split_message(snapshot.final_text),
                (),
                f"answer:{snapshot.progress_id}",
            )
            return {**(handle or {}), "answer_ids": ids}
        return handle or {}


def history_message(message: dict[str, Any]) -> HistoryMessage:
    author = message.get("author") or {}
    return HistoryMessage(
        message_id=str(message["id"]),
        actor=Actor(
            id=str(author.get("id", "")),
            display_name=str(author.get("global_name") or author.get("username") or ""),
            is_bot=bool(author.get("bot")),
        ),
        text=str(message.get("content") or ""),
        attachments=[
            Attachment(
                id=str(a.get("id")),
                name=str(a.get("filename") or ""),
                mimetype=str(a.get("content_type") or ""),
                size=int(a.get("size") or 0),
                url=a.get("url"),
                is_image=str(a.get("content_type") or "").startswith("image/"),
            )
            for a in message.get("attachments") or []
        ],
    )
