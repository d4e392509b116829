"""Redis auth in compose and k8s: one ACL user per service, no default user, passwords from
secrets; the users' rights checked on a real redis-server started by the shipped script."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis import Redis
from redis import exceptions as redis_errors

from codex_broker.libs.keys import Keys
from tests.deploy.test_manifests import ROOT, render
from tests.helpers import free_port

ACL_DIR = ROOT / "k8s" / "base" / "redis"
SERVICES = (
    "ingress-slack",
    "ingress-feishu",
    "ingress-web",
    "ingress-discord",
    "orchestrator",
    "codex-runner",
    "http-api",
    "worker",
)
K = Keys(prefix="cb", shard_count=8)
SK = "slack:C1:1700000000.000100"


def acl_lines() -> list[list[str]]:
    lines = (ACL_DIR / "users.acl").read_text().splitlines()
    return [line.split() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_the_rules_have_no_default_user_and_no_password() -> None:
    users = {words[1]: words[2:] for words in acl_lines()}
    assert set(users) == {"default", *SERVICES}
    assert "off" in users["default"] and "on" not in users["default"]
    for name in SERVICES:
        rules = users[name]
        assert "on" in rules and "nopass" not in rules, name
        assert not any(rule.startswith((">", "#", "<", "!")) for rule in rules), name  # no secret here
        assert rules[-1] != "+@all" and "-@dangerous" in rules, name


def test_compose_gives_each_service_its_own_redis_user_and_password() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    declared = compose["secrets"]
    for name in SERVICES:
        service = services[name]
        assert service["environment"]["REDIS_USERNAME"] == name
        assert service["environment"]["REDIS_PASSWORD_FILE"] == "/run/secrets/redis_password"
        redis_secrets = [s for s in service["secrets"] if str(s["source"]).startswith("redis-")]
        assert redis_secrets == [{"source": f"redis-{name}", "target": "redis_password"}], name
        assert declared[f"redis-{name}"]["file"] == f"./secrets/redis/{name}"
    redis = services["redis"]
    assert sorted(redis["secrets"]) == sorted(f"redis-{name}" for name in SERVICES)
    assert redis["entrypoint"][-1] == "/etc/redis-acl/start-redis.sh"
    assert "redis-cli ping" in redis["healthcheck"]["test"][1] and "NOAUTH" in redis["healthcheck"]["test"][1]
    for name, service in services.items():  # nothing else gets a Redis password
        if name not in (*SERVICES, "redis"):
            assert not service.get("secrets"), name


def test_k8s_gives_each_deployment_its_own_redis_user_and_password() -> None:
    docs = render(ROOT / "k8s" / "base")
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == set(SERVICES)
    for name, deployment in deployments.items():
        env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["REDIS_USERNAME"]["value"] == name
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "redis-acl", "key": name}
        assert "redis-acl" not in json.dumps(deployment["spec"]["template"]["spec"].get("volumes", []))
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "redis-acl")
    assert set(secret["stringData"]) == set(SERVICES)
    redis = next(d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "redis")
    container = redis["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["/bin/sh", "/etc/redis-acl/start-redis.sh"]
    volumes = {v["name"]: v for v in redis["spec"]["template"]["spec"]["volumes"]}
    assert volumes["acl-secrets"]["secret"]["secretName"] == "redis-acl"
    rules = volumes["acl-rules"]["configMap"]["name"]
    generated = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == rules)
    assert generated["data"]["users.acl"] == (ACL_DIR / "users.acl").read_text()
    keda = next(d for d in docs if d["kind"] == "ScaledObject")
    trigger = keda["spec"]["triggers"][0]["metadata"]
    assert (trigger["usernameFromEnv"], trigger["passwordFromEnv"]) == ("REDIS_USERNAME", "REDIS_PASSWORD")


def _pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
    }


def test_every_pod_is_hardened() -> None:
    for name, spec in _pod_specs(render(ROOT / "k8s" / "base")).items():
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        # Codex's sandbox needs user namespaces: the two pods that seal commands run unconfined
        sealing = name in ("codex-runner", "worker")
        wanted = "Unconfined" if sealing else "RuntimeDefault"
        assert spec["securityContext"]["seccompProfile"] == {"type": wanted}, name
        scratch = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"]
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/tmp") in scratch, f"{name}: /tmp is not writable scratch"


def _policies() -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d["spec"]
        for d in render(ROOT / "k8s" / "base")
        if d["kind"] == "NetworkPolicy"
    }


def _from_pods(rule: dict[str, Any]) -> set[str]:
    return {
        value
        for peer in rule["from"]
        if "podSelector" in peer
        for expression in peer["podSelector"]["matchExpressions"]
        for value in expression["values"]
    }


def test_network_policy_admits_redis_from_broker_pods_and_the_api_from_runners() -> None:
    policies = _policies()
    assert policies["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    redis = policies["redis-from-broker-pods"]
    assert redis["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "redis"}
    in_namespace = [rule for rule in redis["ingress"] if any("podSelector" in p for p in rule["from"])]
    assert [_from_pods(rule) for rule in in_namespace] == [set(SERVICES)]
    others = [rule for rule in redis["ingress"] if rule not in in_namespace]
    assert [rule["from"] for rule in others] == [
        [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}]
    ]
    api = policies["http-api"]
    pods = [rule for rule in api["ingress"] if any("podSelector" in p for p in rule["from"])]
    assert [_from_pods(rule) for rule in pods] == [{"codex-runner", "worker"}]
    for rule in api["ingress"]:
        assert rule["ports"] == [{"protocol": "TCP", "port": 3000}]
        for peer in rule["from"]:
            if "namespaceSelector" in peer:  # other namespaces only, never this one whole
                expression = peer["namespaceSelector"]["matchExpressions"][0]
                assert expression["operator"] == "NotIn" and expression["values"] == ["codex-broker"]
    # nothing else in the namespace reaches any pod but through these rules
    covered = {"redis", "http-api", *SERVICES}
    selected = {
        value
        for spec in policies.values()
        for expression in spec["podSelector"].get("matchExpressions", [])
        for value in expression["values"]
    } | {
        spec["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") for spec in policies.values()
    }
    assert covered <= selected


# ---- the users on a real redis-server --------------------------------------------------------


def _passwords(directory: Path, prefix: str = "redis-") -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    passwords = {name: f"pw-{name}-0123456789abcdef" for name in SERVICES}
    for name, password in passwords.items():
        (directory / f"{prefix}{name}").write_text(password + "\n")
    return passwords


def _start(tmp_path: Path, secrets: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        "PATH": "/usr/bin:/bin",
        "REDIS_ACL_RULES": str(ACL_DIR / "users.acl"),
        "REDIS_ACL_SECRETS": str(secrets),
        "REDIS_ACL_FILE": str(tmp_path / "acl" / "users.acl"),
    }
    argv = ["sh", str(ACL_DIR / "start-redis.sh"), "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--dir", str(tmp_path), "--save", "", "--appendonly", "no", "--daemonize", "no"]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[tuple[int, dict[str, str], Path]]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server not on PATH (apt-get install redis-server)")
    passwords = _passwords(tmp_path / "secrets")
    port = free_port()
    proc = _start(tmp_path, tmp_path / "secrets", port)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                Redis(port=port, socket_connect_timeout=1).ping()
            except redis_errors.AuthenticationError:
                break  # answering, and asking for a password
            except redis_errors.ConnectionError:
                assert proc.poll() is None, proc.communicate()[0].decode()
                assert time.monotonic() < deadline, "redis-server did not come up"
                time.sleep(0.05)
                continue
            break
        yield port, passwords, tmp_path
    finally:
        proc.terminate()
        proc.wait(timeout=15)


# (user, allowed commands, refused commands); key names come from libs/keys.py
RIGHTS: dict[str, tuple[list[list[str]], list[list[str]]]] = {
    "ingress-slack": (
        [
            ["XADD", K.inbound_stream_for(SK), "*", "data", "{}"],
            ["XREADGROUP", "GROUP", "ingress", "c", "STREAMS", K.outbound_stream("slack"), ">"],
            ["SET", K.idempotency("outbound", "a1"), "pending"],
            ["RPUSH", K.rpc_reply("r1"), "{}"],
            ["HSET", K.outbound_ref("slack", "ref:1"), "ts", "1"],
            ["SET", K.platform_capability("slack", "T1", "native_stream"), "0"],
            ["SET", K.heartbeat("ingress-slack", "i1"), "{}"],
            ["XADD", K.dead_letter_stream, "*", "data", "{}"],
        ],
        [
            ["GET", K.session_token_hash(SK)],
            ["GET", K.session_by_token("ab" * 32)],
            ["HGETALL", K.session(SK)],
            ["XADD", K.runs_stream, "*", "data", "{}"],
            ["XADD", K.job_callback_stream_for(SK), "*", "data", "{}"],  # no ingress writes a job's report
            ["XREADGROUP", "GROUP", "ingress", "c", "STREAMS", K.outbound_stream("feishu"), ">"],
            ["SET", K.heartbeat("orchestrator", "i1"), "{}"],
            ["SET", K.shard_lease(0), "me"],
        ],
    ),
    "ingress-feishu": (
        [
            ["XADD", K.inbound_stream_for(SK), "*", "data", "{}"],
            ["XAUTOCLAIM", K.outbound_stream("feishu"), "ingress", "c", "1000", "0"],
            ["SET", K.lease("feishu-ws:cli_1"), "me"],
            ["SET", K.user_name("feishu", "ou_1"), "Ann"],
            ["HSET", K.outbound_ref("feishu", "ref:1"), "id", "1"],
        ],
        [
            ["XADD", K.outbound_stream("slack"), "*", "data", "{}"],
            ["XADD", K.job_callback_stream_for(SK), "*", "data", "{}"],
            ["GET", K.user_name("slack", "U1")],
            ["HGETALL", K.session(SK)],
            ["GET", K.session_token_hash(SK)],
        ],
    ),
    "ingress-discord": (
        [
            ["XADD", K.inbound_stream_for(SK), "*", "data", "{}"],
            ["XAUTOCLAIM", K.outbound_stream("discord"), "ingress", "c", "1000", "0"],
            ["SET", K.discord_channel("1"), "{}"],
            ["ZADD", K.discord_active, "1", "1"],
            ["HSET", K.discord_parts("a1"), "0", "1"],
            ["HSET", K.live_view("discord", "p1"), "seq", "1"],
            ["SET", K.heartbeat("ingress-discord", "i1"), "{}"],
        ],
        [
            ["XADD", K.outbound_stream("slack"), "*", "data", "{}"],
            ["XADD", K.job_callback_stream_for(SK), "*", "data", "{}"],
            ["HSET", K.outbound_ref("slack", "ref:1"), "ts", "1"],
            ["HGETALL", K.session(SK)],
            ["GET", K.session_token_hash(SK)],
        ],
    ),
    "codex-runner": (
        [
            ["XREADGROUP", "GROUP", "codex-runners", "c", "STREAMS", K.runs_stream, ">"],
            ["XADD", K.runner_runs_stream("r1"), "*", "data", "{}"],
            ["XREADGROUP", "GROUP", "codex-runners", "c", "STREAMS", K.runner_control_stream("r1"), ">"],
            ["XADD", K.run_events_stream_for(SK), "*", "data", "{}"],
            ["HSET", K.run("run-1"), "status", "running"],
            ["SET", K.codex_thread_runner("th-1"), "r1"],
            ["SET", K.session_git_hook_token(SK), "digest"],
            ["SET", K.git_hook_token("cd" * 32), SK],
            # it mints the session's http-api token (libs/session_token.py): hashes only
            ["SET", K.session_token_hash(SK), "digest", "EX", "60"],
            ["SET", K.session_by_token("ab" * 32), SK, "EX", "60"],
            ["XINFO", "GROUPS", K.runs_stream],  # KEDA's scaler
            ["TIME"],  # heartbeats carry Redis's clock (libs/heartbeat.py)
        ],
        [
            ["HGETALL", K.session(SK)],
            ["XADD", K.inbound_stream(0), "*", "data", "{}"],
            ["XADD", K.job_callback_stream(0), "*", "data", "{}"],
            ["XADD", K.outbound_stream("slack"), "*", "data", "{}"],
            ["HGETALL", K.job("j1")],
            ["HGETALL", K.auth_profiles],
        ],
    ),
    "orchestrator": (
        [
            ["HGETALL", K.session(SK)],
            ["ZADD", K.runs_waiting, "1", SK],
            ["ZADD", K.active_runs, "1", "run-1"],
            ["SET", K.shard_lease(3), "me", "PX", "1000"],
            ["BLPOP", K.orchestrator_wake(1), "0.01"],
            ["TIME"],  # liveness is judged on Redis's clock (orchestrator/reconcile.py)
            ["SET", K.redis_epoch, "1", "NX"],
            ["SET", K.job_callback_streams_since, "1", "NX"],
            ["XADD", K.job_callback_stream_for(SK), "*", "data", "{}"],  # workspace wakes
            ["XADD", K.outbound_stream("slack"), "*", "data", "{}"],
        ],
        [["GET", "other-app:key"], ["HGETALL", "rq:job:1"], ["PUBLISH", "rq:pubsub:w1", "x"]],
    ),
    "http-api": (
        [
            ["HGETALL", K.session(SK)],
            ["DEL", K.session_timeline(SK)],
            ["SET", K.session_token_hash(SK), "digest"],
            ["SET", K.session_by_token("ab" * 32), SK],
            ["ZADD", K.sessions_index, "1", SK],
            ["ZADD", K.runs_waiting, "1", SK],
            ["HSET", K.job("j1"), "status", "queued"],
            ["GETDEL", K.admin_login_code("ef" * 32)],
            ["LPUSH", f"rq:queue:{K.rq_queue_name}", "job"],
            ["XADD", K.job_callback_stream_for(SK), "*", "data", "{}"],
            ["XADD", K.outbound_stream("slack"), "*", "data", "{}"],
            ["XADD", K.audit_stream, "*", "data", "{}"],
            ["XADD", K.dead_letter_stream, "*", "data", "{}"],
            ["XADD", K.admin_events_stream, "*", "data", "{}"],
            # the admin page reads the inbound streams' depth and groups, and nothing more
            ["XLEN", K.inbound_stream(0)],
            ["XINFO", "GROUPS", K.inbound_stream(0)],
            ["XRANGE", K.inbound_stream(0), "-", "+"],
            ["INFO", "server"],
        ],
        [
            ["GET", "other-app:key"],
            ["CONFIG", "SET", "requirepass", "x"],
            # job callbacks have their own stream: no platform message can come from the http-api
            *(["XADD", K.inbound_stream(s), "*", "data", "{}"] for s in range(K.shard_count)),
            ["XADD", K.inbound_stream_for(SK), "*", "data", "{}"],
            ["XDEL", K.inbound_stream(0), "1-1"],
            ["XTRIM", K.inbound_stream(0), "MAXLEN", "0"],
            ["DEL", K.inbound_stream(0)],
        ],
    ),
    "worker": (
        [
            ["HSET", K.job("j1"), "status", "running"],
            ["ZADD", K.jobs_index, "1", "j1"],
            ["XADD", K.job_callback_stream(2), "*", "data", "{}"],
            ["SET", K.lease("jobs-recovery"), "me", "NX", "EX", "60"],
            ["SET", K.heartbeat("http-api-worker", "w1"), "{}"],
            ["HSET", "rq:worker:w1", "state", "busy"],
            ["PUBLISH", "rq:pubsub:w1", "shutdown"],
            ["HGET", K.session(SK), "cfg_network"],
            ["INFO", "server"],
        ],
        [
            ["HSET", K.session(SK), "cfg_network", "1"],  # it reads the session's switch, no more
            ["XADD", K.inbound_stream(2), "*", "data", "{}"],  # job callbacks have their own stream
            ["GET", K.session_token_hash(SK)],
            ["HGETALL", K.session_state(SK)],
            ["XADD", K.outbound_stream("slack"), "*", "data", "{}"],
            ["XREADGROUP", "GROUP", "codex-runners", "c", "STREAMS", K.runs_stream, ">"],
        ],
    ),
}
# what no service may do, whatever its keys
ADMIN_COMMANDS = [
    ["FLUSHALL"],
    ["KEYS", "*"],
    ["CONFIG", "GET", "*"],
    ["ACL", "LIST"],
    ["ACL", "SETUSER", "x", "on"],
    ["SHUTDOWN", "NOSAVE"],
]


def _permitted(client: Redis, command: list[str]) -> bool:
    """Run it for real (a throwaway server): NOPERM is a refusal, any other error (NOGROUP,
    WRONGTYPE) means the ACL let the command through."""
    try:
        client.execute_command(*command)
    except redis_errors.NoPermissionError:
        return False
    except redis_errors.ResponseError:
        return True
    return True


def test_each_user_reaches_its_own_keys_and_nothing_else(acl_redis: tuple[int, dict[str, str], Path]) -> None:
    port, passwords, _ = acl_redis
    bare = Redis(port=port)
    with pytest.raises(redis_errors.AuthenticationError):  # no default user: NOAUTH
        bare.ping()
    with pytest.raises(redis_errors.AuthenticationError):
        Redis(port=port, username="default", password="").ping()
    with pytest.raises(redis_errors.AuthenticationError):  # a user name alone opens nothing
        Redis(port=port, username="orchestrator", password="wrong").ping()
    for user, (allowed, refused) in RIGHTS.items():
        client = Redis(port=port, username=user, password=passwords[user])
        assert client.ping() is True, user
        for command in allowed:
            assert _permitted(client, command), (user, command)
        for command in [*refused, *ADMIN_COMMANDS]:
            assert not _permitted(client, command), (user, command)
        client.close()


def test_start_script_refuses_to_start_with_a_user_without_password(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    _passwords(secrets)
    (secrets / "redis-worker").unlink()
    (secrets / "redis-orchestrator").write_text("\n")
    port = free_port()
    proc = _start(tmp_path, secrets, port)
    output = proc.communicate(timeout=15)[0].decode()
    assert proc.returncode != 0
    assert "no password file" in output or "empty password" in output
    with pytest.raises(redis_errors.ConnectionError):
        Redis(port=port, socket_connect_timeout=1).ping()
    built = (tmp_path / "acl" / "users.acl").read_text() if (tmp_path / "acl" / "users.acl").exists() else ""
    assert built == ""  # nothing half-built is left to start from


def test_built_acl_file_holds_hashes_not_passwords(acl_redis: tuple[int, dict[str, str], Path]) -> None:
    _, passwords, tmp_path = acl_redis
    built = (tmp_path / "acl" / "users.acl").read_text()
    assert all(password not in built for password in passwords.values())
    assert built.count(" #") == len(SERVICES)
    assert oct((tmp_path / "acl" / "users.acl").stat().st_mode & 0o777) == "0o600"
