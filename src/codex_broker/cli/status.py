"""`codex-broker status`: live services (heartbeats), stream lengths, pending and dead letters."""

from __future__ import annotations

import json
import time
from typing import Any

from redis.asyncio import Redis

from codex_broker.cli.doctor import safe_url
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


async def collect(redis: Redis, keys: Keys, *, url: str, source: str) -> dict[str, Any]:
    heartbeats = await read_heartbeats(redis, keys)
    streams = await stream_stats(redis, keys)
    dead = next((s["length"] for s in streams if s["stream"] == keys.dead_letter_stream), 0)
    return {
        "redis": {"url": safe_url(url), "source": source},
        "key_prefix": keys.prefix,
        "services": describe_services(heartbeats, time.time()),
        "streams": streams,
        "dead_letters": dead,
    }


_SERVICE_FIELDS = {"service", "instance", "pid", "host", "started_at", "at", "age_s", "uptime_s"}


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
    return "\n".join(lines)
