"""What marks a chat button as the broker's own, and the check that Codex's posts carry no such mark.

The ingresses turn a click into a Stop / Approve / Deny action only when the button carries our
mark: a Slack `action_id` starting with `cb_`, a Feishu callback value holding the `cb` field.
Codex may post its own Slack blocks and Feishu cards through the http-api; if those could carry
the mark, a message posted by a prompt-injected session would look like one of our buttons (and
on Feishu it would also name the thread the click is meant for).
"""

from __future__ import annotations

from typing import Any

SLACK_ACTION_PREFIX = "cb_"
SLACK_ID_KEYS = ("action_id", "callback_id")
FEISHU_VALUE_FIELD = "cb"
MAX_NODES = 100_000  # a request body is bounded anyway; this bounds the walk itself


def reserved_mark(rich: Any) -> str | None:
    """The JSON path of a broker mark inside `rich` (blocks or a card), else None.

    A structure too large to walk counts as marked: refusing it is the safe answer.
    """
    stack: list[tuple[str, Any]] = [("$", rich)]
    seen = 0
    while stack:
        path, node = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            return path
        if isinstance(node, dict):
            found = _marked_key(node)
            if found is not None:
                return f"{path}.{found}"
            stack.extend((f"{path}.{key}", value) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((f"{path}[{index}]", value) for index, value in enumerate(node))
    return None


def _marked_key(node: dict[Any, Any]) -> str | None:
    if FEISHU_VALUE_FIELD in node:
        return FEISHU_VALUE_FIELD
    for key in SLACK_ID_KEYS:
        value = node.get(key)
        if isinstance(value, str) and value.startswith(SLACK_ACTION_PREFIX):
            return key
    return None
