"""Unit tests of the job sandbox's pure parts: `codex sandbox` argv, TOML values, the decision,
the session's network switch, and which process groups get the SIGTERM."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from codex_broker.http_api import job_exec, job_sandbox
from codex_broker.libs import codex_sandbox, paths, sealing

SESSION = "slack:C1:1700000000.000100"


def parsed(flag: str) -> dict[str, object]:
    """What Codex makes of one `-c key=value`: the value parsed as TOML under the dotted key."""
    key, value = flag.split("=", 1)
    return {"key": key, "value": tomllib.loads(f"v = {value}")["v"]}


def test_overrides_carry_the_profile_exactly(tmp_path: Path) -> None:
    root = (tmp_path / 'da ta "q" \\ é').resolve()
    workspace = paths.session_workspace(root, SESSION)
    config = sealing.job_config(root, SESSION, workspace, paths.job_dir(root, "j1"), network_access=False)
    flags = codex_sandbox.config_overrides(config)
    assert flags[::2] == ["-c"] * (len(flags) // 2)
    values = {p["key"]: p["value"] for p in map(parsed, flags[1::2])}
    profile = config["permissions"][sealing.PROFILE_ID]
    assert values == {
        f"permissions.{sealing.PROFILE_ID}.filesystem": profile["filesystem"],
        f"permissions.{sealing.PROFILE_ID}.network": {"enabled": False},
        "default_permissions": sealing.PROFILE_ID,
    }


def test_argv_runs_the_command_in_the_sandbox_without_codex_home() -> None:
    config = {"default_permissions": "p", "permissions": {"p": {"network": {"enabled": True}}}}
    argv = job_sandbox.sandbox_argv("/opt/codex", config, ["/bin/bash", "/jobs/j/script.sh"])
    assert argv[:2] == ["/opt/codex", "sandbox"]
    tail = argv[argv.index("--") :]
    assert tail == ["--", "/usr/bin/env", "-u", "CODEX_HOME", "/bin/bash", "/jobs/j/script.sh"]


def test_toml_value_refuses_what_it_cannot_render() -> None:
    with pytest.raises(TypeError):
        codex_sandbox.toml_value(3.5)


def test_decide_refuses_unless_the_operator_opted_out() -> None:
    assert job_sandbox.decide(None, allow_unsandboxed=False) == job_sandbox.SandboxState("sandboxed")
    refused = job_sandbox.decide("bwrap: no namespaces", allow_unsandboxed=False)
    assert refused.mode == "refused"
    assert "bwrap: no namespaces" in refused.refusal and "JOBS_UNSANDBOXED=true" in refused.refusal
    assert job_sandbox.decide("bwrap: no namespaces", allow_unsandboxed=True).mode == "unsandboxed"


def test_probe_without_codex_names_the_setting(tmp_path: Path) -> None:
    assert job_sandbox.probe(None, tmp_path) == "the Codex CLI was not found (CODEX_BIN)"


def test_sandbox_home_is_inside_the_denied_jobs_tree(tmp_path: Path) -> None:
    home = job_sandbox.sandbox_home(tmp_path)
    assert home.parent == paths.job_dir(tmp_path, "x").parent.resolve()
    assert home.name.startswith(".")  # job directories are safe_names: never a dot-name


@pytest.mark.parametrize(
    ("stored", "default", "expected"),
    [(None, True, True), ("", False, False), ("0", True, False), ("1", False, True), ("off", True, False)],
)
def test_session_network(stored: str | None, default: bool, expected: bool) -> None:
    assert job_sandbox.session_network(stored, default) is expected


def test_the_sigterm_goes_to_the_groups_inside_the_sandbox() -> None:
    P = job_exec.Proc
    ours, theirs = "pid:[1]", "pid:[2]"
    table = [
        P(100, 1, 100, ours),  # the wrapper (codex sandbox), its group
        P(101, 100, 100, ours),  # the sandbox helper
        P(102, 101, 102, ours),  # bubblewrap
        P(103, 102, 103, theirs),  # pid 1 of the sandbox, a session of its own
        P(104, 103, 103, theirs),  # the script
        P(105, 104, 105, theirs),  # something the script setsid'ed
        P(200, 1, 200, theirs),  # someone else's sandbox
    ]
    assert job_exec.sandboxed_groups(100, table) == {103, 105}
    # unsandboxed: the script is in our namespace and our group gets the signal
    assert job_exec.sandboxed_groups(100, [P(100, 1, 100, ours), P(101, 100, 100, ours)]) == set()
    assert job_exec.sandboxed_groups(100, [P(100, 1, 100, ""), P(101, 100, 101, theirs)]) == set()
