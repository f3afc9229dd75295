"""A worker killed with SIGKILL and restarted loses nothing and counts nothing twice.

Phase 1 is fully labelled, learned and checkpointed; the worker is killed;
phase 2 brings new traffic plus late clicks for phase-1 impressions, which
only a join whose state was recovered from its changelog can turn into late
corrections (a join that forgot them would dead-letter orphan clicks).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import pytest
import redis
from aiokafka import AIOKafkaConsumer, TopicPartition

from bertctr.harness.kafka import consume, is_control, publish
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


async def record_ends(bootstrap: str, topic: str, *, labels_only: bool = False) -> dict[str, int]:
    """``"<topic>:<partition>"`` -> the offset after its last record, for partitions with one.

    ``labels_only`` ends each partition after its last label instead: on
    ``labelled`` the join's watermark records keep coming after the labels,
    and the learner commits (checkpoints) only when it has learned something.
    The topic is read to its end (the fetch's high watermark): Tansu answers
    ListOffsets(latest) with the first offset of the last batch plus one.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        await consumer.topics()  # refreshes the metadata partitions_for_topic reads
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert tps, f"no partitions for {topic}"
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        last: dict[str, int] = {}
        async with asyncio.timeout(60):
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                for tp, records in batch.items():
                    for record in records:
                        if not (labels_only and is_control(record.headers)):
                            last[f"{topic}:{tp.partition}"] = record.offset + 1
                if batch:
                    continue
                caught_up = True
                for tp in tps:
                    high = consumer.highwater(tp)
                    caught_up &= high is not None and await consumer.position(tp) >= high
                if caught_up:
                    return last
    finally:
        await consumer.stop()


def feeds_reached(
    env: WorkerEnv,
    pids: Collection[int],
    agents: Iterable[str],
    ends: Mapping[str, int],
    field: str = "committed",
) -> bool:
    """Whether each of ``agents`` of the workers ``pids`` is at ``ends`` in every partition there.

    Read from the workers' health reports. ``committed`` is where a restarted
    or rebalanced feed would read a partition from again (the learner's: its
    checkpoint's), so at or past a partition's end nothing before it can be
    handled twice; ``processed`` counts the last record handled, so one past it.
    """
    assert ends, "nothing to wait for: no partition has a record"
    _, report = env.health()
    at: dict[tuple[str, str], int] = {}
    for worker in report.get("workers", []):
        if worker.get("pid") not in pids:
            continue  # a killed worker's report stays until it expires
        for agent, rows in (worker.get("partitions") or {}).items():
            for tp, row in rows.items():
                value = row.get(field)
                if value is not None:
                    at[(agent, tp)] = int(value) + (1 if field == "processed" else 0)
    return all(at.get((agent, tp), -1) >= end for agent in agents for tp, end in ends.items())


async def settled(env: WorkerEnv, pids: Collection[int]) -> bool:
    """Wait until the join has committed every input, and the counters and the
    learner every label on ``labelled``: from then on no restart or rebalance
    can hand any of them to the workers again."""
    boot, prefix = env.stack.kafka_bootstrap, env.topic_prefix
    inputs: dict[str, int] = {}
    for name in (IMPRESSIONS, CLICKS):
        inputs |= await record_ends(boot, full_name(prefix, name))
    labels = await record_ends(boot, full_name(prefix, LABELLED), labels_only=True)
    return wait_until(
        lambda: (
            feeds_reached(env, pids, ["join"], inputs)
            and feeds_reached(env, pids, ["counters", "learner"], labels)
        ),
        90,
    )


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
    # every input and every label committed (the learner's by its checkpoint)
    assert await settled(worker_env, {first.pid}), worker_env.health()
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
    second = worker_env.start_worker("second")
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
    # Once everything is committed nothing can come twice later: still exact then.
    assert await settled(worker_env, {second.pid}), worker_env.health()
    assert model_count() == len(expected)
    assert counters_exact(), worker_env.cli("stats", "--json")


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
    # The join and the counters have committed all they read (they commit every
    # second), so a feed that committed what it had handled would have by now;
    # the learner has committed nothing, having no checkpoint.
    inputs: dict[str, int] = {}
    for name in (IMPRESSIONS, CLICKS):
        inputs |= await record_ends(boot, full_name(prefix, name))
    ends = await record_ends(boot, full_name(prefix, LABELLED), labels_only=True)
    assert wait_until(
        lambda: (
            feeds_reached(worker_env, {first.pid}, ["join"], inputs)
            and feeds_reached(worker_env, {first.pid}, ["counters"], ends)
        ),
        60,
    ), worker_env.health()
    assert not feeds_reached(worker_env, {first.pid}, ["learner"], ends)
    assert not list((worker_env.tmp / "ckpt").glob("ckpt-*.bin"))
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)

    # Forget the dead worker's metrics: what counts is what the new one learns.
    client = redis.Redis.from_url(worker_env.env()["BERTCTR_REDIS_URL"])
    client.delete(KeySpace(worker_env.redis_prefix).model_metrics)
    client.close()
    second = worker_env.start_worker("second")
    assert wait_until(lambda: model_count() == len(labels), 120), worker_env.worker_logs()
    # nothing learned twice later: the learner has read past every label and
    # every watermark record written by now, and the count has not moved
    ends = await record_ends(boot, full_name(prefix, LABELLED))
    assert wait_until(
        lambda: feeds_reached(worker_env, {second.pid}, ["learner"], ends, "processed"), 60
    ), worker_env.health()
    assert model_count() == len(labels)
