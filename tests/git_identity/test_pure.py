"""Pure parts of the git identity: mappings, resolution, submissions, views, git config, hook."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from codex_broker.codex_runner import git_hook
from codex_broker.codex_runner.git_identity import (
    credential_helper,
    git_child_env,
    job_env_extras,
    quote_value,
    render_gitconfig,
    rewrite_ssh_remotes,
)
from codex_broker.http_api.coauthors.message import with_trailers
from codex_broker.libs import coauthor_views as views
from codex_broker.libs.authors import (
    Author,
    CoauthorConfig,
    apply_coauthor_submission,
    clean_name,
    dedupe_trailers,
    infer_author,
    parse_author,
    parse_config,
    resolve,
)
from codex_broker.libs.contracts import Coordinates
from tests.git_identity.support import git_settings

ANN = Author("Ann Lee", "ann@example.com", "manual")
BOB = Author("Bob", "bob@example.com", "inferred")
PEOPLE = {"U1": "Ann", "U2": "Bob", "U3": "Cy"}


# ---- mappings -----------------------------------------------------------------------------------


def test_infer_author_from_profile_email() -> None:
    assert infer_author("dana@example.com", "Dana K") == Author("Dana K", "dana@example.com", "inferred")
    assert infer_author("dana@example.com", "") == Author("dana", "dana@example.com", "inferred")
    for bad in (None, "", "not-an-email", "a@b", "x <y@z.com>", "a b@example.com"):
        assert infer_author(bad, "X") is None


def test_names_cannot_break_a_trailer() -> None:
    assert clean_name("Eve <evil@x.com>\nCo-authored-by: Mallory") == "Eve evil@x.com Co-authored-by: Mallory"
    author = parse_author('{"name": "A\\n<b>", "email": "a@example.com", "source": "manual"}')
    assert author is not None and "\n" not in author.trailer and author.trailer.count("<") == 1


def test_parse_author_is_lenient_and_admin_compatible() -> None:
    assert parse_author(ANN.to_json()) == ANN
    assert parse_author('{"name": "x", "email": "x@example.com"}') == Author("x", "x@example.com", "manual")
    for raw in (
        None,
        "",
        "[]",
        "{bad",
        '{"name": 1, "email": "x@example.com"}',
        '{"name": "x", "email": "x"}',
    ):
        assert parse_author(raw) is None


# ---- resolution ---------------------------------------------------------------------------------


def test_resolve_credits_mapped_and_lists_unresolved() -> None:
    resolution = resolve(PEOPLE, {"U1": ANN, "U2": BOB}, CoauthorConfig())
    assert resolution.trailers == [
        "Co-authored-by: Ann Lee <ann@example.com>",
        "Co-authored-by: Bob <bob@example.com>",
    ]
    assert [p.user_id for p in resolution.unresolved] == ["U3"]
    assert [p.user_id for p in resolution.to_prompt] == ["U3"]


def test_resolve_honours_the_threads_answer() -> None:
    config = CoauthorConfig(excluded=frozenset({"U2", "U3"}), allow_missing=False, updated_at_ms=1)
    resolution = resolve(PEOPLE, {"U1": ANN, "U2": BOB}, config)
    assert resolution.trailers == [ANN.trailer]
    assert resolution.unresolved == []
    allowed = resolve(PEOPLE, {"U1": ANN}, CoauthorConfig(allow_missing=True, updated_at_ms=1))
    assert [p.user_id for p in allowed.unresolved] == ["U2", "U3"] and allowed.to_prompt == []


def test_one_trailer_per_email() -> None:
    twin = Author("Ann (other account)", "ANN@example.com")
    assert resolve({"U1": "a", "U9": "b"}, {"U1": ANN, "U9": twin}, CoauthorConfig()).trailers == [
        ANN.trailer
    ]
    assert dedupe_trailers([ANN.trailer, ANN.trailer]) == [ANN.trailer]


def test_config_round_trip_and_garbage() -> None:
    config = CoauthorConfig(excluded=frozenset({"U2"}), allow_missing=True, updated_by="U1", updated_at_ms=5)
    assert parse_config(config.to_redis()) == config
    assert parse_config({}) == CoauthorConfig()
    assert parse_config({b"excluded": b"{", b"updated_at_ms": b"x"}).excluded == frozenset()


# ---- the form answer ----------------------------------------------------------------------------


def test_slack_submission_values() -> None:
    values = {
        "coauthors_0": ["U1", "U3"],
        "allow_missing": ["allow"],
        "github_name": "Cy Young",
        "github_email": "cy@example.com",
    }
    submission = apply_coauthor_submission(PEOPLE, values, "U3", now_ms=7)
    assert submission.config.excluded == frozenset({"U2"})
    assert submission.config.allow_missing and submission.config.updated_by == "U3"
    assert submission.self_author == Author("Cy Young", "cy@example.com", "manual")


def test_feishu_submission_values() -> None:
    values = {"coauthors": ["U1", "U2", "U3"], "allow_missing": False, "github_email": ""}
    submission = apply_coauthor_submission(PEOPLE, values, "U1", now_ms=7)
    assert submission.config.excluded == frozenset() and not submission.config.allow_missing
    assert submission.self_author is None and submission.error is None


def test_submission_with_a_bad_email_is_rejected() -> None:
    submission = apply_coauthor_submission(PEOPLE, {"github_email": "nope"}, "U1", now_ms=7)
    assert submission.error == "invalid_email"


def test_slack_modal_round_trips_through_ingress_slack_view_values() -> None:
    normalize = pytest.importorskip("codex_broker.ingress_slack.normalize")
    render = pytest.importorskip("codex_broker.ingress_slack.render")
    people = {f"U{i:02d}": f"Person {i:02d}" for i in range(12)}
    resolution = resolve(people, {"U00": ANN}, CoauthorConfig(excluded=frozenset({"U01"})))
    view = render.form_view(views.coauthor_form(resolution, submitter=ANN))
    assert view["callback_id"] == normalize.COAUTHOR_CALLBACK
    checkboxes = [b for b in view["blocks"] if b.get("block_id", "").startswith("coauthors_")]
    assert [len(b["element"]["options"]) for b in checkboxes] == [10, 2]
    # what Slack sends back when the initial state is submitted unchanged
    state = {
        block["block_id"]: {
            block["element"]["action_id"]: (
                {"selected_options": block["element"].get("initial_options", [])}
                if block["element"]["type"] == "checkboxes"
                else {"value": block["element"].get("initial_value")}
            )
        }
        for block in view["blocks"]
        if block["type"] == "input"
    }
    values = normalize.view_values({"state": {"values": state}})
    submission = apply_coauthor_submission(people, values, "U00", now_ms=1)
    assert submission.config.excluded == frozenset({"U01"})
    assert submission.self_author == Author(ANN.name, ANN.email, "manual")
    ticked = {**values, "allow_missing": ["on"]}  # the allow box ticked
    assert apply_coauthor_submission(people, ticked, "U00", now_ms=1).config.allow_missing


def test_feishu_form_card_round_trips_through_ingress_feishu_form_values() -> None:
    render = pytest.importorskip("codex_broker.ingress_feishu.render")
    coords = Coordinates(platform="feishu", conversation_id="oc_1", root_message_id="om_1")
    resolution = resolve(PEOPLE, {"U1": ANN}, CoauthorConfig(excluded=frozenset({"U2"})))
    card = render.form_card(views.coauthor_form(resolution), coords)
    form = next(e for e in card["body"]["elements"] if e["tag"] == "form")
    names = [e.get("name") for e in form["elements"]]
    assert names == ["coauthors", "allow_missing", "github_name", "github_email", "coauthor_submit"]
    assert form["elements"][0]["selected_values"] == ["U1", "U3"]
    submit = form["elements"][-1]
    assert submit["form_action_type"] == "submit"
    assert submit["behaviors"][0]["value"] == {
        "cb": "coauthor_submit",
        "v": "",
        "root": "om_1",
        "conv": "oc_1",
    }
    # what Feishu sends back for the initial state, submitted unchanged
    values = {"coauthors": ["U1", "U3"], "allow_missing": False, "github_name": "", "github_email": ""}
    submission = apply_coauthor_submission(PEOPLE, values, "U1", now_ms=1)
    assert submission.config.excluded == frozenset({"U2"}) and not submission.config.allow_missing


# ---- commit messages ----------------------------------------------------------------------------


def test_with_trailers_appends_once() -> None:
    assert with_trailers("Fix it", [ANN.trailer]) == f"Fix it\n\n{ANN.trailer}\n"
    already = f"Fix it\n\n{ANN.trailer}\n"
    assert with_trailers(already, [ANN.trailer, BOB.trailer]) == f"Fix it\n\n{ANN.trailer}\n{BOB.trailer}\n"
    assert with_trailers("Fix it\n\nbody text", [BOB.trailer]).endswith(f"body text\n\n{BOB.trailer}\n")


def test_hook_filters_trailers() -> None:
    message = "Fix\n\nco-authored-by: Ann <ANN@example.com>\n"
    offered = [
        ANN.trailer,
        BOB.trailer,
        "Co-authored-by: x <y@example.com>\nEvil: 1",
        5,
        "Signed-off-by: a <a@b.c>",
    ]
    assert git_hook.trailers_to_add(offered, message, author_email=None) == [BOB.trailer]
    assert git_hook.trailers_to_add([BOB.trailer], "Fix", author_email="BOB@example.com") == []
    assert git_hook.trailers_to_add("nope", "Fix", None) == []
    assert not git_hook.has_content("# only a comment\n\n")
    assert git_hook.clamp_timeout("999") == git_hook.MAX_TIMEOUT_S and git_hook.clamp_timeout("x") == 5.0


def test_hook_finds_its_session_only_from_inside_the_workspace(tmp_path: Path) -> None:
    session = tmp_path / "sessions" / "s-1"
    repo = session / "workspace" / "proj"
    repo.mkdir(parents=True)
    (session / ".broker-session").write_text('{"v": 1, "session_key": "slack:C:1", "token": "t"}')
    found = git_hook.find_hook_file(repo)
    assert found == session / ".broker-session"
    assert git_hook.parse_hook_file(found.read_text()) == git_hook.Credentials("t", "slack:C:1")
    # a repository elsewhere, or a file planted inside the workspace, is not a session
    elsewhere = tmp_path / "repos" / "proj"
    elsewhere.mkdir(parents=True)
    assert git_hook.find_hook_file(elsewhere) is None
    planted = session / "workspace" / "proj" / ".broker-session"
    planted.write_text('{"token": "x"}')
    assert git_hook.find_hook_file(repo) == session / ".broker-session"
    assert git_hook.parse_hook_file("[]") is None and git_hook.parse_hook_file("{}") is None


# ---- git config and environments -----------------------------------------------------------------


def test_quote_value() -> None:
    assert quote_value('a "b" \\c') == '"a \\"b\\" \\\\c"'
    with pytest.raises(ValueError):
        quote_value("a\nb")


def test_rendered_config_is_what_git_reads(tmp_path: Path) -> None:
    text = render_gitconfig(
        user_name='Codex "bot"',
        user_email="codex@example.invalid",
        helper=credential_helper(None, tmp_path / "my helper"),
        hooks_dir=tmp_path / "hooks",
        rewrite_ssh=True,
        api_base="http://127.0.0.1:3000",
        hook_timeout_s=2.5,
    )
    path = tmp_path / "gitconfig"
    path.write_text(text)

    def get(*args: str) -> str:
        done = subprocess.run(
            ["git", "config", "-f", str(path), *args], capture_output=True, text=True, check=True
        )
        return done.stdout

    assert get("--get", "user.name").strip() == 'Codex "bot"'
    assert get("--get-all", "credential.https://github.com.helper").splitlines() == [
        "",
        f"!'{tmp_path}/my helper'",
    ]
    assert get("--get-all", "url.https://github.com/.insteadOf").split() == [
        "git@github.com:",
        "ssh://git@github.com/",
    ]
    assert get("--get", "core.hooksPath").strip() == str(tmp_path / "hooks")
    assert get("--get", "codex-broker.hookTimeout").strip() == "2.5"


def test_credential_helper_prefers_gh() -> None:
    assert credential_helper("/usr/bin/gh", Path("/x/h")) == "!/usr/bin/gh auth git-credential"
    assert credential_helper(None, Path("/x/h")) == "!/x/h"


def test_ssh_rewrite_rule() -> None:
    assert rewrite_ssh_remotes(has_token=True, ssh_agent=True)
    assert rewrite_ssh_remotes(has_token=False, ssh_agent=False)
    assert not rewrite_ssh_remotes(has_token=False, ssh_agent=True)


def test_child_env_has_the_token_only_when_configured(tmp_path: Path) -> None:
    plain = git_child_env(git_settings(), tmp_path, api_base="http://127.0.0.1:1")
    assert plain["GIT_CONFIG_GLOBAL"] == str(tmp_path / "gitconfig")
    assert plain["BROKER_API_BASE"] == "http://127.0.0.1:1" and plain["GIT_TERMINAL_PROMPT"] == "0"
    assert not {"GH_TOKEN", "GITHUB_TOKEN", "SSH_AUTH_SOCK"} & set(plain)
    full = git_child_env(
        git_settings(gh_token="ghp_a", github_token="ghp_b", git_ssh_auth_sock="/run/agent.sock"),
        tmp_path,
        api_base="http://127.0.0.1:1",
    )
    assert (full["GH_TOKEN"], full["GITHUB_TOKEN"], full["SSH_AUTH_SOCK"]) == (
        "ghp_a",
        "ghp_b",
        "/run/agent.sock",
    )


def test_jobs_get_the_token_only_when_configured() -> None:
    assert job_env_extras(git_settings(gh_token="ghp_a")) == {}
    assert job_env_extras(git_settings(gh_token="ghp_a", job_env_include_gh_token=True)) == {
        "GH_TOKEN": "ghp_a"
    }
