"""A worker started on a broker with events waiting counts within one group join of starting.

A fresh consumer group's first join waits out the broker's join delay
(Tansu: half the session timeout). The worker pays it once, for its feeds'
groups, which join side by side; it used to pay it twice, first for a
Faust consumer group that consumed nothing. So the bound is the broker's
delay, measured here by a bare consumer with the worker's session timeout,
plus :data:`SLACK_S` for the process's start-up and the first batch: at
the default 30 s session timeout the old worker took 2 x 15 s plus its
start-up, 35-40 s on a busy machine, beyond the bound.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis
from aiokafka import AIOKafkaConsumer

from bertctr.harness.kafka import publish
from bertctr.harness.synthetic import make_events
from bertctr.harness.workers import REPLAY
from schemas.keys import TOTAL_SCOPE, KeySpace
from schemas.topics import IMPRESSIONS
from tests.integration.conftest import WorkerEnv

pytestmark = pytest.mark.integration

#: the worker's default session timeout (the fleet's 10 s would make the delay 5 s)
SESSION_TIMEOUT_S = 30.0
#: start-up (imports, Faust, the join state's restore) and the first batch: measured
#: 2.5 s on a quiet two-core machine, 3-10.4 s with up to 9 processes wanting its cores;
#: the old worker needed a second delay (15 s) on top of its imports, so it cannot pass
SLACK_S = 12.0


async def bare_join_s(bootstrap: str, topic: str) -> float:
    """Seconds from a bare consumer's start to its first assignment in a fresh group."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-ready-{uuid.uuid4().hex[:8]}",
        session_timeout_ms=int(SESSION_TIMEOUT_S * 1000),
        heartbeat_interval_ms=3000,
    )
    t0 = time.monotonic()
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=20)
        return time.monotonic() - t0
    finally:
        await consumer.stop()


def test_worker_counts_within_one_group_join(worker_env: WorkerEnv) -> None:
    worker_env.overrides.update({**REPLAY, "BERTCTR_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S)})
    worker_env.cli("topics", "create")
    bootstrap = worker_env.stack.kafka_bootstrap
    waiting = [(worker_env.topic(k), key, value) for k, key, value in make_events(50)]
    asyncio.run(publish(bootstrap, waiting))
    delay_s = asyncio.run(bare_join_s(bootstrap, worker_env.topic(IMPRESSIONS)))

    client = redis.Redis.from_url(worker_env.stack.redis_url)
    total = KeySpace(worker_env.redis_prefix).counter(TOTAL_SCOPE)
    deadline_s = delay_s + SLACK_S
    try:
        t0 = time.monotonic()
        worker_env.start_worker("w0")
        ready_s = None
        while time.monotonic() - t0 < deadline_s + 30:  # past the bound: say by how much
            if client.hget(total, "impressions"):
                ready_s = time.monotonic() - t0
                break
            time.sleep(0.02)
    finally:
        client.close()

    assert ready_s is not None, f"nothing counted in {deadline_s + 30:.0f} s\n{worker_env.logs()}"
    assert ready_s < deadline_s, (
        f"first event counted {ready_s:.1f} s after start; the broker's group join takes "
        f"{delay_s:.1f} s, the bound is {deadline_s:.1f} s\n{worker_env.logs()}"
    )
