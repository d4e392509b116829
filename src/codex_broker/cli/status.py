"""`codex-broker status`: live services (heartbeats, their versions), stream lengths, pending and
dead letters, and what the broker is doing (libs/activity.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from codex_broker.cli.doctor import safe_url
from codex_broker.libs import activity
from codex_broker.libs.heartbeat import read_heartbeats
from codex_broker.libs.keys import Keys


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def stream_stats(redis: Redis, keys: Keys) -> list[dict[str, Any]]:
    """Every stream under the prefix with its length and, per consumer group, pending and lag."""
    names = sorted(
        [_text(k) async for k in redis.scan_iter(match=f"{keys.prefix}:stream:*", count=1000, _type="STREAM")]
    )
    stats = []
    for name in names:
        length = await redis.xlen(name)
        groups = {}
        for group in await redis.xinfo_groups(name):
            groups[_text(group["name"])] = {
                "pending": int(group["pending"]),
                "consumers": int(group["consumers"]),
                "lag": None if group.get("lag") is None else int(group["lag"]),
            }
        stats.append({"stream": name, "length": int(length), "groups": groups})
    return stats


def describe_services(heartbeats: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    described = []
    for beat in heartbeats:
        entry = dict(beat)
        entry["age_s"] = round(now - float(beat.get("at") or now), 3)
        started = beat.get("started_at")
        entry["uptime_s"] = round(now - float(started), 1) if started else None
        described.append(entry)
    return described


async def collect(
    redis: Redis, keys: Keys, *, url: str, source: str, data_root: Path | None = None
) -> dict[str, Any]:
    """`data_root`: where the services' logs are (the last errors); None reads none."""
    now = time.time()
    heartbeats = await read_heartbeats(redis, keys)
    streams = await stream_stats(redis, keys)
    dead = next((s["length"] for s in streams if s["stream"] == keys.dead_letter_stream), 0)
    doing = await activity.collect(redis, keys, heartbeats, data_root, now)
    return {
        "redis": {"url": safe_url(url), "source": source},
        "key_prefix": keys.prefix,
        "services": describe_services(heartbeats, now),
        "streams": streams,
        "dead_letters": dead,
        **doing,
    }


_SERVICE_FIELDS = {"service", "instance", "pid", "host", "started_at", "at", "age_s", "uptime_s", "version"}


def render_text(report: dict[str, Any]) -> str:
    lines = [f"redis      {report['redis']['url']} ({report['redis']['source']})"]
    services = report["services"]
    lines.append(f"services   {len(services)} live")
    for svc in services:
        extra = {k: v for k, v in svc.items() if k not in _SERVICE_FIELDS}
        details = " " + json.dumps(extra, default=str, separators=(",", ":")) if extra else ""
        uptime = f"up {svc['uptime_s']:.0f}s" if svc.get("uptime_s") is not None else "up ?"
        lines.append(
            f"  {svc.get('service', '?'):<16} {svc.get('instance', '?'):<22} pid {svc.get('pid', '?'):<8} "
            f"{uptime:<10} beat {svc['age_s']:.1f}s ago{details}"
        )
    lines.append(f"streams    {len(report['streams'])}")
    for stream in report["streams"]:
        groups = ", ".join(
            f"{name}: pending {g['pending']}" + (f", lag {g['lag']}" if g["lag"] is not None else "")
            for name, g in stream["groups"].items()
        )
        lines.append(f"  {stream['stream']:<44} len {stream['length']:<8} {groups}")
    lines.append(f"dead letters {report['dead_letters']}")
    return "\n".join([*lines, *_activity_lines(report)])


def _activity_lines(report: dict[str, Any]) -> list[str]:
    lines = [
        f"  {count:>6}  {reason}" for reason, count in (report.get("dead_letters_by_reason") or {}).items()
    ]
    versions = report.get("versions") or {}
    if report.get("mixed_versions"):
        lines.append(f"versions   MIXED: {len(versions)} releases running (a rollout in progress or stuck)")
        for version, instances in versions.items():
            lines.append(f"  {version:<16} {', '.join(instances)}")
    elif versions:
        lines.append(f"versions   {next(iter(versions))} everywhere")
    runs = report.get("active_runs") or []
    lines.append(f"active runs {len(runs)}")
    for run in runs:
        age = f"{run['age_s']:.0f}s" if run.get("age_s") is not None else "?"
        lines.append(
            f"  {run.get('session_key') or '?':<44} {age:>7}  runner {run.get('runner_id') or '(unclaimed)'}"
        )
    waiting = report.get("queued_sessions") or []
    lines.append(f"queued sessions {len(waiting)} (waiting for a run slot)")
    for entry in waiting:
        lines.append(
            f"  {entry['session_key']:<44} {entry['waiting_s'] or 0:>6.0f}s  {entry['messages']} messages"
        )
    pending = report.get("queued_input") or []
    lines.append(f"queued input {len(pending)} sessions (messages for their next turn)")
    for entry in pending:
        lines.append(f"  {entry['session_key']:<44} {entry['messages']} messages")
    jobs = report.get("running_jobs") or []
    lines.append(f"running jobs {len(jobs)}")
    for job in jobs:
        age = f"{job['age_s']:.0f}s" if job.get("age_s") is not None else "?"
        lines.append(
            f"  {job['job_id']:<20} {job.get('session_key') or '?':<44} {age:>7}  {job.get('worker') or ''}"
        )
    errors = report.get("last_errors") or {}
    lines.append(f"last errors {sum(len(v) for v in errors.values())}")
    for service, records in errors.items():
        for record in records:
            detail = f" ({record['error']})" if record.get("error") else ""
            lines.append(f"  {service:<16} {record.get('ts') or '?'}  {record.get('msg')}{detail}"[:240])
    return lines
