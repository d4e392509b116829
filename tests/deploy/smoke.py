"""Run a deployment the way its pods or containers would, as local processes, and ask its probes.

From the rendered manifests (`kubectl kustomize`) or compose.yaml, each Deployment / service
becomes a `Target`: its container command, the environment its manifest gives it (image ENV, the
config map or env files, the secrets with test values, its own `env`) and its declared probes
(liveness/readiness/startup `httpGet`, compose `healthcheck` or the image's HEALTHCHECK).

`localize` turns those container facts into local ones without changing their meaning: every
port a process listens on (METRICS_PORT, HTTP_API_PORT, HTTP_WEB_PORT — set, or the service's
own default) is remapped to a free loopback port, and a probe naming that container port asks
the same local port; a probe naming a port nothing is configured to listen on asks a port
nobody listens on, and fails. Cluster addresses (a k8s Service, a compose service name or pinned
address) become the local address of the process behind them, Redis the test Redis, container
paths (/data, /run/secrets/..., the image's venv and Codex) local paths, bind addresses loopback.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from pydantic_settings import BaseSettings

from codex_broker.codex_runner.config import Settings as RunnerSettings
from codex_broker.http_api.config import Settings as ApiSettings
from codex_broker.ingress_discord.config import Settings as DiscordSettings
from codex_broker.ingress_feishu.config import Settings as FeishuSettings
from codex_broker.ingress_slack.config import Settings as SlackSettings
from codex_broker.ingress_web.config import Settings as WebSettings
from codex_broker.orchestrator.config import Settings as OrchestratorSettings
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
HTTP_PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
SETTINGS: dict[str, type[BaseSettings]] = {
    "codex_broker.ingress_slack": SlackSettings,
    "codex_broker.ingress_feishu": FeishuSettings,
    "codex_broker.ingress_web": WebSettings,
    "codex_broker.ingress_discord": DiscordSettings,
    "codex_broker.orchestrator": OrchestratorSettings,
    "codex_broker.codex_runner": RunnerSettings,
    "codex_broker.http_api": ApiSettings,
    "codex_broker.http_api.worker": ApiSettings,
}
API_MODULE = "codex_broker.http_api"
# ports a process binds: its own ones; HTTP_API_PORT is the http-api's in every service's config
OWN_PORTS = ("METRICS_PORT", "HTTP_WEB_PORT")
CONTAINER_PATHS = ("/data", "/run/secrets/", "/home/broker", "/app/.venv", "/usr/local/bin/codex")
_URL = re.compile(r"^(?P<scheme>[a-z]+)://(?:(?P<auth>[^@/]*)@)?(?P<host>[^/:@]+):(?P<port>\d+)(?P<rest>.*)$")
_COMPOSE_VAR = re.compile(r"\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}")


@dataclass(frozen=True)
class Probe:
    owner: str
    kind: str  # startup | liveness | readiness | healthcheck
    path: str = ""
    port: int = 0
    command: str = ""  # a shell command (HEALTHCHECK, compose healthcheck)

    def __str__(self) -> str:
        where = f"{self.path} on :{self.port}" if self.path else f"`{self.command[:60]}…`"
        return f"{self.owner} {self.kind} probe ({where})"


@dataclass
class Target:
    name: str
    module: str
    env: dict[str, str]
    probes: list[Probe]
    files: dict[str, str] = field(default_factory=dict)  # container path → content (mounted secrets)


@dataclass
class Deployment:
    """What one rendering deploys: its processes and how cluster addresses reach them."""

    targets: list[Target]
    # (host, port) as other pods name it → (target name, container port)
    addresses: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    redis_hosts: set[str] = field(default_factory=set)


# ---- the image -----------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    found = []
    for line in joined:
        word, _, rest = line.strip().partition(" ")
        found.append((word.upper(), rest.strip()))
    return found


def runtime_stage(text: str = "") -> list[tuple[str, str]]:
    """The instructions of the last stage (the image that runs)."""
    instructions = dockerfile_instructions(text or DOCKERFILE.read_text())
    last = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last:]


def image_env(text: str = "") -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in runtime_stage(text):
        if word == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def image_healthcheck(text: str = "") -> str | None:
    """The HEALTHCHECK's command (shell form), None when the image declares none."""
    for word, rest in runtime_stage(text):
        if word == "HEALTHCHECK" and rest.upper() != "NONE":
            return rest.split(" CMD ", 1)[1].strip()
    return None


# ---- Kubernetes --------------------------------------------------------------------------------


def k8s_deployment(docs: list[dict[str, Any]], secrets: Mapping[str, Mapping[str, str]]) -> Deployment:
    """Every Deployment of a rendering; `secrets`: test values by Secret name and key (each key
    the rendering declares must have one)."""
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    declared = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    for name, secret in declared.items():
        keys = {*secret.get("stringData", {}), *secret.get("data", {})}
        missing = keys - set(secrets.get(name, {}))
        assert not missing, f"no test value for Secret {name} keys {sorted(missing)}"
    deployment = Deployment(targets=[])
    ports_of: dict[str, dict[str, int]] = {}
    for doc in (d for d in docs if d["kind"] == "Deployment"):
        target, named_ports = _k8s_target(doc, config_maps, secrets)
        deployment.targets.append(target)
        ports_of[_app_name(doc["spec"]["template"]["metadata"])] = named_ports
        ports_of[target.name] = named_ports
    by_app = {
        _app_name(d["spec"]["template"]["metadata"]): d["metadata"]["name"]
        for d in docs
        if d["kind"] == "Deployment"
    }
    for service in (d for d in docs if d["kind"] == "Service"):
        app = service["spec"].get("selector", {}).get("app.kubernetes.io/name")
        name = service["metadata"]["name"]
        if app == "redis":
            deployment.redis_hosts.add(name)
        if app not in by_app:
            continue
        for port in service["spec"]["ports"]:
            target_port = port.get("targetPort", port["port"])
            if isinstance(target_port, str):
                target_port = ports_of[app][target_port]
            deployment.addresses[(name, int(port["port"]))] = (by_app[app], int(target_port))
    return deployment


def _app_name(metadata: dict[str, Any]) -> str:
    return str(metadata.get("labels", {}).get("app.kubernetes.io/name", metadata.get("name", "")))


def _k8s_target(
    doc: dict[str, Any], config_maps: dict[str, dict[str, str]], secrets: Mapping[str, Mapping[str, str]]
) -> tuple[Target, dict[str, int]]:
    name = doc["metadata"]["name"]
    container = doc["spec"]["template"]["spec"]["containers"][0]
    assert "command" not in container, f"{name}: the image's entrypoint (python -m) is replaced"
    args = container["args"]
    assert len(args) == 1, f"{name}: expected one module argument, got {args}"
    env = image_env()
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]])
        if "secretRef" in source:
            env.update(secrets[source["secretRef"]["name"]])
    for entry in container.get("env", []):
        env[entry["name"]] = _k8s_value(name, entry, config_maps, secrets)
    named_ports = {p["name"]: int(p["containerPort"]) for p in container.get("ports", []) if "name" in p}
    probes = []
    for key in HTTP_PROBES:
        spec = container.get(key)
        if spec is None:
            continue
        kind = key.removesuffix("Probe")
        assert "httpGet" in spec, f"{name}: {key} is not an httpGet probe (not checked here)"
        port = spec["httpGet"]["port"]
        port = named_ports[port] if isinstance(port, str) else int(port)
        probes.append(Probe(name, kind, spec["httpGet"]["path"], port))
    return Target(name=name, module=args[0], env=env, probes=probes), named_ports


def _k8s_value(
    pod: str,
    entry: dict[str, Any],
    config_maps: dict[str, dict[str, str]],
    secrets: Mapping[str, Mapping[str, str]],
) -> str:
    if "value" in entry:
        return str(entry["value"])
    source = entry["valueFrom"]
    if "fieldRef" in source:
        assert source["fieldRef"]["fieldPath"] == "metadata.name", source
        return f"{pod}-6d4b9c7f5-x1z2q"  # a pod name as the ReplicaSet makes it
    if "secretKeyRef" in source:
        ref = source["secretKeyRef"]
        return secrets[ref["name"]][ref["key"]]
    ref = source["configMapKeyRef"]
    return config_maps[ref["name"]][ref["key"]]


# ---- Compose -----------------------------------------------------------------------------------


def compose_deployment(
    compose: dict[str, Any], env_files: Mapping[str, Mapping[str, str]], secret_files: Mapping[str, str]
) -> Deployment:
    """Every broker service of compose.yaml (Redis is the test's own); `env_files`: the content
    of each env file, `secret_files`: the content of each declared secret, by secret name."""
    deployment = Deployment(targets=[], redis_hosts={"redis"})
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if not command or not str(command[0]).startswith("codex_broker"):
            continue
        env = image_env()
        listed = service.get("env_file", [])
        for path in [listed] if isinstance(listed, str) else listed:
            env.update(env_files[path])
        env.update({k: _interpolate(str(v)) for k, v in (service.get("environment") or {}).items()})
        files = {}
        for secret in service.get("secrets", []):
            source = secret if isinstance(secret, str) else secret["source"]
            target = source if isinstance(secret, str) else secret.get("target", source)
            files[f"/run/secrets/{target}"] = secret_files[source]
        check = service.get("healthcheck")
        command_line = _compose_check(check) if check else image_healthcheck()
        probes = [Probe(name, "healthcheck", command=command_line)] if command_line else []
        deployment.targets.append(
            Target(name=name, module=str(command[0]), env=env, probes=probes, files=files)
        )
        for network in (service.get("networks") or {}).values():
            address = (network or {}).get("ipv4_address")
            if address:
                deployment.addresses[(address, 0)] = (name, 0)  # any port: the container's own
        deployment.addresses[(name, 0)] = (name, 0)
    return deployment


def _compose_check(check: dict[str, Any]) -> str | None:
    test = check.get("test")
    if check.get("disable") or test in (None, ["NONE"]):
        return None
    if isinstance(test, str):
        return test
    if test[0] == "CMD-SHELL":
        return str(test[1])
    return shlex.join(test[1:])


def _interpolate(value: str) -> str:
    """Compose's `${NAME:-default}` with no project .env set (the documented defaults)."""
    return _COMPOSE_VAR.sub(lambda m: m.group("default") or "", value)


# ---- container facts → local ones ------------------------------------------------------------


@dataclass
class Local:
    env: dict[str, str]
    probes: list[Probe]


def localize(
    deployment: Deployment,
    *,
    redis_port: int,
    data_root: Path,
    scratch: Path,
    codex_bin: str,
    edges: Mapping[str, Mapping[str, str]],
) -> dict[str, Local]:
    """The local environment and probes of every target (see the module docstring).
    `edges`: per module, what the test adds at the network edge (fake Slack/Feishu, proxies)."""
    ports: dict[tuple[str, int], int] = {}

    def local_port(target: str, port: int) -> int:
        return ports.setdefault((target, port), free_port())

    api = next((t for t in deployment.targets if t.module == API_MODULE), None)
    listening = {t.name: _listen_ports(t) for t in deployment.targets}
    for target in deployment.targets:
        for port in listening[target.name].values():
            local_port(target.name, port)
    out: dict[str, Local] = {}
    for target in deployment.targets:
        home = scratch / target.name / "home"
        home.mkdir(parents=True, exist_ok=True)
        mounts = {"/data": str(data_root), "/home/broker": str(home), "/app/.venv": sys.prefix}
        mounts["/usr/local/bin/codex"] = codex_bin
        for path, content in target.files.items():
            local = scratch / target.name / "secrets" / Path(path).name
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(content)
            mounts[path] = str(local)
        env: dict[str, str] = {}
        for name, value in target.env.items():
            env[name] = _local_value(name, value, target, deployment, local_port, redis_port, mounts)
        for name, port in listening[target.name].items():
            env[name] = str(local_port(target.name, port))
        if api is not None and "HTTP_API_PORT" in target.env and target is not api:
            env["HTTP_API_PORT"] = str(local_port(api.name, int(target.env["HTTP_API_PORT"])))
        env["HOME"] = str(home)
        env.update(edges.get(target.module, {}))
        probes = [replace(p, port=local_port(target.name, p.port)) if p.port else p for p in target.probes]
        out[target.name] = Local(env=env, probes=probes)
    return out


def _listen_ports(target: Target) -> dict[str, int]:
    """Env name → container port of what the process binds (set, or its settings' default)."""
    model = SETTINGS[target.module]
    names = [*OWN_PORTS, *(("HTTP_API_PORT",) if target.module == API_MODULE else ())]
    found = {}
    for name in names:
        field_info = model.model_fields.get(name.lower())
        if field_info is None:
            continue
        value = int(target.env.get(name, field_info.default))
        if value:
            found[name] = value
    return found


def _local_value(
    name: str,
    value: str,
    target: Target,
    deployment: Deployment,
    local_port: Any,
    redis_port: int,
    mounts: Mapping[str, str],
) -> str:
    if name.endswith("_HOST") and value in ("0.0.0.0", "::"):
        return "127.0.0.1"
    if name == "PATH":
        return value.replace("/app/.venv", sys.prefix).replace(
            "$PATH", os.environ.get("PATH", "/usr/bin:/bin")
        )
    match = _URL.match(value)
    if match:
        return _local_url(name, match, target, deployment, local_port, redis_port)
    for path, local in mounts.items():
        if value == path or value.startswith(path.rstrip("/") + "/"):
            return local + value[len(path) :]
    return value


def _local_url(
    name: str, match: re.Match[str], target: Target, deployment: Deployment, local_port: Any, redis_port: int
) -> str:
    host, port = match.group("host"), int(match.group("port"))
    auth = f"{match.group('auth')}@" if match.group("auth") else ""
    if name == "REDIS_URL" or host in deployment.redis_hosts:
        # the test Redis (plain TCP): a managed endpoint's TLS is the operator's, not checked here
        return f"redis://{auth}127.0.0.1:{redis_port}{match.group('rest')}"
    behind = deployment.addresses.get((host, port)) or deployment.addresses.get((host, 0))
    if behind is None:
        return match.group(0)  # outside the deployment (a public URL): left as it is
    owner, container_port = behind
    local = local_port(owner, container_port or port)
    return f"{match.group('scheme')}://{auth}127.0.0.1:{local}{match.group('rest')}"


# ---- running it and asking the probes --------------------------------------------------------


@contextlib.contextmanager
def running(
    locals_: Mapping[str, Local], modules: Mapping[str, str], logs: Path
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Every target as `python -m <module>` with exactly its local env; stopped (SIGTERM, then
    SIGKILL of the whole process group) on exit."""
    logs.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, local in locals_.items():
            with open(logs / f"{name}.log", "ab") as log:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", modules[name]],
                    cwd=logs,  # no stray .env
                    env=local.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        yield procs
    finally:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def ask(probe: Probe, env: Mapping[str, str]) -> str | None:
    """One probe, as the kubelet or Docker would ask it: None when it passes, else why not."""
    if probe.command:
        done = subprocess.run(
            ["sh", "-c", probe.command], env=dict(env), capture_output=True, text=True, timeout=30
        )
        return None if done.returncode == 0 else f"exit {done.returncode}: {done.stderr.strip()[-300:]}"
    try:
        with httpx.Client(trust_env=False, timeout=5) as client:
            response = client.get(f"http://127.0.0.1:{probe.port}{probe.path}")
    except httpx.HTTPError as exc:
        return f"no answer ({type(exc).__name__})"
    return (
        None if 200 <= response.status_code < 400 else f"HTTP {response.status_code}: {response.text[:300]}"
    )


def unanswered(
    locals_: Mapping[str, Local],
    procs: Mapping[str, subprocess.Popen[bytes]],
    *,
    timeout_s: float,
    settle_s: float = 10.0,
    interval_s: float = 0.5,
) -> dict[str, str]:
    """Ask every probe until each has passed once or `timeout_s` is over; returns the ones that
    never passed (probe → last answer). A process that exits fails its probes at once. A port
    nobody answers on, `settle_s` after the same process answered another probe, is final: a
    service binds all its ports at start-up (a 503 "not ready yet" keeps being asked)."""
    waiting = {probe: "not asked" for local in locals_.values() for probe in local.probes}
    serving_since: dict[str, float] = {}
    final: dict[Probe, str] = {}
    deadline = time.monotonic() + timeout_s
    while waiting and time.monotonic() < deadline:
        for probe in list(waiting):
            proc = procs[probe.owner]
            if proc.poll() is not None:
                final[probe] = f"the process exited with {proc.returncode}"
                del waiting[probe]
                continue
            answer = ask(probe, locals_[probe.owner].env)
            if answer is None:
                serving_since.setdefault(probe.owner, time.monotonic())
                del waiting[probe]
                continue
            waiting[probe] = answer
            since = serving_since.get(probe.owner)
            if answer.startswith("no answer") and since is not None and time.monotonic() - since > settle_s:
                final[probe] = answer
                del waiting[probe]
        time.sleep(interval_s if waiting else 0)
    return {str(probe): answer for probe, answer in {**waiting, **final}.items()}


def log_tails(logs: Path, names: list[str], lines: int = 25) -> str:
    parts = []
    for name in names:
        path = logs / f"{name}.log"
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
        parts.append(f"--- {name} ---\n" + "\n".join(text))
    return "\n".join(parts)
