"""What people see of the co-author flow: the prompt, the form, the confirmation. Pure, no I/O.

The form is the contracts' platform-neutral `Form` (`coauthor_form`); each ingress renders it —
ingress-slack as a modal (`views.open`), ingress-feishu as a form card in the thread — and turns
its submission into the action event `coauthor_submit` whose values one function
(`authors.apply_coauthor_submission`) reads:

- `coauthors` (may arrive split as `coauthors_<n>` where a platform caps one element's options):
  the user ids to credit;
- `allow_missing`: commit without the people who have no GitHub mapping;
- `github_name`, `github_email`: the submitter's own GitHub identity (optional).
"""

from __future__ import annotations

from codex_broker.libs.authors import Author, Participant, Resolution
from codex_broker.libs.contracts import Button, Form, FormField, FormOption

FORM_ID = "coauthor"
PROMPT_LABEL = "Configure co-authors"
INTRO = (
    "Codex adds a `Co-authored-by:` trailer to its commits in this thread for every selected "
    "person with a GitHub author."
)


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


# ---- the form ---------------------------------------------------------------------------------


def _option(person: Participant) -> FormOption:
    return FormOption(
        value=person.user_id, label=_clip(person.display_name, 75), description=_clip(_who(person.author), 75)
    )


def coauthor_form(resolution: Resolution, submitter: Author | None = None) -> Form:
    """Participants to credit, allow-without, the submitter's own GitHub identity."""
    people = resolution.participants
    return Form(
        form_id=FORM_ID,
        title=PROMPT_LABEL,
        intro=INTRO,
        fields=[
            FormField(
                name="coauthors",
                kind="multi_select",
                label="Credit",
                text="People to credit",
                options=[_option(p) for p in people],
                selected=[p.user_id for p in people if not p.excluded],
            ),
            FormField(
                name="allow_missing",
                kind="checkbox",
                label="Unmapped people",
                text="Allow commits without people who have no GitHub author",
                checked=resolution.config.allow_missing,
            ),
            FormField(
                name="github_name",
                kind="text",
                label="Your GitHub name",
                value=submitter.name if submitter else "",
            ),
            FormField(
                name="github_email",
                kind="text",
                label="Your GitHub email (commit email)",
                value=submitter.email if submitter else "",
            ),
        ],
    )


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
