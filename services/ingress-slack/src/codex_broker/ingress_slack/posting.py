"""Posting messages into a thread, resumably: a redelivered action skips the pieces already posted.

Slack does not de-duplicate sends, so each posted piece's ts is recorded (the kit's
`PostedParts`) right after chat.postMessage returns: a crash between two pieces of a long answer
re-posts nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from codex_broker.ingress_slack.api import SlackApi
from codex_broker.ingress_slack.render import message_blocks
from codex_broker.libs.contracts import CHANNEL_SCOPE, Button
from codex_broker.libs.ingress_kit.parts import PostedParts


class Poster:
    def __init__(self, api: SlackApi, parts: PostedParts) -> None:
        self.api = api
        self.parts = parts

    async def post_pieces(
        self,
        *,
        channel: str,
        thread_ts: str,
        pieces: Sequence[str],
        buttons: Sequence[Button] = (),
        parts_id: str,
    ) -> list[str]:
        """Post `pieces` in order (buttons under the last one); returns every piece's ts."""

        async def send(index: int) -> str:
            blocks = message_blocks(pieces[index], buttons) if index == len(pieces) - 1 else None
            args: dict[str, Any] = {"channel": channel, "text": pieces[index]}
            if thread_ts != CHANNEL_SCOPE:  # workspace mode opens task threads with a top-level post
                args["thread_ts"] = thread_ts
            if blocks:
                args["blocks"] = blocks
            data = await self.api.call("chat.postMessage", **args)
            return str(data.get("ts") or "")

        return await self.parts.post_missing(parts_id, len(pieces), send)
