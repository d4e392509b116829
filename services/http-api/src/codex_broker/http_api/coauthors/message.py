"""A commit message with co-author trailers appended (for callers that send the message)."""

from __future__ import annotations

import re

from codex_broker.libs.authors import trailer_email

_TRAILER_LINE = re.compile(r"^[A-Za-z0-9-]+: \S")
_COAUTHOR = re.compile(r"^co-authored-by:", re.IGNORECASE)


def with_trailers(message: str, trailers: list[str]) -> str:
    """Append trailers whose email is not credited yet; join an existing trailer block."""
    lines = message.rstrip("\n").split("\n") if message.strip() else []
    credited = {(trailer_email(line) or "").lower() for line in lines if _COAUTHOR.match(line.strip())}
    new = []
    for trailer in trailers:
        email = (trailer_email(trailer) or "").lower()
        if email and email not in credited:
            credited.add(email)
            new.append(trailer)
    if not new:
        return message
    last_paragraph: list[str] = []
    for line in reversed(lines):
        if not line.strip():
            break
        last_paragraph.append(line)
    in_block = (
        bool(last_paragraph)
        and len(lines) > len(last_paragraph)
        and all(_TRAILER_LINE.match(line) for line in last_paragraph)
    )
    separator = [] if in_block else [""]
    return "\n".join([*lines, *(separator if lines else []), *new]) + "\n"
