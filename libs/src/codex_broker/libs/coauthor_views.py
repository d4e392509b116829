"""What people see of the co-author flow: the prompt, the Slack modal, the Feishu form card.

Pure builders, no I/O. The form fields have the same names on both platforms so that one
function (`authors.apply_coauthor_submission`) reads either submission:

- `coauthors` (Feishu multi-select) / `coauthors_<n>` (Slack checkboxes, ≤10 options each):
  the user ids to credit;
- `allow_missing`: commit without the people who have no GitHub mapping;
- `github_name`, `github_email`: the submitter's own GitHub identity (optional).

Slack: the modal's `callback_id` is `cb_coauthor` (ingress-slack turns its submission into an
InboundEvent action `coauthor_submit`; it wraps `private_metadata` with the thread itself).
Feishu: the submit button carries `{"cb": "coauthor_submit", "v": "", "root", "conv"}` — the
same callback value format as our other Feishu buttons — and the form values arrive as the
callback's `form_value`.
"""

from __future__ import annotations

from typing import Any

from codex_broker.libs.authors import Author, Participant, Resolution
from codex_broker.libs.contracts import Button, Coordinates

SLACK_CALLBACK_ID = "cb_coauthor"
SLACK_MAX_OPTIONS = 10
FEISHU_BUTTON_FIELD = "cb"
PROMPT_LABEL = "Configure co-authors"
ALLOW_VALUE = "allow"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _who(author: Author | None) -> str:
    return f"{author.name} <{author.email}>" if author else "no GitHub author yet"


# ---- the prompt -------------------------------------------------------------------------------


def prompt_text(display_name: str, *, platform: str) -> str:
    who = display_name or "you"
    text = (
        f"Codex is committing in this thread and {who} took part, but there is no GitHub author "
        "to credit yet. Choose who the commits credit, add your GitHub name and email, or allow "
        "commits without you."
    )
    return text if platform == "slack" else text.replace(f"and {who} took", "and you took")


def prompt_button(user_id: str) -> Button:
    return Button(action="coauthor_open", label=PROMPT_LABEL, value=user_id, style="primary")


def feishu_mention(user_id: str) -> str:
    return f'<at id="{user_id}"></at>'


# ---- Slack ------------------------------------------------------------------------------------


def _slack_option(person: Participant) -> dict[str, Any]:
    return {
        "text": {"type": "plain_text", "text": _clip(person.display_name, 75)},
        "description": {"type": "plain_text", "text": _clip(_who(person.author), 75)},
        "value": person.user_id,
    }


def slack_coauthor_modal(resolution: Resolution, submitter: Author | None = None) -> dict[str, Any]:
    """The `views.open` view: checkboxes of participants, allow-without, own GitHub identity."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": (
                    "Codex adds a `Co-authored-by:` trailer to its commits in this thread for every "
                    "ticked person with a GitHub author."
                ),
            },
        }
    ]
    people = resolution.participants
    for index in range(0, len(people), SLACK_MAX_OPTIONS):
        chunk = people[index : index + SLACK_MAX_OPTIONS]
        action_id = f"coauthors_{index // SLACK_MAX_OPTIONS}"
        element: dict[str, Any] = {
            "type": "checkboxes",
            "action_id": action_id,
            "options": [_slack_option(p) for p in chunk],
        }
        initial = [_slack_option(p) for p in chunk if not p.excluded]
        if initial:  # Slack rejects an empty initial_options
            element["initial_options"] = initial
        blocks.append(
            {
                "type": "input",
                "block_id": action_id,
                "optional": True,
                "label": {"type": "plain_text", "text": "Credit" if index == 0 else "Credit (more)"},
                "element": element,
            }
        )
    allow_option = {
        "text": {"type": "plain_text", "text": "Allow commits without people who have no GitHub author"},
        "value": ALLOW_VALUE,
    }
    allow: dict[str, Any] = {"type": "checkboxes", "action_id": "allow_missing", "options": [allow_option]}
    if resolution.config.allow_missing:
        allow["initial_options"] = [allow_option]
    blocks.append(
        {
            "type": "input",
            "block_id": "allow_missing",
            "optional": True,
            "label": {"type": "plain_text", "text": "Unmapped people"},
            "element": allow,
        }
    )
    blocks.extend(
        [
            _slack_text_input("github_name", "Your GitHub name", submitter.name if submitter else None),
            _slack_text_input(
                "github_email", "Your GitHub email (commit email)", submitter.email if submitter else None
            ),
        ]
    )
    return {
        "type": "modal",
        "callback_id": SLACK_CALLBACK_ID,
        "title": {"type": "plain_text", "text": "Co-authors"},
        "submit": {"type": "plain_text", "text": "Save"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def _slack_text_input(action_id: str, label: str, initial: str | None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": action_id, "max_length": 254}
    if initial:
        element["initial_value"] = initial
    return {
        "type": "input",
        "block_id": action_id,
        "optional": True,
        "label": {"type": "plain_text", "text": label},
        "element": element,
    }


# ---- Feishu -----------------------------------------------------------------------------------


def _plain(text: str) -> dict[str, str]:
    return {"tag": "plain_text", "content": text}


def feishu_coauthor_card(
    resolution: Resolution, coords: Coordinates, submitter: Author | None = None
) -> dict[str, Any]:
    """A card (schema 2.0) with a form: multi-select of participants, allow-without, identity."""
    people = resolution.participants
    form_elements: list[dict[str, Any]] = [
        {
            "tag": "multi_select_static",
            "name": "coauthors",
            "placeholder": _plain("People to credit"),
            "options": [
                {"text": _plain(_clip(f"{p.display_name} — {_who(p.author)}", 100)), "value": p.user_id}
                for p in people
            ],
            "selected_values": [p.user_id for p in people if not p.excluded],
        },
        {
            "tag": "checker",
            "name": "allow_missing",
            "checked": resolution.config.allow_missing,
            "text": _plain("Allow commits without people who have no GitHub author"),
        },
        {
            "tag": "input",
            "name": "github_name",
            "placeholder": _plain("Your GitHub name"),
            "default_value": submitter.name if submitter else "",
        },
        {
            "tag": "input",
            "name": "github_email",
            "placeholder": _plain("Your GitHub email (commit email)"),
            "default_value": submitter.email if submitter else "",
        },
        {
            "tag": "button",
            "name": "coauthor_submit",
            "text": _plain("Save"),
            "type": "primary",
            "form_action_type": "submit",
            "behaviors": [
                {
                    "type": "callback",
                    "value": {
                        FEISHU_BUTTON_FIELD: "coauthor_submit",
                        "v": "",
                        "root": coords.root_message_id,
                        "conv": coords.conversation_id,
                    },
                }
            ],
        },
    ]
    return {
        "schema": "2.0",
        "config": {"update_multi": True},
        "header": {"title": _plain("Configure co-authors"), "template": "blue"},
        "body": {
            "elements": [
                {
                    "tag": "markdown",
                    "content": (
                        "Codex adds a `Co-authored-by:` trailer to its commits in this thread for "
                        "every selected person with a GitHub author."
                    ),
                },
                {"tag": "form", "name": "coauthor_form", "elements": form_elements},
            ]
        },
    }


def confirmation_text(resolution: Resolution) -> str:
    credited = ", ".join(a.name for _, a in resolution.coauthors) or "nobody"
    text = f"Co-authors saved. Commits in this thread credit: {credited}."
    if resolution.unresolved and resolution.config.allow_missing:
        names = ", ".join(p.display_name for p in resolution.unresolved)
        text += f" Commits go ahead without: {names}."
    elif resolution.unresolved:
        names = ", ".join(p.display_name for p in resolution.unresolved)
        text += f" Still without a GitHub author: {names}."
    return text
