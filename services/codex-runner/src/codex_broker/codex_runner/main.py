"""Entry point of codex-runner: `python -m codex_broker.codex_runner`."""

from __future__ import annotations

import asyncio
import sys

from codex_broker.codex_runner.config import Settings
from codex_broker.codex_runner.runner import Runner
from codex_broker.libs.codex_bin import find_codex_bin
from codex_broker.libs.runtime import redis_client, run_service, start_process

SERVICE = "codex-runner"


async def serve(settings: Settings, codex_bin: str, stop: asyncio.Event | None = None) -> int:
    redis = redis_client(settings.redis_url)
    runner = Runner(settings, redis, codex_bin=codex_bin)
    return await run_service(
        service=SERVICE,
        settings=settings,
        redis=redis,
        tasks=[runner.run],
        ready=runner.ready,
        heartbeat_details=runner.details,
        stop=stop,
        # the runner drains itself (grace, then interrupts); the frame only cancels stragglers
        grace_s=settings.drain_grace_s + 30,
    )


def main() -> int:
    settings = start_process(SERVICE, Settings)
    codex_bin = find_codex_bin(settings.codex_bin)
    if codex_bin is None:
        print(
            "codex-runner: the Codex CLI was not found (set CODEX_BIN or run scripts/install-codex.sh)",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(serve(settings, codex_bin))
