"""The broker gone for longer than the worker's session: nothing lost, nothing twice.

The session's Tansu is paused (SIGSTOP) for longer than the consumer group
session timeout and aiokafka's request timeout, then resumed: the worker's
feeds must either ride it out or replace their consumers and rejoin
(``GroupFeed.run``), and the join, the counters and the one model must end
exact, as if the broker had never left.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from bertctr.harness.kafka import consume, publish
from schemas.topics import DEAD_LETTER, LABELLED, full_name
from tests.integration.conftest import WorkerEnv, wait_until
from tests.integration.streams.test_restart import phase, replay_setup, settled

pytestmark = pytest.mark.integration

OUTAGE_S = 45.0


async def test_broker_paused_longer_than_the_session_loses_nothing(worker_env: WorkerEnv) -> None:
    pid = worker_env.stack.broker_pid
    if pid is None:
        pytest.fail("needs the broker the harness starts (leave BERTCTR_KAFKA_BOOTSTRAP unset)")
    boot, prefix = replay_setup(worker_env, BERTCTR_LATE_CLICK_HORIZON_S="1000000")
    base = time.time() - 1_000_000

    msgs1, labels1 = phase(prefix, 0, 60, base)
    worker = worker_env.start_worker("w")
    await publish(boot, msgs1)
    out1 = await consume(boot, full_name(prefix, LABELLED), len(labels1), timeout_s=120)
    assert {m["label_id"] for m in out1} == labels1, worker_env.worker_logs()

    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(OUTAGE_S)
    finally:
        os.kill(pid, signal.SIGCONT)

    msgs2, labels2 = phase(prefix, 100, 60, base + 500_000)
    await publish(boot, msgs2)
    expected = labels1 | labels2
    out = await consume(boot, full_name(prefix, LABELLED), len(expected), timeout_s=180)
    dead = await consume(boot, full_name(prefix, DEAD_LETTER), 0, timeout_s=5, settle_s=1)
    logs = worker_env.worker_logs()
    ids = [m["label_id"] for m in out]
    assert sorted(ids) == sorted(expected), (dead, logs[-6000:])
    assert dead == [], dead

    clicks = sum(1 for label in expected if label.endswith(":pos"))

    def stats() -> dict[str, object]:
        loaded: dict[str, object] = json.loads(worker_env.cli("stats", "--json"))
        return loaded

    def exact() -> bool:
        got = stats()
        total = got["total"]
        model = got["model"] or {}
        assert isinstance(total, dict) and isinstance(model, dict)
        return bool(
            total["impressions"] == len(expected)
            and total["clicks"] == clicks
            and model.get("count", 0) == len(expected)
        )

    assert wait_until(exact, 90), (stats(), logs[-6000:])
    # Nothing arrives twice late: once every input and label is committed, no
    # consumer (a replacement after the outage included) can be handed one again.
    assert await settled(worker_env, {worker.pid}), worker_env.health()
    assert exact(), stats()
