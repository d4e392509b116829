"""Pure planning for `codex-broker up`: which children to run, with which ports and env.

No I/O here: the supervisor turns a plan into processes. Keeping the arithmetic (replica counts,
port assignment, restart backoff) pure lets it be unit-tested without starting anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServiceDef:
    """One kind of child: its display name and the module `python -m` runs."""

    name: str
    module: str


SERVICES: tuple[ServiceDef, ...] = (
    ServiceDef("ingress-slack", "codex_broker.ingress_slack"),
    ServiceDef("ingress-feishu", "codex_broker.ingress_feishu"),
    ServiceDef("orchestrator", "codex_broker.orchestrator"),
    ServiceDef("codex-runner", "codex_broker.codex_runner"),
    ServiceDef("http-api", "codex_broker.http_api"),
    ServiceDef("ingress-web", "codex_broker.ingress_web"),
    ServiceDef("ingress-discord", "codex_broker.ingress_discord"),
)
WORKER = ServiceDef("worker", "codex_broker.http_api.worker")
ALL_SERVICES: tuple[ServiceDef, ...] = (*SERVICES, WORKER)
SERVICE_NAMES: tuple[str, ...] = tuple(s.name for s in SERVICES)

# Accepted spellings: the service name, its package name, and a few short forms.
_ALIASES: dict[str, str] = {
    **{s.name: s.name for s in ALL_SERVICES},
    **{s.name.replace("-", "_"): s.name for s in ALL_SERVICES},
    "runner": "codex-runner",
    "slack": "ingress-slack",
    "feishu": "ingress-feishu",
    "web": "ingress-web",
    "discord": "ingress-discord",
    "api": "http-api",
    "rq-worker": "worker",
}
MAX_REPLICAS = 64

# Secret settings and the only children that may receive them (INTERFACES.md, "Secrets"): `up`
# passes every other child its environment without them, so a service that does not own a secret
# never holds it (its /proc/<pid>/environ, its crash reports, the processes it starts).
SECRET_OWNERS: dict[str, frozenset[str]] = {
    "SLACK_APP_TOKEN": frozenset({"ingress-slack"}),
    "SLACK_BOT_TOKEN": frozenset({"ingress-slack"}),
    "FEISHU_APP_SECRET": frozenset({"ingress-feishu"}),
    "DISCORD_BOT_TOKEN": frozenset({"ingress-discord"}),
    "OPENAI_API_KEY": frozenset({"codex-runner"}),
    "GH_TOKEN": frozenset({"codex-runner"}),
    "GITHUB_TOKEN": frozenset({"codex-runner"}),
    # the web chat's sign-in is the admin token too (it signs the browsers' cookies with it)
    "BROKER_ADMIN_TOKEN": frozenset({"http-api", "ingress-web"}),
    # every broker service talks to Redis; the embedded redis-server child gets its password from
    # its config file, not from this
    "REDIS_PASSWORD": frozenset(s.name for s in ALL_SERVICES),
}
_GH_TOKENS = ("GH_TOKEN", "GITHUB_TOKEN")
_TRUE = ("1", "true", "yes", "on")


def secret_owners(base_env: Mapping[str, str]) -> dict[str, frozenset[str]]:
    """SECRET_OWNERS, plus the rq worker for the GitHub tokens when JOB_ENV_INCLUDE_GH_TOKEN is on."""
    owners = dict(SECRET_OWNERS)
    include = next((v for k, v in base_env.items() if k.upper() == "JOB_ENV_INCLUDE_GH_TOKEN"), "")
    if include.strip().lower() in _TRUE:
        for name in _GH_TOKENS:
            owners[name] = owners[name] | {WORKER.name}
    return owners


def env_without_foreign_secrets(service: str, base_env: Mapping[str, str]) -> dict[str, str]:
    """`base_env` minus the secrets `service` does not own (names matched case-insensitively, as
    the settings read them). Any other name passes through."""
    owners = secret_owners(base_env)
    return {
        name: value
        for name, value in base_env.items()
        if name.upper() not in owners or service in owners[name.upper()]
    }


class PlanError(ValueError):
    """A --replicas value (or UP_REPLICAS) that cannot be used; the message says why."""


def canonical_service(name: str) -> str:
    try:
        return _ALIASES[name.strip().lower()]
    except KeyError:
        known = ", ".join(s.name for s in ALL_SERVICES)
        raise PlanError(f"unknown service {name.strip()!r} (known: {known})") from None


def parse_replicas(spec: str) -> dict[str, int]:
    """'orchestrator=2,codex-runner=3' → {'orchestrator': 2, 'codex-runner': 3}. 0 disables."""
    counts: dict[str, int] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise PlanError(f"replicas entry {part.strip()!r} is not NAME=COUNT")
        service = canonical_service(name)
        try:
            count = int(value.strip())
        except ValueError:
            raise PlanError(f"replica count for {service} is not a number: {value.strip()!r}") from None
        if not 0 <= count <= MAX_REPLICAS:
            raise PlanError(f"replica count for {service} must be 0..{MAX_REPLICAS}, got {count}")
        counts[service] = count
    return counts


@dataclass(frozen=True)
class ChildPlan:
    """One child process: `name` is also its INSTANCE_ID and its log prefix."""

    name: str
    service: str
    index: int
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    metrics_port: int = 0


def plan_children(
    *,
    python: str,
    replicas: Mapping[str, int],
    metrics_port_base: int,
    http_api_port: int,
    with_worker: bool,
    worker_available: bool,
    base_env: Mapping[str, str],
    http_web_port: int | None = None,
) -> list[ChildPlan]:
    """Every child with its argv and env overrides; ports are base, base+1, ... in plan order.

    Extra http-api replicas get consecutive API ports after HTTP_API_PORT so that they can bind;
    extra ingress-web replicas likewise after `http_web_port` (HTTP_WEB_PORT).
    """
    services = [*SERVICES, WORKER] if with_worker and worker_available else list(SERVICES)
    children: list[ChildPlan] = []
    port = metrics_port_base
    for service in services:
        own_env = env_without_foreign_secrets(service.name, base_env)
        for index in range(1, replicas.get(service.name, 1) + 1):
            name = f"{service.name}-{index}"
            env = {
                **own_env,
                "INSTANCE_ID": name,
                "METRICS_PORT": str(port),
                "PYTHONUNBUFFERED": "1",
            }
            if service.name == "http-api" and index > 1:
                env["HTTP_API_PORT"] = str(http_api_port + index - 1)
            if service.name == "ingress-web" and index > 1 and http_web_port is not None:
                env["HTTP_WEB_PORT"] = str(http_web_port + index - 1)
            children.append(
                ChildPlan(
                    name=name,
                    service=service.name,
                    index=index,
                    argv=(python, "-m", service.module),
                    env=env,
                    metrics_port=port,
                )
            )
            port += 1
    return children


def backoff_delay(failures: int, *, initial_s: float, max_s: float) -> float:
    """Delay before restart number `failures` (1-based): initial, 2x, 4x, ... capped at max."""
    if failures <= 0:
        return 0.0
    return float(min(max_s, initial_s * (2 ** min(failures - 1, 30))))


def backoff_schedule(count: int, *, initial_s: float, max_s: float) -> list[float]:
    return [backoff_delay(n, initial_s=initial_s, max_s=max_s) for n in range(1, count + 1)]


def failures_after_exit(previous: int, *, uptime_s: float, stable_after_s: float) -> int:
    """A child that ran long enough before dying starts its backoff afresh."""
    return 1 if uptime_s >= stable_after_s else previous + 1


def prefix_width(names: Sequence[str]) -> int:
    return max((len(n) for n in names), default=0) + 2
