"""The `codex-broker` command: up, doctor, status, drain, env-example."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sys
from collections.abc import Sequence

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from codex_broker.cli import (
    admin_login,
    audit_export,
    doctor,
    doctor_live,
    drain,
    embedded_redis,
    env_example,
    status,
)
from codex_broker.cli.config import Settings
from codex_broker.cli.plan import WORKER, PlanError, parse_replicas, plan_children
from codex_broker.cli.supervisor import run_up
from codex_broker.codex_runner.config import Settings as RunnerSettings
from codex_broker.ingress_feishu.config import Settings as FeishuSettings
from codex_broker.ingress_slack.config import Settings as SlackSettings
from codex_broker.ingress_web.config import Settings as WebSettings
from codex_broker.libs import audit
from codex_broker.libs.audit import AuditLog
from codex_broker.libs.runtime import private_data_root
from codex_broker.libs.settings import load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codex-broker", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser("up", help="run every service as a child process (embedded Redis if needed)")
    up.add_argument(
        "--replicas",
        default="",
        metavar="SPEC",
        help="replica counts, e.g. orchestrator=2,codex-runner=3 (0 disables; default 1 each)",
    )
    up.add_argument("--no-worker", action="store_true", help="do not start the rq worker")
    doctor_cmd = commands.add_parser(
        "doctor", help="preflight checks, one line each; non-zero exit on a failure"
    )
    doctor_cmd.add_argument(
        "--live",
        action="store_true",
        help="also ask Slack (auth.test, scopes, Socket Mode), Feishu (tenant token, bot) and Codex "
        "(each auth profile's account) whether the credentials work",
    )
    status_cmd = commands.add_parser(
        "status",
        help="live services and their versions, streams, dead letters by reason, active runs, "
        "queued sessions, running jobs, last errors",
    )
    status_cmd.add_argument("--json", action="store_true", help="print the report as JSON")
    drain_cmd = commands.add_parser(
        "drain", help="a codex-runner stops claiming, finishes or hands over its turns, and exits"
    )
    drain_cmd.add_argument("instance", help="the runner's instance id (`codex-broker status`)")
    commands.add_parser("env-example", help="print .env.example generated from every settings class")
    audit_cmd = commands.add_parser("audit", help="the audit trail")
    audit_sub = audit_cmd.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    export_cmd = audit_sub.add_parser("export", help="print the audit trail as JSONL, oldest first")
    for name, what in (("user", "actor id or name contains"), ("thread", "session key contains")):
        export_cmd.add_argument(f"--{name}", default="", help=what)
    export_cmd.add_argument("--kind", default="", help="only this kind (turn, command, admin, ...)")
    export_cmd.add_argument("--since", default=None, help="from (ms since the epoch or ISO 8601, UTC)")
    export_cmd.add_argument("--until", default=None, help="up to (ms since the epoch or ISO 8601, UTC)")
    return parser


def worker_available() -> bool:
    try:
        return importlib.util.find_spec(WORKER.module) is not None
    except ModuleNotFoundError:
        return False


# Codex's commands reach the http-api on a loopback address of its own, so that the sandbox's
# network allow-list (hosts, not ports) admits it without 127.0.0.1's other services.
UP_SESSION_API_HOST = "127.0.0.42"


def session_api_env(settings: Settings) -> dict[str, str]:
    """SESSION_API_HOST for the children, unless the operator chose it or the API base."""
    chosen = {"session_api_host", "broker_api_base"} & settings.model_fields_set
    if chosen or not settings.http_api_host.startswith("127."):
        return {}
    return {"SESSION_API_HOST": UP_SESSION_API_HOST}


UP_DRAIN_MARGIN_S = 15.0  # the runner's hand-over after its grace, inside UP_STOP_GRACE_S


def runner_drain_env(settings: Settings) -> dict[str, str]:
    """`up` kills a child UP_STOP_GRACE_S after SIGTERM: unless the operator chose a drain grace,
    the runners drain within that, so their turns are handed over with a notice, never cut."""
    if "drain_grace_s" in load_settings(RunnerSettings).model_fields_set:
        return {}
    return {"RUNNER_DRAIN_GRACE_S": str(max(0.0, settings.up_stop_grace_s - UP_DRAIN_MARGIN_S))}


def cmd_up(settings: Settings, replicas_arg: str, no_worker: bool) -> int:
    try:
        replicas = {**parse_replicas(settings.up_replicas), **parse_replicas(replicas_arg)}
    except PlanError as exc:
        print(f"codex-broker up: {exc}", file=sys.stderr)
        return 2
    embedded = "redis_url" not in settings.model_fields_set
    base_env = dict(os.environ)  # children read their own settings from it (and from .env)
    if not embedded:
        base_env["REDIS_URL"] = settings.redis_url
    base_env.update(session_api_env(settings))
    base_env.update(runner_drain_env(settings))
    notes = admin_login.ensure_admin_token(settings, base_env)
    has_worker = worker_available()
    web = load_settings(WebSettings) if replicas.get("ingress-web", 1) > 0 else None
    children = plan_children(
        python=sys.executable,
        replicas=replicas,
        metrics_port_base=settings.metrics_port_base,
        http_api_port=settings.http_api_port,
        with_worker=not no_worker,
        worker_available=has_worker,
        base_env=base_env,
        http_web_port=web.http_web_port if web is not None else None,
    )
    if not no_worker and not has_worker and replicas.get(WORKER.name, 1) > 0:
        notes.append(f"{WORKER.module} does not exist yet: not starting the rq worker")
    private_data_root(settings.data_root)  # the embedded Redis and every child inherit the umask
    chat_url = web.chat_url if web is not None else None
    return asyncio.run(
        run_up(settings, children, base_env=base_env, embedded=embedded, notes=notes, web_chat_url=chat_url)
    )


def cmd_doctor(settings: Settings, live: bool) -> int:
    checks = doctor.gather(settings)
    for check in checks:
        print(check.line())
    if live:
        inputs = doctor_live.LiveInputs(
            settings,
            load_settings(SlackSettings),
            load_settings(FeishuSettings),
            doctor_live.read_manifest_scopes(doctor_live.MANIFEST_PATH),
        )
        found = asyncio.run(_live(settings, inputs))
        for check in found:
            print(check.line())
        checks.extend(found)
    return doctor.exit_code(checks)


async def _live(settings: Settings, inputs: doctor_live.LiveInputs) -> list[doctor.Check]:
    url, _ = embedded_redis.resolve_redis_url(settings)
    client = Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
    try:
        return await doctor_live.gather_live(inputs, client, settings.keys)
    finally:
        await client.aclose()


async def _status(settings: Settings, as_json: bool) -> int:
    url, source = embedded_redis.resolve_redis_url(settings)
    client = Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
    try:
        report = await status.collect(
            client, settings.keys, url=url, source=source, data_root=settings.data_root
        )
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
        message = f"cannot reach Redis at {doctor.safe_url(url)} ({source}): {exc}"
        if as_json:
            print(json.dumps({"error": message}))
        else:
            print(message, file=sys.stderr)
        return 1
    finally:
        await client.aclose()
    print(json.dumps(report, default=str, indent=2) if as_json else status.render_text(report))
    return 0


async def _drain(settings: Settings, instance: str) -> int:
    url, source = embedded_redis.resolve_redis_url(settings)
    client = Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
    try:
        log = AuditLog.from_settings(settings)
        sent = await drain.drain(client, settings.keys, instance, audit_log=log)
    except drain.DrainError as exc:
        print(f"codex-broker drain: {exc}", file=sys.stderr)
        return 1
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
        print(f"cannot reach Redis at {doctor.safe_url(url)} ({source}): {exc}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()
    print(f"draining {instance} ({sent['active']} turns running); it exits when they are done or handed over")
    return 0


async def _audit_export(settings: Settings, args: argparse.Namespace) -> int:
    try:
        query = audit.Query(
            user=args.user,
            thread=args.thread,
            kind=args.kind,
            since_ms=audit_export.parse_time(args.since),
            until_ms=audit_export.parse_time(args.until),
        )
    except audit_export.TimeArgError as exc:
        print(f"codex-broker audit export: {exc}", file=sys.stderr)
        return 2
    url, source = embedded_redis.resolve_redis_url(settings)
    client = Redis.from_url(url, socket_connect_timeout=3, socket_timeout=30)
    try:
        sys.stdout.write(await audit_export.export(client, settings.keys, query))
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
        print(f"cannot reach Redis at {doctor.safe_url(url)} ({source}): {exc}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "env-example":
        sys.stdout.write(env_example.render())
        return 0
    settings = load_settings(Settings)
    if args.command == "up":
        return cmd_up(settings, args.replicas, args.no_worker)
    if args.command == "doctor":
        return cmd_doctor(settings, args.live)
    if args.command == "drain":
        return asyncio.run(_drain(settings, args.instance))
    if args.command == "audit":
        return asyncio.run(_audit_export(settings, args))
    return asyncio.run(_status(settings, args.json))
