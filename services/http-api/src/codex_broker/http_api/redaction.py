"""What of a request's input may be written to a log: ids and shapes, never content.

Message text, state reasons, file comments and alt text, rich text and card payloads, inline
file content and job scripts are replaced by a size marker; tokens by `[REDACTED]`. The
result still says which fields were sent, which is what debugging needs.
"""

from __future__ import annotations

import re
from typing import Any

_CONTENT_FIELDS = re.compile(
    r"(?i)^(text|reason|initial_?comment|alt_?text|rich_?text|card|content_?base64|script|command"
    r"|summary|details_?json|details|title|message)$"
)
_TOKEN_FIELDS = re.compile(r"(?i)(token|secret|password|authorization|api_?key)")


def size_marker(value: Any) -> str:
    if isinstance(value, str):
        return f"[redacted {len(value)} chars]"
    return f"[redacted {type(value).__name__}]"


def redact_input(data: Any) -> Any:
    """A copy of `data` safe to log (pure: no I/O, never mutates the input)."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            name = str(key)
            if _TOKEN_FIELDS.search(name):
                out[name] = "[REDACTED]"
            elif _CONTENT_FIELDS.match(name) and value not in (None, ""):
                out[name] = size_marker(value)
            else:
                out[name] = redact_input(value)
        return out
    if isinstance(data, list):
        return [redact_input(item) for item in data]
    if isinstance(data, str) and len(data) > 300:
        return data[:300] + f"…[{len(data)} chars]"
    return data
