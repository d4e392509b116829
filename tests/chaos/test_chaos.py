"""Chaos through the fake Slack with the real Codex on the fake model (CI size; bench/chaos_bench.py
runs a larger one): mentions over several threads while random service replicas are SIGKILLed
every few seconds and Redis (AOF, fsync always) is killed and restarted once. See chaos.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.chaos import ChaosConfig, run_chaos
from tests.e2e.harness import fake_model_process
from tests.fakes.fake_model import FakeModelClient

pytestmark = [pytest.mark.e2e, pytest.mark.codex]


@pytest.fixture
def model() -> Iterator[FakeModelClient]:
    with fake_model_process() as client:
        yield client


def test_every_mention_answered_once_in_order_under_kills_and_a_redis_restart(
    tmp_path: Path, model: FakeModelClient
) -> None:
    config = ChaosConfig(
        mentions=int(os.environ.get("CHAOS_MENTIONS", "24")),
        threads=int(os.environ.get("CHAOS_THREADS", "6")),
        seed=int(os.environ.get("CHAOS_SEED", "1234")),
    )
    report = run_chaos(tmp_path, model, config)
    print(f"\n{report.table()}")
    if not report.ok or report.unsettled:
        print("\n".join(report.threads_detail))
    for label, items in (
        ("missing", report.missing),
        ("duplicates", report.duplicates),
        ("out of order", report.out_of_order),
        ("other notices", report.other_notices),
    ):
        if items:
            print(f"{label}: {items}")
    assert report.redis_restarts == 1
    assert sum(report.kills.values()) >= 3
    assert not report.duplicates, "a mention was answered twice"
    assert not report.out_of_order, "answers left the order of their thread"
    assert not report.missing, "a mention got neither an answer nor a notice"
    assert not report.other_notices, "a turn failed for another reason than its runner dying"
    assert report.answered_mentions + report.told_lost_mentions == report.mentions
