"""A worker killed with SIGKILL and restarted loses nothing and counts nothing twice.

Phase 1 is fully labelled, learned and checkpointed; the worker is killed;
phase 2 brings new traffic plus late clicks for phase-1 impressions, which
only a join whose state was recovered from its changelog can turn into late
corrections (a join that forgot them would dead-letter orphan clicks).
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import pytest
import redis

from bertctr.harness.kafka import consume, publish
from bertctr.harness.workers import REPLAY
from schemas.keys import KeySpace
from schemas.topics import CLICKS, DEAD_LETTER, IMPRESSIONS, LABELLED, full_name
from tests.integration.conftest import WorkerEnv, wait_until

pytestmark = pytest.mark.integration


def impression(i: int, ts: float) -> dict[str, Any]:
    return {
        "event_id": f"ev-{i}",
        "impression_id": f"imp-{i}",
        "ts": ts,
        "item_id": f"item-{i % 4}",
        "image_id": "img",
        "variant": f"v{i % 2}",
        "title": "blue mug",
        "position": i % 3,
        "segment": {"device": "mobile", "geo": "DE", "taste": f"t{i % 2}"},
    }


def phase(prefix: str, first: int, n: int, base: float) -> tuple[list[Any], set[str]]:
    msgs, labels = [], set()
    for i in range(first, first + n):
        imp = impression(i, base + (i - first))
        msgs.append((full_name(prefix, IMPRESSIONS), f"imp-{i}".encode(), json.dumps(imp).encode()))
        if i % 5 == 0:
            click = {"event_id": f"c-{i}", "impression_id": f"imp-{i}", "ts": imp["ts"] + 3}
            msgs.append(
                (full_name(prefix, CLICKS), f"imp-{i}".encode(), json.dumps(click).encode())
            )
            labels.add(f"imp-{i}:pos")
        else:
            labels.add(f"imp-{i}:neg")
    return msgs, labels


def replay_setup(worker_env: WorkerEnv, **extra: str) -> tuple[str, str]:
    """Replay pacing, a 60 s window, a checkpoint dir and the topics; (bootstrap, prefix)."""
    worker_env.overrides.update(
        {
            "BERTCTR_ATTRIBUTION_WINDOW_S": "60",
            **REPLAY,
            "BERTCTR_CHECKPOINT_DIR": str(worker_env.tmp / "ckpt"),
            **extra,
        }
    )
    worker_env.cli("topics", "create")
    return worker_env.stack.kafka_bootstrap, worker_env.topic_prefix


async def test_sigkill_and_restart_keeps_join_state_counters_and_model(
    worker_env: WorkerEnv,
) -> None:
    boot, prefix = replay_setup(worker_env, BERTCTR_LATE_CLICK_HORIZON_S="1000000")
    base = time.time() - 1_000_000

    msgs1, labels1 = phase(prefix, 0, 60, base)
    first = worker_env.start_worker("first")
    await publish(boot, msgs1)
    out1 = await consume(boot, full_name(prefix, LABELLED), len(labels1), timeout_s=120)
    assert {m["label_id"] for m in out1} == labels1, worker_env.worker_logs()

    def model_count() -> int:
        stats = json.loads(worker_env.cli("stats", "--json"))
        return int((stats["model"] or {}).get("count", 0))

    assert wait_until(lambda: model_count() == len(labels1), 60), worker_env.worker_logs()
    ckpts = worker_env.tmp / "ckpt"
    assert wait_until(lambda: any(ckpts.glob("ckpt-*.bin")), 30)
    time.sleep(4)  # let Faust commit its offsets (commit interval ~2.8 s)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)

    # Far ahead: while idle, the clock of phase 1 kept running at 2000x.
    msgs2, labels2 = phase(prefix, 100, 60, base + 500_000)
    late = []
    for i in (1, 2, 3):  # phase-1 negatives get late clicks after the restart
        late.append(
            (
                full_name(prefix, CLICKS),
                f"imp-{i}".encode(),
                json.dumps(
                    {"event_id": f"late-{i}", "impression_id": f"imp-{i}", "ts": base + i + 500}
                ).encode(),
            )
        )
    expected = labels1 | labels2 | {f"imp-{i}:late" for i in (1, 2, 3)}
    worker_env.start_worker("second")
    await publish(boot, msgs2)
    # The late clicks go out once the restarted worker is labelling phase 2.
    await consume(
        boot, full_name(prefix, LABELLED), len(labels1 | labels2), timeout_s=180, settle_s=0
    )
    await publish(boot, late)
    out = await consume(boot, full_name(prefix, LABELLED), len(expected), timeout_s=120)
    dead = await consume(boot, full_name(prefix, DEAD_LETTER), 0, timeout_s=5, settle_s=1)
    logs = worker_env.worker_logs()
    assert {m["label_id"] for m in out} == expected, (dead, logs)
    assert dead == [], dead

    clicks = sum(1 for label in expected if not label.endswith(":neg"))
    imps = len(labels1 | labels2)

    def counters_exact() -> bool:
        stats = json.loads(worker_env.cli("stats", "--json"))
        total = stats["total"]
        return bool(total["impressions"] == imps and total["clicks"] == clicks)

    assert wait_until(counters_exact, 60), worker_env.cli("stats", "--json")
    # The restarted learner resumed from the checkpoint: every label learned once.
    assert wait_until(lambda: model_count() == len(expected), 60), logs
    # (A fresh model would count only phase 2, a re-learning one more than this.)
    time.sleep(3)
    assert model_count() == len(expected)


async def test_sigkill_between_checkpoints_loses_no_example(worker_env: WorkerEnv) -> None:
    """The learner's crash window: learned and committed by Faust, not yet checkpointed.

    No checkpoint is ever due here (interval and idle delay of an hour), so
    everything the first worker learned is lost with it. Had Faust committed
    the ``labelled`` offsets (it commits every ~2.8 s), the restarted worker
    would start after them and its fresh model would never see those
    examples; the learner holds its acks until a checkpoint covers them, so
    the restart replays every one.
    """
    boot, prefix = replay_setup(
        worker_env, BERTCTR_CHECKPOINT_INTERVAL_S="3600", BERTCTR_CHECKPOINT_IDLE_S="3600"
    )
    msgs, labels = phase(prefix, 0, 40, time.time() - 1_000_000)
    first = worker_env.start_worker("first")
    await publish(boot, msgs)
    await consume(boot, full_name(prefix, LABELLED), len(labels), timeout_s=120)

    def model_count() -> int:
        stats = json.loads(worker_env.cli("stats", "--json"))
        return int((stats["model"] or {}).get("count", 0))

    assert wait_until(lambda: model_count() == len(labels), 60), worker_env.worker_logs()
    time.sleep(6)  # two of Faust's commit intervals
    assert not list((worker_env.tmp / "ckpt").glob("ckpt-*.bin"))
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)

    # Forget the dead worker's metrics: what counts is what the new one learns.
    client = redis.Redis.from_url(worker_env.env()["BERTCTR_REDIS_URL"])
    client.delete(KeySpace(worker_env.redis_prefix).model_metrics)
    client.close()
    worker_env.start_worker("second")
    assert wait_until(lambda: model_count() == len(labels), 120), worker_env.worker_logs()
    time.sleep(3)
    assert model_count() == len(labels)
