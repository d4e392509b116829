"""Markdown → Feishu message bodies, and splitting long text at Feishu's limits. Pure.

Feishu renders Markdown inside a `post` message through the `md` element and inside cards
through `markdown` elements, so the text is passed through and only split: at paragraph, then
line, then word boundaries, never leaving a code fence open across two messages.
"""

from __future__ import annotations

import re
from typing import Any

TEXT_LIMIT = 4000
_FENCE = re.compile(r"^\s*(```+|~~~+)(.*)$")


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Chunks of at most `limit` characters; code fences are closed and reopened at a cut."""
    text = text.strip("\n")
    if not text.strip():
        return []
    if limit < 40:
        raise ValueError("limit too small to split with fences")
    chunks: list[str] = []
    rest = text
    reopen = ""
    while rest:
        body = reopen + rest
        if len(body) <= limit:
            chunks.append(body)
            break
        # leave room for a closing fence that may have to be appended
        cut = _cut_point(body, limit - 4)
        head, rest = body[:cut].rstrip("\n"), body[cut:].lstrip("\n")
        fence = _open_fence(head)
        if fence is not None:
            head += "\n" + fence[0]
            reopen = f"{fence[0]}{fence[1]}\n"
        else:
            reopen = ""
        chunks.append(head)
    return [chunk for chunk in chunks if chunk.strip()]


def _cut_point(text: str, limit: int) -> int:
    window = text[:limit]
    for separator in ("\n\n", "\n", " "):
        at = window.rfind(separator)
        if at > limit // 2:
            return at + len(separator)
    return limit


def _open_fence(text: str) -> tuple[str, str] | None:
    """The fence (marker, info string) still open at the end of `text`, if any."""
    open_fence: tuple[str, str] | None = None
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if not match:
            continue
        marker, info = match.group(1), match.group(2).strip()
        if open_fence is None:
            open_fence = (marker, info)
        elif marker.startswith(open_fence[0][0]) and len(marker) >= len(open_fence[0]) and not info:
            open_fence = None
    return open_fence


def post_content(markdown: str, title: str = "") -> dict[str, Any]:
    """A `post` (rich text) message body rendering Markdown through the `md` element."""
    return {"zh_cn": {"title": title, "content": [[{"tag": "md", "text": markdown}]]}}


def text_content(text: str) -> dict[str, Any]:
    return {"text": text}


def mention(open_id: str) -> str:
    """Text-message syntax that @-mentions a user."""
    return f'<at user_id="{open_id}"></at>'
