"""Markdown → Slack mrkdwn, and splitting mrkdwn into messages Slack accepts. Pure functions.

The conversion is slackify-markdown (a markdown-it-py renderer made for Slack) with one change:
text inside code is escaped too, because Slack parses `<…>` and `&` everywhere, so a `<@U1>` or
`<!channel>` inside a code block would otherwise ping people.
"""

from __future__ import annotations

import re
from typing import Any

from markdown_it.token import Token
from slackify_markdown.slackify import SlackifyMarkdown

MESSAGE_LIMIT = 3500  # chars per posted message (Slack truncates text at 40k, rejects > 4k in blocks)
UPDATE_LIMIT = 3900  # chat.update rejects > 4,000 chars with msg_too_long
FENCE = "```"
ELLIPSIS = "…"


def escape(text: str) -> str:
    """Escape the three characters Slack treats as control characters in message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Renderer(SlackifyMarkdown):
    def code_inline(self, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
        return f"`{escape(tokens[idx].content)}`"

    def fence(self, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
        content = tokens[idx].content
        if content and not content.endswith("\n"):
            content += "\n"
        return f"{FENCE}\n{escape(content)}{FENCE}\n"

    code_block = fence


def to_mrkdwn(markdown: str) -> str:
    """Convert Markdown (bold, italics, links, code, lists, headings, quotes) to Slack mrkdwn."""
    if not markdown.strip():
        return ""
    return _Renderer(markdown).slackify().rstrip("\n")


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split mrkdwn into pieces of at most `limit` chars, in order.

    Pieces break between lines, and a code block is kept whole when it fits in one piece; a code
    block longer than a piece is closed at the break and reopened in the next piece so each
    piece renders on its own. Only a single line longer than `limit` is cut inside the line.
    """
    if limit < 2 * len(FENCE) + 8:
        raise ValueError("limit too small")
    chunks: list[str] = []
    current: list[str] = []
    size = 0

    def flush() -> None:
        nonlocal current, size
        if current:
            piece = "\n".join(current).strip("\n")
            if piece.strip():
                chunks.append(piece)
        current, size = [], 0

    for unit in _units(text):
        unit_len = len(unit)
        if size and size + 1 + unit_len > limit:
            flush()
        if unit_len <= limit:
            current.append(unit)
            size += unit_len + (1 if size else 0)
            continue
        flush()
        pieces = _split_code(unit, limit) if unit.startswith(FENCE) else _split_line(unit, limit)
        for piece in pieces[:-1]:
            chunks.append(piece)
        current, size = [pieces[-1]], len(pieces[-1])
    flush()
    return chunks


def _units(text: str) -> list[str]:
    """Lines, except that a fenced code block (fence to fence) is one unit."""
    units: list[str] = []
    code: list[str] | None = None
    for line in text.split("\n"):
        if code is None:
            if line.startswith(FENCE):
                code = [line]
                if line.rstrip().endswith(FENCE) and len(line.rstrip()) > len(FENCE):
                    units.append(line)  # ```inline code block``` on one line
                    code = None
            else:
                units.append(line)
        else:
            code.append(line)
            if line.strip() == FENCE:
                units.append("\n".join(code))
                code = None
    if code is not None:  # unterminated fence: close it so every piece renders
        units.append("\n".join([*code, FENCE]))
    return units


def _split_code(block: str, limit: int) -> list[str]:
    lines = block.split("\n")
    opener, body = lines[0], lines[1:-1]
    budget = limit - len(opener) - len(FENCE) - 2
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for line in body:
        for part in _split_line(line, budget) if len(line) > budget else [line]:
            if current and size + 1 + len(part) > budget:
                pieces.append("\n".join([opener, *current, FENCE]))
                current, size = [], 0
            current.append(part)
            size += len(part) + (1 if size else 0)
    pieces.append("\n".join([opener, *current, FENCE]))
    return pieces


_BREAK = re.compile(r"\s")


def _split_line(line: str, limit: int) -> list[str]:
    """Cut an over-long line, preferring whitespace in the last fifth of each piece."""
    pieces: list[str] = []
    rest = line
    while len(rest) > limit:
        cut = limit
        window = rest[int(limit * 0.8) : limit]
        spaces = [m.start() for m in _BREAK.finditer(window)]
        if spaces:
            cut = int(limit * 0.8) + spaces[-1] + 1
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:]
    pieces.append(rest)
    return pieces


def trim(text: str, limit: int = UPDATE_LIMIT, *, keep: str = "head") -> str:
    """Shorten to at most `limit` chars with an ellipsis; keep the head or the tail."""
    if len(text) <= limit:
        return text
    if keep == "tail":
        return ELLIPSIS + _balance_fences(text[-(limit - 1 - len(FENCE) - 1) :], leading=True)
    return _balance_fences(text[: limit - 1 - len(FENCE) - 1]) + ELLIPSIS


def _balance_fences(text: str, *, leading: bool = False) -> str:
    """A cut through a code block leaves an odd number of fences: add the missing one."""
    if text.count(FENCE) % 2 == 0:
        return text
    return f"{FENCE}\n{text}" if leading else f"{text}\n{FENCE}"
